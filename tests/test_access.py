"""Record rules: a sales rep sees the customers of their team; a manager all of the company's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core import access
from core.models import CompanySetting, Customer, Membership, Team
from core.tenancy import company_scope, unscoped


@pytest.fixture
def world(app, db, company, make_user):
    """Company with two sales teams: reps A and B in team 1, rep C in team 2, and a manager."""
    acme = company()
    users = {
        "a": make_user("sales_rep", acme),
        "b": make_user("sales_rep", acme),
        "c": make_user("sales_rep", acme),
        "boss": make_user("manager", acme),
        "viewer": make_user("viewer", acme),
    }
    with company_scope(acme.id):
        one, two = Team(name="销售一部"), Team(name="销售二部")
        db.session.add_all([one, two])
        db.session.flush()
        with unscoped():
            for key, team in (("a", one), ("b", one), ("c", two)):
                member = db.session.scalar(
                    select(Membership).where(Membership.user_id == users[key].id)
                )
                member.team_id = team.id
        for key in ("a", "b", "c", "boss"):
            db.session.add(
                Customer(name=f"客户-{key}", owner_id=users[key].id, phone="13800138000")
            )
        db.session.add(Customer(name="客户-nobody"))
        db.session.commit()
        ids = {c.name: c.id for c in db.session.scalars(select(Customer))}
    return SimpleNamespace(id=acme.id), {key: user.id for key, user in users.items()}, ids


def log_in(client, user_id, company):
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
        session["company_id"] = company.id


def names(client, url="/api/v1/customers"):
    return sorted(row["name"] for row in client.get(url).get_json()["data"])


def test_a_rep_sees_own_and_teammates_customers_only(client, world):
    acme, users, ids = world
    log_in(client, users["a"], acme)
    assert names(client) == ["客户-a", "客户-b"]
    page = client.get("/customers/").get_data(as_text=True)
    assert "客户-a" in page and "客户-b" in page
    assert "客户-c" not in page and "客户-boss" not in page and "客户-nobody" not in page
    owner_filter = page[page.index('<select name="owner_id"') :]
    owner_filter = owner_filter[: owner_filter.index("</select>")]
    assert f'value="{users["b"]}"' in owner_filter and f'value="{users["c"]}"' not in owner_filter


def test_rep_of_the_other_team_sees_only_theirs(client, world):
    acme, users, _ids = world
    log_in(client, users["c"], acme)
    assert names(client) == ["客户-c"]


def test_a_manager_sees_every_customer(client, world):
    acme, users, _ids = world
    log_in(client, users["boss"], acme)
    assert names(client) == ["客户-a", "客户-b", "客户-boss", "客户-c", "客户-nobody"]


def test_a_hidden_customer_page_is_refused_naming_the_rule(client, world):
    acme, users, ids = world
    log_in(client, users["a"], acme)
    assert client.get(f"/customers/{ids['客户-b']}").status_code == 200
    refused = client.get(f"/customers/{ids['客户-c']}")
    assert refused.status_code == 403
    assert "own_or_team" in refused.get_data(as_text=True)
    assert client.get(f"/customers/{ids['客户-c']}/edit").status_code == 403
    assert client.get(f"/customers/{ids['客户-c']}/contacts/new").status_code == 403
    assert client.get("/customers/99999").status_code == 404
    api = client.get(f"/api/v1/customers/{ids['客户-c']}")
    assert api.status_code == 403 and api.get_json()["error"]["code"] == "record_rule"
    assert client.patch(f"/api/v1/customers/{ids['客户-c']}", json={"name": "x"}).status_code == 403


def test_search_and_export_obey_the_rule(db, client, world):
    acme, users, _ids = world
    log_in(client, users["a"], acme)
    found = client.get("/customers/?q=138-0013-8000").get_data(as_text=True)
    assert "客户-a" in found and "客户-c" not in found
    assert client.get("/customers/export.csv").status_code == 403  # reps may not export
    with company_scope(acme.id):  # ... unless the company lets them
        db.session.add(CompanySetting(key=access.PERMISSIONS_KEY, value={"export": ["viewer"]}))
        db.session.commit()
    csv = client.get("/customers/export.csv").get_data(as_text=True)
    assert "客户-a" in csv and "客户-b" in csv
    assert "客户-c" not in csv and "客户-boss" not in csv and "客户-nobody" not in csv


def test_the_company_can_narrow_a_role_further(app, db, client, world):
    acme, users, _ids = world
    with company_scope(acme.id):
        db.session.add(CompanySetting(key=access.SETTING_KEY, value={"sales_rep": "own"}))
        db.session.commit()
    log_in(client, users["a"], acme)
    assert names(client) == ["客户-a"]


def test_an_unknown_rule_name_fails_closed(app, db, client, world):
    acme, users, _ids = world
    with company_scope(acme.id):
        db.session.add(CompanySetting(key=access.SETTING_KEY, value={"manager": "typo"}))
        db.session.commit()
    log_in(client, users["boss"], acme)
    assert names(client) == ["客户-boss"]


def test_reassigning_out_of_the_team_takes_the_customer_out_of_sight(client, world):
    acme, users, ids = world
    log_in(client, users["a"], acme)
    response = client.post(
        f"/customers/{ids['客户-a']}/edit",
        data={"name": "客户-a", "kind": "consumer", "status": "existing", "owner_id": users["c"]},
    )
    assert response.status_code == 302 and response.location.endswith("/customers/")
    assert names(client) == ["客户-b"]


def test_a_viewer_sees_phone_numbers_masked(db, client, world):
    acme, users, ids = world
    log_in(client, users["viewer"], acme)
    page = client.get("/customers/").get_data(as_text=True)
    assert "138****8000" in page and "13800138000" not in page
    detail = client.get(f"/customers/{ids['客户-a']}").get_data(as_text=True)
    assert "138****8000" in detail and "13800138000" not in detail
    assert client.get(f"/api/v1/customers/{ids['客户-a']}").get_json()["phone"] == "138****8000"
    assert client.get("/customers/export.csv").status_code == 403
    with company_scope(acme.id):
        db.session.add(CompanySetting(key=access.PERMISSIONS_KEY, value={"export": []}))
        db.session.commit()
    exported = client.get("/customers/export.csv").get_data(as_text=True)
    assert "138****8000" in exported and "13800138000" not in exported
    assert client.get("/customers/new").status_code == 403
    log_in(client, users["boss"], acme)
    assert "13800138000" in client.get(f"/customers/{ids['客户-a']}").get_data(as_text=True)


def test_rules_do_not_narrow_cli_and_tests(db, world):
    acme, _users, _ids = world
    with company_scope(acme.id):
        assert len(db.session.scalars(select(Customer)).all()) == 5


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13800138000", "138****8000"),
        ("010-65529988", "010****9988"),
        ("12345", "****45"),
        ("", ""),
    ],
)
def test_mask_phone(raw, masked):
    assert access.mask_phone(raw) == masked


def test_demo_reps_of_two_teams_see_different_customers(app, client):
    from core import demo

    demo.ensure(echo=lambda line: None)

    def visible(email):
        client.post("/login", data={"email": email, "password": demo.PASSWORD})
        body = client.get("/api/v1/customers?limit=500").get_json()
        client.post("/logout")
        return {row["id"] for row in body["data"]}

    first, second = visible("sales_rep@pharma.demo"), visible("sales_rep2@pharma.demo")
    everyone = visible("manager@pharma.demo")
    assert first and second and not first & second
    assert first | second <= everyone
    assert len(first) < len(everyone) and len(second) < len(everyone)


def test_lists_joined_with_customers_follow_the_rule(app, db, client, world):
    from core.tickets import open_ticket

    acme, users, ids = world
    with company_scope(acme.id):
        open_ticket(customer_id=ids["客户-a"], subject="甲的工单")
        open_ticket(customer_id=ids["客户-c"], subject="丙的工单")
        db.session.commit()
    log_in(client, users["a"], acme)
    tickets = client.get("/tickets/").get_data(as_text=True)
    assert "甲的工单" in tickets and "丙的工单" not in tickets
    log_in(client, users["boss"], acme)
    tickets = client.get("/tickets/").get_data(as_text=True)
    assert "甲的工单" in tickets and "丙的工单" in tickets
