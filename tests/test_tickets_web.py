"""Service tickets in the web UI: list, board, new, detail, transitions, recovery, settings."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from core import clocks, workflow
from core.db import utcnow
from core.models import (
    AuditLog,
    Contact,
    Customer,
    Interaction,
    Notification,
    Obligation,
    ServiceTicket,
    SlaPolicy,
    Team,
    WorkflowHistory,
)
from core.tenancy import company_scope
from core.testing import QueryCounter
from core.tickets import open_ticket
from core.web import ticket_queries
from core.web import tickets as ticket_pages

SHANGHAI = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


FRIDAY_17 = sh(2024, 3, 8, 17)  # a Friday


def sign_in(client, user, company):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id


@pytest.fixture
def desk(app, db, client, company, make_user):
    """``desk(plugins=())``: a company with staff of every role, a service team managed by the
    manager, two customers with a contact each; ``.open(...)`` opens a ticket (committed) and
    ``.login(role)`` signs that member in."""

    def factory(plugins=()):
        co = company(plugins=plugins)
        staff = {
            r: make_user(r, co)
            for r in ("service_agent", "manager", "admin", "viewer", "sales_rep")
        }
        second_agent = make_user("service_agent", co)
        with company_scope(co.id):
            team = Team(name="客服中心", manager_id=staff["manager"].id)
            wang = Customer(name="王女士", phone="13800001111", code="C-WANG")
            li = Customer(name="李先生", phone="13900002222")
            db.session.add_all([team, wang, li])
            db.session.flush()
            wang_contact = Contact(customer_id=wang.id, name="王小姐")
            li_contact = Contact(customer_id=li.id, name="李太太")
            db.session.add_all([wang_contact, li_contact])
            db.session.commit()
            ids = SimpleNamespace(
                team=team.id,
                wang=wang.id,
                li=li.id,
                wang_contact=wang_contact.id,
                li_contact=li_contact.id,
            )

        def open_at(at=None, **values):
            values.setdefault("customer_id", ids.wang)
            values.setdefault("subject", "空调不制冷")
            with company_scope(co.id):
                ticket = open_ticket(at=at, **values)
                db.session.commit()
                return ticket.id

        def login(role):
            user = second_agent if role == "second_agent" else staff[role]
            sign_in(client, user, co)
            return user

        return SimpleNamespace(
            company=co,
            id=co.id,
            staff=staff,
            agent=staff["service_agent"],
            second_agent=second_agent,
            manager=staff["manager"],
            admin=staff["admin"],
            ids=ids,
            open=open_at,
            login=login,
        )

    return factory


def ticket_ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'data-ticket="(\d+)"', response.get_data(as_text=True))]


def fetch(db, shop, ticket_id) -> ServiceTicket:
    db.session.expire_all()
    with company_scope(shop.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        _ = ticket.state  # load while in scope
        return ticket


def count(db, shop, model, *where) -> int:
    db.session.expire_all()
    with company_scope(shop.id):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def notices(db, shop, user_id) -> list[Notification]:
    db.session.expire_all()
    with company_scope(shop.id):
        return list(
            db.session.scalars(
                select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id)
            )
        )


@pytest.fixture
def now(monkeypatch):
    """Set the moment the pages and the clock engine take as "now"."""
    moment = SimpleNamespace(value=None)
    for module in (ticket_pages, ticket_queries, clocks, workflow):
        monkeypatch.setattr(module, "utcnow", lambda: moment.value or utcnow())

    def set_to(value):
        moment.value = value

    return set_to


# -- list --------------------------------------------------------------------------------------


def test_list_shows_names_and_the_most_urgent_sla_badge(app, db, client, desk, now):
    shop = desk()
    agent = shop.login("service_agent")
    breached = shop.open(sh(2024, 3, 8, 9), priority="urgent", assignee_id=agent.id)
    at_risk = shop.open(FRIDAY_17, priority="urgent", customer_id=shop.ids.li)
    now(sh(2024, 3, 8, 17, 40))  # answered ten minutes late
    assert client.post(f"/tickets/{at_risk}/transition/start", data={"start-version": 1})
    running = shop.open(sh(2024, 3, 11, 11, 20), priority="low", team_id=shop.ids.team)

    now(sh(2024, 3, 11, 11, 30))  # Monday
    html = client.get("/tickets/").get_data(as_text=True)
    assert ticket_ids(client.get("/tickets/")) == [running, at_risk, breached]  # newest first
    rows = dict(re.findall(r'data-ticket="(\d+)">(.*?)</tr>', html, re.S))
    assert 'data-sla="breached"' in rows[str(breached)]
    assert agent.name in rows[str(breached)]
    assert "王女士" in rows[str(breached)]
    # First response met late, resolution (due Monday 12:00) past its warning moment.
    assert 'data-sla="at_risk"' in rows[str(at_risk)]
    assert "2024-03-11 12:00" in rows[str(at_risk)]  # due time in the company's time zone
    assert "李先生" in rows[str(at_risk)]
    assert 'data-sla="running"' in rows[str(running)]
    assert "客服中心" in rows[str(running)]


def test_list_filters(app, db, client, desk, now):
    shop = desk()
    agent = shop.login("service_agent")
    mine = shop.open(assignee_id=agent.id, type="complaint", priority="high", intake_channel="web")
    theirs = shop.open(assignee_id=shop.second_agent.id, team_id=shop.ids.team, subject="发票开具")
    nobody = shop.open(customer_id=shop.ids.li, type="repair", intake_channel="wechat")
    late = shop.open(utcnow() - timedelta(days=30), priority="urgent", assignee_id=agent.id)
    client.post(f"/tickets/{theirs}/transition/start", data={"start-version": 1})

    def listed(query):
        response = client.get(f"/tickets/?{query}")
        assert response.status_code == 200, query
        return set(ticket_ids(response))

    assert listed("") == {mine, theirs, nobody, late}
    assert listed("mine=1") == {mine, late}
    assert listed("state=in_progress") == {theirs}
    assert listed("state=new&state=in_progress") == {mine, theirs, nobody, late}
    assert listed("type=complaint") == {mine}
    assert listed("priority=high") == {mine}
    assert listed("intake=wechat") == {nobody}
    assert listed(f"assignee={shop.second_agent.id}") == {theirs}
    assert listed("assignee=none") == {nobody}
    assert listed(f"team={shop.ids.team}") == {theirs}
    assert listed("sla=breached") == {late}
    assert listed("q=发票") == {theirs}
    assert listed("q=李先生") == {nobody}
    assert listed(f"q=%23{late}") == {late}
    month_ago = (utcnow() - timedelta(days=30)).astimezone(SHANGHAI).date()
    assert listed(f"created_to={month_ago}") == {late}  # the end day is included
    assert listed(f"created_from={month_ago + timedelta(days=1)}") == {mine, theirs, nobody}


def test_sla_filters_read_the_clocks(app, db, client, desk, now):
    shop = desk()
    shop.login("manager")
    due_soon = shop.open(FRIDAY_17, priority="urgent")
    overdue = shop.open(sh(2024, 3, 8, 9), priority="urgent")
    now(sh(2024, 3, 8, 17, 5))
    client.post(f"/tickets/{due_soon}/transition/start", data={"start-version": 1})
    now(sh(2024, 3, 11, 11, 30))
    assert ticket_ids(client.get("/tickets/?sla=at_risk")) == [due_soon]
    assert ticket_ids(client.get("/tickets/?sla=breached")) == [overdue]


@pytest.mark.parametrize(
    "query, param",
    [
        ("state=floating", "state"),
        ("type=nonsense", "type"),
        ("priority=asap", "priority"),
        ("intake=pigeon", "intake"),
        ("assignee=abc", "assignee"),
        ("team=" + "9" * 30, "team"),
        ("assignee=3000000000", "assignee"),  # beyond a 32-bit id: no such row, not a crash
        ("mine=perhaps", "mine"),
        ("sla=late", "sla"),
        ("created_from=2026-13-01", "created_from"),
        ("created_to=yesterday", "created_to"),
        ("after=x1", "after"),
        ("after=" + "9" * 40, "after"),
    ],
)
def test_bad_list_arguments_are_a_400_naming_the_parameter(app, client, desk, query, param):
    shop = desk()
    shop.login("manager")
    shop.open()
    for page in ("/tickets/", "/tickets/board"):
        if page.endswith("board") and param in ("after", "state"):  # not board filters
            continue
        response = client.get(f"{page}?{query}")
        assert response.status_code == 400, (page, query)
        assert f'data-field="{param}"' in response.get_data(as_text=True)


def test_keyset_pages_cover_every_ticket_once(app, db, client, desk):
    app.config["LIST_PAGE_SIZE"] = 3
    shop = desk()
    shop.login("manager")
    opened = [shop.open(subject=f"问题{i}") for i in range(7)]
    seen, url = [], "/tickets/?priority=normal"
    while url:
        html = client.get(url).get_data(as_text=True)
        assert re.search(r'class="count">7 ', html)
        seen += ticket_ids_from(html)
        found = re.search(r'class="button next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == sorted(opened, reverse=True)


def ticket_ids_from(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-ticket="(\d+)"', html)]


def test_list_and_board_queries_do_not_grow_with_the_number_of_tickets(app, db, client, desk):
    shop = desk(plugins=["property"])  # a ticket extension field joins in too
    shop.login("manager")
    staff = list(shop.staff.values())

    def add(n, start):
        for i in range(start, start + n):
            shop.open(
                subject=f"问题{i}",
                assignee_id=staff[i % len(staff)].id,
                team_id=shop.ids.team if i % 2 else None,
                customer_id=shop.ids.wang if i % 3 else shop.ids.li,
            )

    add(10, 0)
    counts = {}
    for label in ("ten", "hundred"):
        for url in ("/tickets/", "/tickets/board"):
            client.get(url)  # warm caches
            db.session.expire_all()
            with QueryCounter(db.engine) as counter:
                response = client.get(url)
                assert response.status_code == 200
            counts[(label, url)] = counter.count
        if label == "ten":
            add(90, 10)
    assert len(ticket_ids(client.get("/tickets/"))) == 50  # a full page
    assert counts[("ten", "/tickets/")] == counts[("hundred", "/tickets/")]
    assert counts[("ten", "/tickets/board")] == counts[("hundred", "/tickets/board")]


# -- board -------------------------------------------------------------------------------------


def test_board_has_a_column_per_state_with_a_card_limit(app, db, client, desk):
    app.config["TICKET_BOARD_LIMIT"] = 2
    shop = desk()
    shop.login("service_agent")
    new = [shop.open(subject=f"新问题{i}", priority="urgent") for i in range(3)]
    started = shop.open(subject="处理中的问题")
    client.post(f"/tickets/{started}/transition/start", data={"start-version": 1})
    html = client.get("/tickets/board").get_data(as_text=True)
    columns = dict(re.findall(r'data-state="(\w+)">(.*?)</section>', html, re.S))
    assert list(columns) == [
        "new",
        "assigned",
        "in_progress",
        "waiting_customer",
        "resolved",
        "closed",
        "cancelled",
    ]
    assert ticket_ids_from(columns["new"]) == [new[2], new[1]]  # newest two of three
    assert '<span class="count">3</span>' in columns["new"]
    assert "state=new" in columns["new"]  # a link to all of them in the list
    assert ticket_ids_from(columns["in_progress"]) == [started]
    assert "处理中的问题" in columns["in_progress"]
    assert "prio-urgent" in columns["new"] and "王女士" in columns["new"]
    assert "data-sla=" in columns["new"]
    # Filters apply to the board too.
    filtered = client.get("/tickets/board?priority=normal").get_data(as_text=True)
    assert ticket_ids_from(filtered) == [started]


# -- new ticket -------------------------------------------------------------------------------


def test_new_ticket_opens_it_with_sla_clocks_and_notifies_the_assignee(app, db, client, desk):
    shop = desk()
    manager = shop.login("manager")
    form = client.get(f"/tickets/new?customer_id={shop.ids.wang}").get_data(as_text=True)
    assert "王小姐" in form and "李太太" not in form  # contacts of the chosen customer
    response = client.post(
        "/tickets/new",
        data={
            "customer_id": shop.ids.wang,
            "contact_id": shop.ids.wang_contact,
            "type": "complaint",
            "priority": "high",
            "intake_channel": "wechat",
            "subject": "  物业费发票未收到 ",
            "description": "客户多次来电",
            "assignee_id": shop.agent.id,
            "team_id": shop.ids.team,
        },
    )
    assert response.status_code == 302
    ticket_id = int(response.headers["Location"].rsplit("/", 1)[1])
    ticket = fetch(db, shop, ticket_id)
    assert (ticket.subject, ticket.type, ticket.priority, ticket.intake_channel) == (
        "物业费发票未收到",
        "complaint",
        "high",
        "wechat",
    )
    assert (ticket.contact_id, ticket.assignee_id, ticket.team_id) == (
        shop.ids.wang_contact,
        shop.agent.id,
        shop.ids.team,
    )
    assert ticket.state == "new"
    with company_scope(shop.id):
        kinds = set(
            db.session.scalars(select(Obligation.kind).where(Obligation.subject_id == ticket_id))
        )
    assert kinds == {"ticket.first_response", "ticket.resolution"}
    notes = notices(db, shop, shop.agent.id)
    assert [n.kind for n in notes] == ["ticket.assigned"]
    assert f"#{ticket_id}" in notes[0].message and manager.name in notes[0].message
    assert notes[0].link == f"/tickets/{ticket_id}"
    assert count(db, shop, AuditLog, AuditLog.entity_id == ticket_id) == 1

    detail = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "物业费发票未收到" in detail and "王小姐" in detail and shop.agent.name in detail


def test_customer_picker_finds_customers_by_name_phone_or_code(app, client, desk):
    shop = desk()
    shop.login("service_agent")
    for query in ("王女", "13800001111", "C-WANG"):
        html = client.get(f"/tickets/new?customer_q={query}").get_data(as_text=True)
        assert f"/tickets/new?customer_id={shop.ids.wang}" in html
        assert "李先生" not in html
    html = client.get("/tickets/new?customer_q=nobody").get_data(as_text=True)
    assert "没有符合条件的客户" in html


@pytest.mark.parametrize(
    "change, field",
    [
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": "abc"}, "customer_id"),
        ({"customer_id": "99999999"}, "customer_id"),
        ({"customer_id": "9" * 30}, "customer_id"),
        ({"contact_id": "li_contact"}, "contact_id"),  # a contact of another customer
        ({"type": "warranty_claim"}, "type"),  # a plugin's type the company has not enabled
        ({"priority": "asap"}, "priority"),
        ({"intake_channel": "pigeon"}, "intake_channel"),
        ({"assignee_id": "viewer"}, "assignee_id"),  # viewers cannot work on tickets
        ({"assignee_id": "abc"}, "assignee_id"),
        ({"team_id": "999999"}, "team_id"),
    ],
)
def test_bad_new_ticket_input_is_refused_at_the_field(app, db, client, desk, change, field):
    shop = desk()
    shop.login("service_agent")
    data = {
        "customer_id": shop.ids.wang,
        "contact_id": "",
        "type": "inquiry",
        "priority": "normal",
        "intake_channel": "phone",
        "subject": "咨询",
        "assignee_id": "",
        "team_id": "",
    }
    data.update(change)
    if data["contact_id"] == "li_contact":
        data["contact_id"] = shop.ids.li_contact
    if data["assignee_id"] == "viewer":
        data["assignee_id"] = shop.staff["viewer"].id
    response = client.post("/tickets/new", data=data)
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.get_data(as_text=True)
    assert count(db, shop, ServiceTicket) == 0
    assert count(db, shop, Obligation) == 0


def test_customers_of_another_company_cannot_be_picked(app, db, client, desk):
    shop, other = desk(), desk()
    shop.login("service_agent")
    html = client.get("/tickets/new?customer_q=王女士").get_data(as_text=True)
    assert f"customer_id={shop.ids.wang}" in html
    assert f"customer_id={other.ids.wang}" not in html
    response = client.post(
        "/tickets/new",
        data={
            "customer_id": other.ids.wang,
            "type": "inquiry",
            "priority": "normal",
            "intake_channel": "phone",
            "subject": "咨询",
        },
    )
    assert response.status_code == 422
    assert 'data-field="customer_id"' in response.get_data(as_text=True)


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_plugin_ticket_types_only_for_the_company_that_enabled_the_plugin(app, client, desk):
    with_plugin, without = desk(plugins=["sample"]), desk()
    with_plugin.login("service_agent")
    assert 'value="warranty_claim"' in client.get("/tickets/new").get_data(as_text=True)
    assert 'value="warranty_claim"' in client.get("/tickets/").get_data(as_text=True)
    response = client.post(
        "/tickets/new",
        data={
            "customer_id": with_plugin.ids.wang,
            "type": "warranty_claim",
            "priority": "normal",
            "intake_channel": "phone",
            "subject": "保修",
        },
    )
    assert response.status_code == 302
    without.login("service_agent")
    assert 'value="warranty_claim"' not in client.get("/tickets/new").get_data(as_text=True)
    assert 'value="warranty_claim"' not in client.get("/tickets/").get_data(as_text=True)


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_plugin_panels_appear_on_the_ticket_page_of_companies_that_enabled_it(app, client, desk):
    with_plugin, without = desk(plugins=["sample"]), desk()
    ticket_id = with_plugin.open()
    with_plugin.login("viewer")
    assert f"sample panel for #{ticket_id}" in client.get(f"/tickets/{ticket_id}").get_data(
        as_text=True
    )
    other_id = without.open()
    without.login("viewer")
    assert "sample panel" not in client.get(f"/tickets/{other_id}").get_data(as_text=True)


def test_ticket_extension_fields_on_form_detail_and_list(app, db, client, desk):
    shop = desk(plugins=["property"])
    shop.login("service_agent")
    assert 'name="property__place"' in client.get("/tickets/new").get_data(as_text=True)
    response = client.post(
        "/tickets/new",
        data={
            "customer_id": shop.ids.wang,
            "type": "repair",
            "priority": "normal",
            "intake_channel": "phone",
            "subject": "电梯故障",
            "property__place": "common",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    ticket_id = int(response.headers["Location"].rsplit("/", 1)[1])
    other = shop.open(subject="别的问题")
    assert ticket_ids(client.get("/tickets/?property__place=common")) == [ticket_id]
    assert other not in ticket_ids(client.get("/tickets/?property__place=common"))
    assert client.get("/tickets/?property__place=moon").status_code == 400


# -- detail and workflow ----------------------------------------------------------------------


def test_detail_shows_clocks_in_the_company_time_zone(app, db, client, desk):
    shop = desk()
    shop.login("viewer")
    ticket_id = shop.open(FRIDAY_17, priority="urgent")
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    clocks_html = dict(re.findall(r'data-clock="([\w.]+)">(.*?)</tr>', html, re.S))
    assert "2024-03-11 12:00" in clocks_html["ticket.resolution"]  # not 04:00 UTC
    assert "2024-03-08 17:30" in clocks_html["ticket.first_response"]
    assert 'data-sla="breached"' in clocks_html["ticket.resolution"]

    shop.company.timezone = "Europe/Berlin"
    db.session.commit()
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    clocks_html = dict(re.findall(r'data-clock="([\w.]+)">(.*?)</tr>', html, re.S))
    assert "2024-03-11 05:00" in clocks_html["ticket.resolution"]


def offered(client, ticket_id) -> list[str]:
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    return re.findall(r'class="transition" data-transition="(\w+)"', html)


def test_transitions_offered_follow_the_role_and_the_state(app, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("service_agent")
    assert offered(client, ticket_id) == ["assign", "start", "cancel"]
    shop.login("sales_rep")
    assert offered(client, ticket_id) == ["start"]
    shop.login("viewer")
    assert offered(client, ticket_id) == []
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "/assignment" not in html and "/recovery" not in html


def test_taking_transitions_records_history_and_moves_the_clocks(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open(priority="urgent")
    shop.login("service_agent")
    response = client.post(f"/tickets/{ticket_id}/transition/start", data={"start-version": 1})
    assert response.status_code == 302
    assert offered(client, ticket_id) == ["wait", "resolve"]
    response = client.post(
        f"/tickets/{ticket_id}/transition/wait",
        data={"wait-version": 2, "wait-comment": "等客户提供购买凭证"},
    )
    assert response.status_code == 302
    ticket = fetch(db, shop, ticket_id)
    assert ticket.state == "waiting_customer"
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "等客户提供购买凭证" in html
    clocks_html = dict(re.findall(r'data-clock="([\w.]+)">(.*?)</tr>', html, re.S))
    assert 'data-sla="paused"' in clocks_html["ticket.resolution"]
    assert 'data-sla="met"' in clocks_html["ticket.first_response"]
    assert re.findall(r'<li data-transition="(\w+)"', html) == ["start", "wait"]


def test_assign_transition_sets_the_assignee_and_notifies_them(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("manager")
    response = client.post(
        f"/tickets/{ticket_id}/transition/assign",
        data={"assign-version": 1, "assign-assignee_id": shop.second_agent.id},
    )
    assert response.status_code == 302
    ticket = fetch(db, shop, ticket_id)
    assert (ticket.state, ticket.assignee_id) == ("assigned", shop.second_agent.id)
    assert [n.kind for n in notices(db, shop, shop.second_agent.id)] == ["ticket.assigned"]


def test_a_step_that_needs_a_comment_is_refused_at_the_comment_field(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("service_agent")
    client.post(f"/tickets/{ticket_id}/transition/start", data={"start-version": 1})
    response = client.post(
        f"/tickets/{ticket_id}/transition/resolve",
        data={"resolve-version": 2, "resolve-comment": "   "},
    )
    assert response.status_code == 422
    assert 'data-field="resolve-comment"' in response.get_data(as_text=True)
    assert fetch(db, shop, ticket_id).state == "in_progress"
    assert count(db, shop, WorkflowHistory) == 1  # only the start


def test_a_stale_form_is_a_409_asking_to_reload(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("service_agent")
    # Two people opened the ticket at version 1; the first starts it...
    assert (
        client.post(f"/tickets/{ticket_id}/transition/start", data={"start-version": 1}).status_code
        == 302
    )
    # ...the second, still looking at version 1, tries to cancel it.
    shop.login("manager")
    response = client.post(
        f"/tickets/{ticket_id}/transition/resolve",
        data={"resolve-version": 1, "resolve-comment": "已解决"},
    )
    assert response.status_code == 409
    assert "该工单已被他人修改" in response.get_data(as_text=True)
    assert fetch(db, shop, ticket_id).state == "in_progress"
    for url, data in (
        (f"/tickets/{ticket_id}/assignment", {"version": 1, "assignee_id": shop.agent.id}),
        (f"/tickets/{ticket_id}/recovery", {"version": 1, "apology": "y"}),
        (f"/tickets/{ticket_id}/transition/wait", {"wait-version": "x", "wait-comment": "等"}),
    ):
        response = client.post(url, data=data)
        assert response.status_code == 409, url
    ticket = fetch(db, shop, ticket_id)
    assert (ticket.assignee_id, ticket.apology, ticket.state) == (None, False, "in_progress")


def test_refused_steps_answer_with_a_message_never_a_500(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("service_agent")
    response = client.post(f"/tickets/{ticket_id}/transition/close", data={"close-version": 1})
    assert response.status_code == 409
    assert 'data-field="workflow"' in response.get_data(as_text=True)
    response = client.post(f"/tickets/{ticket_id}/transition/fly", data={"fly-version": 1})
    assert response.status_code == 409
    assert "fly" in response.get_data(as_text=True)
    response = client.post(f"/tickets/{ticket_id}/transition/%3Cb%3E", data={})
    assert response.status_code == 409 and "<b>" not in response.get_data(as_text=True)
    shop.login("sales_rep")
    response = client.post(
        f"/tickets/{ticket_id}/transition/cancel",
        data={"cancel-version": 1, "cancel-comment": "重复"},
    )
    assert response.status_code == 403
    assert "service_agent" in response.get_data(as_text=True)
    assert fetch(db, shop, ticket_id).state == "new"
    assert client.get("/tickets/999999").status_code == 404
    assert client.get("/tickets/" + "9" * 30).status_code == 404
    assert client.get("/tickets/3000000000").status_code == 404
    assert client.get("/tickets/new?customer_q=3000000000").status_code == 200


def test_viewers_read_but_do_not_write(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("viewer")
    assert client.get("/tickets/").status_code == 200
    assert client.get(f"/tickets/{ticket_id}").status_code == 200
    assert "/tickets/new" not in client.get("/tickets/").get_data(as_text=True)
    assert client.get("/tickets/new").status_code == 403
    for url, data in (
        (f"/tickets/{ticket_id}/transition/start", {"start-version": 1}),
        (f"/tickets/{ticket_id}/assignment", {"version": 1, "assignee_id": shop.agent.id}),
        (f"/tickets/{ticket_id}/recovery", {"version": 1, "apology": "y"}),
        (f"/tickets/{ticket_id}/followup", {"customer_score": 5}),
    ):
        assert client.post(url, data=data).status_code == 403, url
    ticket = fetch(db, shop, ticket_id)
    assert (ticket.state, ticket.assignee_id, ticket.apology) == ("new", None, False)


def test_assignment_form_changes_assignee_and_team(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open(assignee_id=None)
    shop.login("manager")
    response = client.post(
        f"/tickets/{ticket_id}/assignment",
        data={"version": 1, "assignee_id": shop.agent.id, "team_id": shop.ids.team},
    )
    assert response.status_code == 302
    ticket = fetch(db, shop, ticket_id)
    assert (ticket.assignee_id, ticket.team_id, ticket.version) == (
        shop.agent.id,
        shop.ids.team,
        2,
    )
    assert [n.kind for n in notices(db, shop, shop.agent.id)] == ["ticket.assigned"]
    response = client.post(
        f"/tickets/{ticket_id}/assignment",
        data={"version": 2, "assignee_id": shop.staff["viewer"].id, "team_id": ""},
    )
    assert response.status_code == 422
    assert 'data-field="assignee_id"' in response.get_data(as_text=True)
    shop.login("sales_rep")  # may not reassign (the assign step is for service roles)
    response = client.post(
        f"/tickets/{ticket_id}/assignment", data={"version": 2, "assignee_id": ""}
    )
    assert response.status_code == 403
    assert fetch(db, shop, ticket_id).assignee_id == shop.agent.id


# -- service recovery -------------------------------------------------------------------------


def recover(client, ticket_id, version, amount, **extra):
    data = {"version": version, "apology": "y", "compensation": amount, **extra}
    return client.post(f"/tickets/{ticket_id}/recovery", data=data)


@pytest.mark.parametrize(
    "role, allowed, refused, limit",
    [
        ("service_agent", "150", "200.01", "¥200.00"),
        ("manager", "2000", "2500", "¥2,000.00"),
        ("admin", "100000", None, None),
        ("sales_rep", "0", "1", "¥0.00"),
    ],
)
def test_compensation_is_limited_by_role(app, db, client, desk, role, allowed, refused, limit):
    shop = desk()
    ticket_id = shop.open(type="complaint")
    shop.login(role)
    response = recover(client, ticket_id, 1, allowed, recovery_note="上门致歉并赠送清洗服务")
    assert response.status_code == 302
    ticket = fetch(db, shop, ticket_id)
    assert ticket.apology is True and ticket.compensation == Decimal(allowed)
    assert ticket.recovery_note == "上门致歉并赠送清洗服务"
    if refused is None:
        return
    response = recover(client, ticket_id, 2, refused)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    error = re.search(r'<small class="error" data-field="compensation">(.*?)</small>', html)
    assert error and limit in error.group(1)
    assert fetch(db, shop, ticket_id).compensation == Decimal(allowed)


@pytest.mark.parametrize("amount", ["-5", "abc", "NaN", "Infinity", "1e12"])
def test_bad_compensation_amounts_are_refused_at_the_field(app, db, client, desk, amount):
    shop = desk()
    ticket_id = shop.open()
    shop.login("admin")
    response = recover(client, ticket_id, 1, amount)
    assert response.status_code == 422
    assert 'data-field="compensation"' in response.get_data(as_text=True)
    ticket = fetch(db, shop, ticket_id)
    assert (ticket.apology, ticket.compensation) == (False, None)


def test_the_company_sets_the_limits(app, db, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("manager")
    assert client.get("/tickets/settings").status_code == 200
    assert (
        client.post("/tickets/settings/recovery", data={"limit_service_agent": "50"}).status_code
        == 403
    )
    shop.login("admin")
    response = client.post(
        "/tickets/settings/recovery",
        data={
            "limit_service_agent": "50",
            "limit_sales_rep": "0",
            "limit_manager": "800",
            "limit_admin": "",
        },
    )
    assert response.status_code == 302
    response = client.post("/tickets/settings/recovery", data={"limit_manager": "-1"})
    assert response.status_code == 422
    assert 'data-field="limit_manager"' in response.get_data(as_text=True)
    shop.login("service_agent")
    assert client.get("/tickets/settings").status_code == 403
    response = recover(client, ticket_id, 1, "60")
    assert response.status_code == 422
    assert "¥50.00" in response.get_data(as_text=True)
    assert recover(client, ticket_id, 1, "50").status_code == 302
    # A higher amount granted by a manager can be left as it is by the agent.
    shop.login("manager")
    assert recover(client, ticket_id, 2, "700").status_code == 302
    shop.login("service_agent")
    response = recover(client, ticket_id, 3, "700", recovery_note="已电话致歉")
    assert response.status_code == 302
    assert fetch(db, shop, ticket_id).recovery_note == "已电话致歉"


# -- settings ---------------------------------------------------------------------------------


def sla_data(**overrides):
    data = {
        "urgent__first": 15,
        "urgent__resolution": 120,
        "high__first": 60,
        "high__resolution": 480,
        "normal__first": 240,
        "normal__resolution": 1620,
        "low__first": 480,
        "low__resolution": 2700,
        "followup_threshold": 2,
    }
    data.update(overrides)
    return data


def test_managers_set_sla_policies_for_new_tickets(app, db, client, desk):
    shop = desk()
    before = shop.open(FRIDAY_17, priority="urgent")
    shop.login("manager")
    html = client.get("/tickets/settings").get_data(as_text=True)
    assert 'name="urgent__resolution"' in html and 'value="240"' in html  # the default
    assert client.post("/tickets/settings/sla", data=sla_data()).status_code == 302
    with company_scope(shop.id):
        policy = db.session.scalar(select(SlaPolicy).where(SlaPolicy.priority == "urgent"))
        assert (policy.first_response_minutes, policy.resolution_minutes) == (15, 120)
    after = shop.open(FRIDAY_17, priority="urgent")
    with company_scope(shop.id):
        due = dict(
            db.session.execute(
                select(Obligation.subject_id, Obligation.due_at).where(
                    Obligation.kind == "ticket.resolution"
                )
            ).all()
        )
    assert due[before] == sh(2024, 3, 11, 12)  # started clocks keep their target
    assert due[after] == sh(2024, 3, 11, 10)  # one hour Friday, one hour Monday
    shop.login("service_agent")
    assert client.post("/tickets/settings/sla", data=sla_data()).status_code == 403


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"urgent__first": "0"}, "urgent__first"),
        ({"high__resolution": "abc"}, "high__resolution"),
        ({"low__first": ""}, "low__first"),
        ({"normal__first": "600", "normal__resolution": "300"}, "normal__resolution"),
        ({"followup_threshold": "6"}, "followup_threshold"),
    ],
)
def test_bad_sla_settings_are_refused_at_the_field(app, db, client, desk, overrides, field):
    shop = desk()
    shop.login("admin")
    response = client.post("/tickets/settings/sla", data=sla_data(**overrides))
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.get_data(as_text=True)
    assert count(db, shop, SlaPolicy) == 0


# -- follow-up through the page ---------------------------------------------------------------


def resolved_ticket(client, shop, **values):
    ticket_id = shop.open(**values)
    shop.login("service_agent")
    client.post(f"/tickets/{ticket_id}/transition/start", data={"start-version": 1})
    client.post(
        f"/tickets/{ticket_id}/transition/resolve",
        data={"resolve-version": 2, "resolve-comment": "已更换压缩机"},
    )
    return ticket_id


def test_followup_form_appears_after_resolution(app, client, desk):
    shop = desk()
    ticket_id = shop.open()
    shop.login("service_agent")
    assert "followup-form" not in client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    response = client.post(f"/tickets/{ticket_id}/followup", data={"customer_score": 5})
    assert response.status_code == 409
    client.post(f"/tickets/{ticket_id}/transition/start", data={"start-version": 1})
    client.post(
        f"/tickets/{ticket_id}/transition/resolve",
        data={"resolve-version": 2, "resolve-comment": "已处理"},
    )
    assert "followup-form" in client.get(f"/tickets/{ticket_id}").get_data(as_text=True)


def test_a_good_followup_keeps_the_ticket_resolved(app, db, client, desk):
    shop = desk()
    ticket_id = resolved_ticket(client, shop, assignee_id=shop.agent.id)
    shop.login("manager")
    response = client.post(
        f"/tickets/{ticket_id}/followup",
        data={
            "customer_score": 4,
            "quality_score": 85,
            "result": "制冷正常，满意",
            "contact_id": shop.ids.wang_contact,
        },
    )
    assert response.status_code == 302
    assert fetch(db, shop, ticket_id).state == "resolved"
    with company_scope(shop.id):
        visit = db.session.scalar(select(Interaction).where(Interaction.ticket_id == ticket_id))
        assert (visit.kind, visit.customer_score, visit.quality_score) == ("follow_up", 4, 85)
        assert visit.contact_id == shop.ids.wang_contact
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "制冷正常，满意" in html and "4/5" in html
    assert notices(db, shop, shop.agent.id) == []


def test_a_bad_followup_reopens_the_ticket_and_notifies_its_owner(app, db, client, desk):
    shop = desk()
    ticket_id = resolved_ticket(
        client, shop, assignee_id=shop.second_agent.id, team_id=shop.ids.team
    )
    shop.login("admin")
    response = client.post(
        f"/tickets/{ticket_id}/followup",
        data={"customer_score": 1, "quality_score": 40, "result": "还是不制冷"},
    )
    assert response.status_code == 302
    ticket = fetch(db, shop, ticket_id)
    assert ticket.state == "in_progress"
    html = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert re.findall(r'<li data-transition="(\w+)"', html)[-1] == "reopen"
    assert "还是不制冷" in html
    assert [n.kind for n in notices(db, shop, shop.second_agent.id)] == ["ticket.reopened"]
    assert [n.kind for n in notices(db, shop, shop.manager.id)] == ["ticket.reopened"]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"customer_score": ""}, "customer_score"),
        ({"customer_score": "0"}, "customer_score"),
        ({"customer_score": "6"}, "customer_score"),
        ({"customer_score": "很好"}, "customer_score"),
        ({"customer_score": "4", "quality_score": "101"}, "quality_score"),
        ({"customer_score": "4", "quality_score": "-1"}, "quality_score"),
        ({"customer_score": "4", "contact_id": "999999"}, "contact_id"),
    ],
)
def test_bad_followup_input_is_refused_at_the_field(app, db, client, desk, data, field):
    shop = desk()
    ticket_id = resolved_ticket(client, shop)
    response = client.post(f"/tickets/{ticket_id}/followup", data=data)
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.get_data(as_text=True)
    assert count(db, shop, Interaction) == 0
    assert fetch(db, shop, ticket_id).state == "resolved"


def test_the_list_can_put_the_nearest_sla_deadline_first(app, db, client, desk):
    app.config["LIST_PAGE_SIZE"] = 2
    shop = desk()
    shop.login("service_agent")
    low = shop.open(FRIDAY_17, priority="low")
    urgent = shop.open(FRIDAY_17, priority="urgent")
    answered = shop.open(FRIDAY_17 - timedelta(days=3), priority="urgent")
    high = shop.open(FRIDAY_17, priority="high")
    with company_scope(shop.id):  # answered and resolved: its clocks are met
        db.session.execute(
            update(Obligation).where(Obligation.subject_id == answered).values(met_at=FRIDAY_17)
        )
        db.session.commit()
    seen, url = [], "/tickets/?sort=due"
    while url:
        html = client.get(url).get_data(as_text=True)
        assert re.search(r'class="count">4 ', html)
        assert '<option value="due" selected>' in html
        seen += ticket_ids_from(html)
        found = re.search(r'class="button next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == [urgent, high, low, answered]  # no running clock: last
    assert ticket_ids(client.get("/tickets/")) == [high, answered]  # newest first, as before
    assert client.get("/tickets/?sort=due&after=x1").status_code == 400
    refused = client.get("/tickets/?sort=oldest")
    assert refused.status_code == 400 and 'data-field="sort"' in refused.text
