"""A customer's timeline: interactions, tickets and their steps, plugin entries; newest first."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from core import workflow
from core.models import Customer, Interaction
from core.tenancy import company_scope
from core.tickets import open_ticket
from tests.test_customer_list import QueryCounter

pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def seed(db, acme, user, interactions=2):
    with company_scope(acme.id):
        customer = Customer(
            name="华山医院", owner_id=user.id, last_contact_at=T0 - timedelta(days=9)
        )
        db.session.add(customer)
        db.session.flush()
        for i in range(interactions):
            db.session.add(
                Interaction(
                    customer_id=customer.id,
                    user_id=user.id,
                    kind="visit",
                    occurred_at=T0 + timedelta(hours=i),
                    purpose=f"拜访{i:03d}",
                )
            )
        ticket = open_ticket(at=T0 + timedelta(days=1), customer_id=customer.id, subject="设备报修")
        workflow.transition(ticket, "start", user=user, at=T0 + timedelta(days=2))
        workflow.transition(
            ticket, "resolve", user=user, inputs={"comment": "已修好"}, at=T0 + timedelta(days=3)
        )
        db.session.commit()
        return customer.id


def entries(html):
    return [line for line in html.splitlines() if 'class="timeline-entry"' in line]


def test_everything_that_happened_newest_first(app, db, client, company, login_as):
    acme = company(plugins=["sample"])
    user = login_as("manager", acme)
    customer_id = seed(db, acme, user)
    html = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    timeline = html[html.index('id="timeline"') : html.index("</ol>", html.index('id="timeline"'))]
    order = [
        timeline.index(text)
        for text in ("设备报修", "拜访001", "拜访000", "Sample record of 华山医院")
    ]
    assert order == sorted(order)  # resolved (day 3) … visits (day 0) … plugin entry (January)
    assert timeline.count("#") >= 3  # opened, started, resolved
    assert 'href="/sample/"' in timeline
    # last contact: the newest interaction (10:00 UTC = 18:00 in Shanghai), not the older column
    assert re.search(r'data-field="last_contact">2026-03-02 18:00<', html)


def test_plugin_entries_and_panels_only_for_the_company_that_enabled_it(
    app, db, client, company, login_as
):
    with_plugin, without = company(plugins=["sample"]), company()
    user = login_as("manager", with_plugin)
    shown = client.get(f"/customers/{seed(db, with_plugin, user)}").get_data(as_text=True)
    assert "Sample record of" in shown and "Sample customer panel" in shown
    other = login_as("manager", without)
    hidden = client.get(f"/customers/{seed(db, without, other)}").get_data(as_text=True)
    assert "Sample record of" not in hidden and "Sample customer panel" not in hidden


def test_long_history_pages_with_an_older_link_in_bounded_queries(
    app, db, client, company, login_as
):
    acme = company()
    user = login_as("manager", acme)
    small = seed(db, acme, user, interactions=3)
    big = seed(db, acme, user, interactions=80)
    client.get(f"/customers/{small}")  # warm caches
    db.session.expire_all()
    with QueryCounter(db.engine) as few:
        client.get(f"/customers/{small}")
    db.session.expire_all()
    with QueryCounter(db.engine) as many:
        html = client.get(f"/customers/{big}").get_data(as_text=True)
    assert many.count == few.count
    assert len(entries(html)) == 50
    assert "拜访079" in html and "拜访000" not in html
    link = next(part for part in html.split('"') if "before=" in part).replace("&amp;", "&")
    assert link.startswith(f"/customers/{big}?before=")
    rest = client.get(link.split("#")[0]).get_data(as_text=True)
    assert "拜访000" in rest and "拜访079" not in rest


def test_a_bad_before_is_a_400(app, db, client, company, login_as):
    acme = company()
    user = login_as("manager", acme)
    customer_id = seed(db, acme, user)
    assert client.get(f"/customers/{customer_id}?before=yesterday").status_code == 400
    assert client.get(f"/customers/{customer_id}?before=2026-01-01T00:00").status_code == 400
