"""Interactions: logging one against a customer, "My next steps", the daily overdue reminder."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import jobs
from core.db import utcnow
from core.interactions import OVERDUE_KIND, remind_overdue
from core.models import Contact, Customer, Interaction, Membership, Notification, Team
from core.tenancy import company_scope, unscoped
from core.tickets import open_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def shop(app, db, company):
    """A company with two customers, each with a contact and a ticket."""
    co = company()
    with company_scope(co.id):
        wang, li = Customer(name="王女士"), Customer(name="李先生")
        db.session.add_all([wang, li])
        db.session.flush()
        mine, theirs = (
            Contact(customer_id=wang.id, name="王小姐"),
            Contact(customer_id=li.id, name="李太太"),
        )
        db.session.add_all([mine, theirs])
        db.session.flush()
        ticket = open_ticket(customer_id=wang.id, subject="热水器不出热水")
        other_ticket = open_ticket(customer_id=li.id, subject="发票")
        db.session.commit()
        return SimpleNamespace(
            company=co,
            id=co.id,
            wang=wang.id,
            li=li.id,
            contact=mine.id,
            stranger=theirs.id,
            ticket=ticket.id,
            other_ticket=other_ticket.id,
        )


def own(db, shop, user):
    """Make ``user`` the owner of both customers (a sales rep sees only their own)."""
    with company_scope(shop.id):
        for customer_id in (shop.wang, shop.li):
            db.session.get(Customer, customer_id).owner_id = user.id
        db.session.commit()


def local(moment):
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def form(**values):
    when = utcnow() - timedelta(hours=2)
    data = {"kind": "visit", "occurred_at": local(when), "duration_minutes": "30"}
    data.update(values)
    return data


def errors_at(html: str) -> set[str]:
    return set(re.findall(r'class="error" data-field="([a-z_]+)"', html))


def test_logging_a_visit_stores_utc_and_moves_last_contact(app, db, client, shop, login_as):
    rep = login_as("sales_rep", shop.company)
    own(db, shop, rep)
    when = (utcnow() - timedelta(days=1)).replace(second=0, microsecond=0)
    response = client.post(
        f"/interactions/new?customer_id={shop.wang}",
        data=form(
            occurred_at=local(when),
            contact_id=str(shop.contact),
            ticket_id=str(shop.ticket),
            purpose="上门检修",
            result="已更换阀门",
            next_step="三天后电话回访",
            next_step_due=local(when + timedelta(days=3)),
        ),
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/customers/{shop.wang}")
    with company_scope(shop.id):
        row = db.session.scalars(select(Interaction)).one()
        assert (row.kind, row.user_id, row.contact_id, row.ticket_id) == (
            "visit",
            rep.id,
            shop.contact,
            shop.ticket,
        )
        assert row.occurred_at == when  # typed in Shanghai time, stored as the same moment
        assert row.duration_minutes == 30 and row.next_step_due == when + timedelta(days=3)
        assert db.session.get(Customer, shop.wang).last_contact_at == when
    # an older interaction does not move last contact back
    client.post(
        f"/interactions/new?customer_id={shop.wang}",
        data=form(occurred_at=local(when - timedelta(days=30))),
    )
    with company_scope(shop.id):
        db.session.expire_all()
        assert db.session.get(Customer, shop.wang).last_contact_at == when


@pytest.mark.parametrize(
    "values, field",
    [
        ({"contact_id": "STRANGER"}, "contact_id"),
        ({"ticket_id": "OTHER_TICKET"}, "ticket_id"),
        ({"contact_id": "abc"}, "contact_id"),
        ({"duration_minutes": "-5"}, "duration_minutes"),
        ({"duration_minutes": "lots"}, "duration_minutes"),
        ({"kind": "telepathy"}, "kind"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00"}, "occurred_at"),
        ({"occurred_at": "2999-01-01T00:00"}, "occurred_at"),
        ({"next_step": "再联系"}, "next_step_due"),
        ({"next_step_due": "2030-01-01T09:00"}, "next_step"),
    ],
)
def test_bad_input_is_refused_at_the_field_and_nothing_written(
    app, db, client, shop, login_as, values, field
):
    own(db, shop, login_as("sales_rep", shop.company))
    swap = {"STRANGER": str(shop.stranger), "OTHER_TICKET": str(shop.other_ticket)}
    values = {k: swap.get(v, v) for k, v in values.items()}
    response = client.post(f"/interactions/new?customer_id={shop.wang}", data=form(**values))
    assert response.status_code == 422
    assert field in errors_at(response.get_data(as_text=True))
    with company_scope(shop.id):
        assert db.session.scalars(select(Interaction)).first() is None
        assert db.session.get(Customer, shop.wang).last_contact_at is None


def test_the_form_offers_only_the_customers_contacts(app, db, client, shop, login_as):
    own(db, shop, login_as("sales_rep", shop.company))
    html = client.get(f"/interactions/new?customer_id={shop.wang}").get_data(as_text=True)
    assert "王小姐" in html and "李太太" not in html
    assert "热水器不出热水" in html and "发票" not in html


@pytest.mark.parametrize(
    "query, status",
    [("", 400), ("?customer_id=abc", 400), ("?customer_id=99999", 404), ("?customer_id=0", 400)],
)
def test_a_bad_customer_is_a_clear_error(app, client, shop, login_as, query, status):
    login_as("sales_rep", shop.company)
    assert client.get(f"/interactions/new{query}").status_code == status


def test_another_companys_customer_is_not_found(app, client, shop, company, login_as):
    login_as("sales_rep", company())
    assert client.get(f"/interactions/new?customer_id={shop.wang}").status_code == 404


def test_viewers_cannot_log_and_only_the_author_edits(app, db, client, shop, login_as, make_user):
    login_as("viewer", shop.company)
    assert client.post(f"/interactions/new?customer_id={shop.wang}", data=form()).status_code == 403
    author = make_user("sales_rep", shop.company)
    own(db, shop, author)
    with company_scope(shop.id):
        row = Interaction(customer_id=shop.wang, user_id=author.id, kind="call")
        db.session.add(row)
        db.session.commit()
        row_id = row.id
    login_as("sales_rep", shop.company)
    assert client.get(f"/interactions/{row_id}/edit").status_code == 403
    with client.session_transaction() as session:
        session["_user_id"] = str(author.id)
    assert client.get(f"/interactions/{row_id}/edit").status_code == 200
    response = client.post(f"/interactions/{row_id}/edit", data=form(kind="meeting"))
    assert response.status_code == 302
    with company_scope(shop.id):
        db.session.expire_all()
        assert db.session.get(Interaction, row_id).kind == "meeting"


def add_step(db, company_id, customer_id, user_id, due, done=False, step="发送报价单"):
    with company_scope(company_id):
        row = Interaction(
            customer_id=customer_id,
            user_id=user_id,
            kind="call",
            occurred_at=utcnow() - timedelta(days=10),
            next_step=step,
            next_step_due=due,
            next_step_done_at=utcnow() if done else None,
        )
        db.session.add(row)
        db.session.commit()
        return row.id


def test_my_next_steps_by_due_date_overdue_highlighted_and_done(
    app, db, client, shop, login_as, make_user
):
    me = login_as("sales_rep", shop.company)
    own(db, shop, me)
    other = make_user("sales_rep", shop.company)
    now = utcnow()
    soon = add_step(db, shop.id, shop.wang, me.id, now + timedelta(days=2), step="安排演示")
    late = add_step(db, shop.id, shop.li, me.id, now - timedelta(days=3), step="发送报价单")
    add_step(db, shop.id, shop.wang, me.id, now - timedelta(days=5), done=True, step="已办完")
    add_step(db, shop.id, shop.wang, other.id, now - timedelta(days=1), step="别人的事")

    html = client.get("/interactions/next-steps").get_data(as_text=True)
    assert html.index("发送报价单") < html.index("安排演示")
    assert "已办完" not in html and "别人的事" not in html
    assert re.search(rf'<tr class="overdue" id="step-{late}"', html)
    assert re.search(rf'<tr class="" id="step-{soon}"', html)
    assert "1 overdue" in html or "1 项已逾期" in html

    response = client.post(f"/interactions/{late}/done", data={"next": "/interactions/next-steps"})
    assert response.status_code == 302
    html = client.get("/interactions/next-steps").get_data(as_text=True)
    assert "<td>发送报价单</td>" not in html and "<td>安排演示</td>" in html
    # someone else's next step is not mine to close
    with company_scope(shop.id):
        theirs = db.session.scalar(select(Interaction.id).where(Interaction.user_id == other.id))
    assert client.post(f"/interactions/{theirs}/done").status_code == 403


def test_managers_see_their_teams_next_steps(app, db, client, shop, login_as, make_user):
    boss = login_as("manager", shop.company)
    rep = make_user("sales_rep", shop.company)
    outsider = make_user("sales_rep", shop.company)
    with company_scope(shop.id):
        team = Team(name="销售一部", manager_id=boss.id)
        db.session.add(team)
        db.session.flush()
        with unscoped():
            member = db.session.scalar(select(Membership).where(Membership.user_id == rep.id))
        member.team_id = team.id
        db.session.commit()
    now = utcnow()
    add_step(db, shop.id, shop.wang, rep.id, now + timedelta(days=1), step="团队跟进")
    add_step(db, shop.id, shop.wang, outsider.id, now + timedelta(days=1), step="外组跟进")
    assert "团队跟进" not in client.get("/interactions/next-steps").get_data(as_text=True)
    html = client.get("/interactions/next-steps?who=team").get_data(as_text=True)
    assert "团队跟进" in html and "外组跟进" not in html
    assert client.get(f"/interactions/next-steps?who={outsider.id}").status_code == 400

    login_as("sales_rep", shop.company)
    assert client.get("/interactions/next-steps?who=team").status_code == 400


def test_next_steps_come_in_keyset_pages(app, db, client, shop, login_as):
    app.config["LIST_PAGE_SIZE"] = 2
    me = login_as("sales_rep", shop.company)
    own(db, shop, me)
    now = utcnow().replace(microsecond=0)
    for i in range(5):
        add_step(db, shop.id, shop.wang, me.id, now + timedelta(days=i), step=f"步骤{i}")
    seen, url = [], "/interactions/next-steps"
    for _ in range(4):
        html = client.get(url).get_data(as_text=True)
        seen += re.findall(r"<td>(步骤\d)</td>", html)
        found = re.search(r'href="([^"]*after=[^"]*)"', html)
        if not found:
            break
        url = found.group(1).replace("&amp;", "&")
    assert seen == [f"步骤{i}" for i in range(5)]
    assert client.get("/interactions/next-steps?after=bogus").status_code == 400


def test_the_overdue_reminder_notifies_each_user_once_a_day(app, db, shop, make_user):
    rep, other, idle = (make_user("sales_rep", shop.company) for _ in range(3))
    now = utcnow()
    for due in (now - timedelta(days=2), now - timedelta(hours=3)):
        add_step(db, shop.id, shop.wang, rep.id, due)
    add_step(db, shop.id, shop.li, other.id, now - timedelta(days=1))
    add_step(db, shop.id, shop.li, idle.id, now + timedelta(days=1))
    add_step(db, shop.id, shop.li, idle.id, now - timedelta(days=1), done=True)

    def reminders():
        with company_scope(shop.id):
            rows = db.session.execute(
                select(Notification.user_id, Notification.message).where(
                    Notification.kind == OVERDUE_KIND
                )
            ).all()
        return sorted(rows)

    with company_scope(shop.id):
        remind_overdue(now=now)
        db.session.commit()
        remind_overdue(now=now + timedelta(minutes=30))  # again the same day: nobody twice
        db.session.commit()
    got = reminders()
    assert [u for u, _m in got] == sorted([rep.id, other.id])
    assert any(u == rep.id and "2" in m for u, m in got)
    # the next day, still overdue: reminded again
    with company_scope(shop.id):
        remind_overdue(now=now + timedelta(days=1))
        db.session.commit()
    assert len(reminders()) == 4


def test_the_reminder_is_a_daily_job(app, db, shop, make_user):
    rep = make_user("sales_rep", shop.company)
    add_step(db, shop.id, shop.wang, rep.id, utcnow() - timedelta(days=1))
    morning = utcnow().astimezone(SHANGHAI).replace(hour=9, minute=0) + timedelta(days=1)
    ran = jobs.run_due(morning, only="interactions.overdue")
    assert [status for _job, _scope, status in ran if _scope == f"company:{shop.id}"] == ["done"]
    assert jobs.run_due(morning + timedelta(hours=2), only="interactions.overdue") == []
    with company_scope(shop.id):
        assert db.session.scalar(select(Notification.user_id)) == rep.id


@pytest.mark.parametrize(
    "url",
    [
        "/interactions/next-steps?after=" + "9" * 5000,
        "/interactions/next-steps?after=99999999999:1",
        "/interactions/next-steps?after=-:" + "9" * 12,
        "/interactions/next-steps?who=" + "9" * 5000,
        "/interactions/new?customer_id=" + "9" * 5000,
        "/interactions/new?customer_id=1&subject_type=nonsense&subject_id=1",
        "/interactions/99999999999/edit",
        "/notifications/?before=" + "9" * 5000,
    ],
)
def test_hostile_query_strings_are_clear_errors(app, client, shop, login_as, url):
    login_as("manager", shop.company)
    assert client.get(url).status_code in (200, 400, 404)


def test_a_nul_character_is_refused_at_the_field(app, db, client, shop, login_as):
    login_as("manager", shop.company)
    response = client.post(
        f"/interactions/new?customer_id={shop.wang}", data=form(purpose="a\x00b")
    )
    assert response.status_code == 422 and "purpose" in errors_at(response.get_data(as_text=True))
    response = client.post(f"/comments/customer/{shop.wang}", data={"body": "a\x00b"})
    assert response.status_code == 422
