"""The dashboard (工作台): where a user lands, the core's widgets and the plugins' widgets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import utcnow
from core.models import Customer, Interaction, Membership, Team
from core.tenancy import company_scope
from core.testing import QueryCounter
from core.tickets import open_ticket


def widget(html: str, title: str) -> str:
    """The HTML of the widget box titled ``title`` (its ``data-widget``)."""
    start = html.index(f'data-widget="{title}"')
    return html[start : html.find("</section>", start)]


def seed(db, company, user, n: int, team_id: int | None = None) -> None:
    """``n`` customers, tickets assigned to ``user`` and next steps of ``user``."""
    now = utcnow()
    with company_scope(company.id):
        customers = [Customer(name=f"客户{i}", value_tier="AB"[i % 2]) for i in range(n)]
        db.session.add_all(customers)
        db.session.flush()
        for i, customer in enumerate(customers):
            open_ticket(
                at=now - timedelta(days=3),
                customer_id=customer.id,
                subject=f"工单{i}",
                priority="urgent",
                assignee_id=user.id,
                team_id=team_id,
            )
            db.session.add(
                Interaction(
                    customer_id=customer.id,
                    user_id=user.id,
                    kind="call",
                    next_step=f"回电{i}",
                    next_step_due=now + timedelta(days=(-1 if i % 2 else 2)),
                )
            )
        db.session.commit()


def test_home_and_login_land_on_the_dashboard(app, client, company, make_user):
    acme = company()
    make_user("sales_rep", acme, email="li@example.com", password="pw-123456")
    response = client.post("/login", data={"email": "li@example.com", "password": "pw-123456"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/dashboard/")
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"].endswith("/dashboard/")
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert 'href="/dashboard/"' in page.get_data(as_text=True)  # the menu entry


def test_login_form_labels_follow_the_language(app, client):
    client.post("/language/en")
    assert "Password" in client.get("/login").get_data(as_text=True)
    client.post("/language/zh_CN")
    html = client.get("/login").get_data(as_text=True)
    assert "<label" in html


def test_core_widgets_show_my_work(app, db, client, company, login_as):
    acme = company()
    me = login_as("service_agent", acme)
    seed(db, acme, me, 4)
    html = client.get("/dashboard/").get_data(as_text=True)
    tickets = widget(html, "My open tickets")
    assert "/tickets/?mine=1&amp;state=new" in tickets and ">4<" in tickets
    steps = widget(html, "My next steps")
    assert "回电1" in steps and "回电0" in steps and 'class="overdue"' in steps
    customers = widget(html, "Customers")
    assert ">4<" in customers  # new this month
    assert "/customers/?value_tier=A" in customers


def test_sla_counts_are_those_of_my_team(app, db, client, company, login_as, make_user):
    acme = company()
    me = login_as("service_agent", acme)
    other = make_user("service_agent", acme)
    with company_scope(acme.id):
        mine, theirs = Team(name="一组"), Team(name="二组")
        db.session.add_all([mine, theirs])
        db.session.flush()
        db.session.scalars(
            select(Membership).where(Membership.user_id == me.id)
        ).one().team_id = mine.id
        db.session.commit()
        mine_id, theirs_id = mine.id, theirs.id
    seed(db, acme, other, 3, team_id=mine_id)  # urgent tickets opened 3 days ago: breached
    seed(db, acme, other, 5, team_id=theirs_id)
    html = client.get("/dashboard/").get_data(as_text=True)
    box = widget(html, "Service deadlines: my team")
    breached = box[box.index('data-sla="breached"') :]
    assert f"/tickets/?sla=breached&amp;team={mine_id}" in breached
    assert ">6<" in breached  # 3 tickets × (first response + resolution)
    assert "Whole company" not in box  # agents see their team only


def test_managers_also_see_the_whole_company(app, db, client, company, login_as, make_user):
    acme = company()
    login_as("manager", acme)
    seed(db, acme, make_user("service_agent", acme), 2)
    client.post("/language/en")
    box = widget(client.get("/dashboard/").get_data(as_text=True), "Service deadlines: my team")
    assert "Whole company: 0 at risk, 4 breached." in box


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_plugin_widget_only_for_the_company_that_enabled_it(app, client, company, login_as):
    on = company(code="on", plugins=["sample"])
    off = company(code="off")
    login_as("manager", on)
    html = client.get("/dashboard/").get_data(as_text=True)
    assert "sample widget for on" in html
    # sorted by order: the plugin's (15) between my tickets (10) and the deadlines (20)
    assert html.index("My open tickets") < html.index("Sample widget")
    assert html.index("Sample widget") < html.index("Service deadlines")
    login_as("manager", off)
    assert "sample widget" not in client.get("/dashboard/").get_data(as_text=True)


def test_a_failing_widget_does_not_take_the_page_down(app, client, company, login_as, monkeypatch):
    from core.web import dashboard
    from core.web.panels import Panel

    original = dashboard.widgets
    monkeypatch.setattr(
        dashboard, "widgets", lambda: [Panel("Broken", lambda: str(1 / 0)), *original()]
    )
    login_as("manager", company())
    client.post("/language/en")
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "could not be drawn" in widget(html, "Broken")
    assert "My open tickets" in html


def test_query_count_does_not_grow_with_the_data(app, db, client, company, login_as):
    acme = company()
    me = login_as("manager", acme)
    seed(db, acme, me, 2)
    client.get("/dashboard/")  # warm caches
    db.session.expire_all()
    with QueryCounter(db.engine) as few:
        assert client.get("/dashboard/").status_code == 200
    seed(db, acme, me, 30)
    db.session.expire_all()
    with QueryCounter(db.engine) as many:
        assert client.get("/dashboard/").status_code == 200
    assert many.count == few.count
    assert few.count <= 20


def test_a_user_without_a_company_gets_a_message(app, db, client):
    from core.models import User

    user = User(email="lonely@example.com", name="Lonely")
    user.set_password("pw-123456")
    db.session.add(user)
    db.session.commit()
    client.post("/login", data={"email": "lonely@example.com", "password": "pw-123456"})
    client.post("/language/en")
    response = client.get("/dashboard/")
    assert response.status_code == 200
    assert "not a member of any company" in response.get_data(as_text=True)
