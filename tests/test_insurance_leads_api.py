"""The API resource ``insurance_leads``: lists with the web list's filters, reading one, creating
the prospect and its lead like the web form (or a lead on an existing customer), changing the
source, notes and (managers) the agent, the lead workflow through the core's transitions, the
web's permissions (viewers read only, an agent's login gives leads to herself and her downline,
the customer record rule), 404 for a company without the plugin; bad input is a 4xx naming the
field with nothing written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core import tokens
from core.models import Customer
from core.tenancy import company_scope
from core.testing import QueryCounter, company_today
from plugins.insurance import leads
from plugins.insurance.models import Agent, Lead, Referral
from tests.insurance_team import lead_team

URL = "/api/v1/insurance_leads"


@pytest.fixture
def insurer(company):
    return company(plugins=["insurance"])


@pytest.fixture
def people(db, insurer, make_user):
    """The shared team (tests/insurance_team.py) and a viewer."""
    return lead_team(db, insurer, make_user, viewer=True)


def bearer(user, company):
    _row, secret = tokens.issue(user, company.id, "api")
    return {"Authorization": f"Bearer {secret}"}


def new_lead(db, name, agent_id=None, user=None, **kw):
    lead = leads.create_lead(leads.LeadInput(name=name, agent_id=agent_id, **kw), user)
    db.session.flush()
    return lead


def counts(db, company):
    with company_scope(company.id):
        return tuple(
            db.session.scalar(select(func.count()).select_from(m))
            for m in (Customer, Lead, Referral)
        )


def ids(response):
    assert response.status_code == 200, response.get_json()
    return {item["id"] for item in response.get_json()["data"]}


def fields(response):
    return set(response.get_json()["error"].get("fields") or {})


# -- reading --------------------------------------------------------------------------------------


def test_list_filters_search_and_read_one(client, db, insurer, people):
    day = company_today()
    with company_scope(insurer.id):
        fan = Customer(name="老客户王", status="existing", owner_id=people["manager"].id)
        db.session.add(fan)
        db.session.flush()
        a = new_lead(db, "李女士", people["boss"], people["manager"], source="walk_in",
                     phone="13900001111", created_on=day - timedelta(days=10))  # fmt: skip
        b = new_lead(db, "周先生", people["other"], people["manager"], source="referral",
                     referrer_customer_id=fan.id, created_on=day - timedelta(days=2))  # fmt: skip
        web = new_lead(db, "网客", None, people["manager"], source="online",
                       channel_id=people["other_channel"])  # fmt: skip
        db.session.commit()
        a_id, b_id, web_id, fan_id = a.id, b.id, web.id, fan.id
    head = bearer(people["manager"], insurer)
    assert ids(client.get(URL, headers=head)) == {a_id, b_id, web_id}
    assert ids(client.get(f"{URL}?state=new&state=lost", headers=head)) == {a_id, b_id, web_id}
    assert ids(client.get(f"{URL}?state=lost", headers=head)) == set()
    assert ids(client.get(f"{URL}?source=referral", headers=head)) == {b_id}
    assert ids(client.get(f"{URL}?agent_id={people['boss']}", headers=head)) == {a_id}
    assert ids(client.get(f"{URL}?channel_id={people['other_channel']}", headers=head)) == {
        b_id,
        web_id,
    }
    assert ids(client.get(f"{URL}?no_agent=true", headers=head)) == {web_id}
    assert ids(client.get(f"{URL}?no_agent=false", headers=head)) == {a_id, b_id}
    since = (day - timedelta(days=5)).isoformat()
    assert ids(client.get(f"{URL}?created_on__min={since}", headers=head)) == {b_id, web_id}
    assert ids(client.get(f"{URL}?created_on__max={since}", headers=head)) == {a_id}
    assert ids(client.get(f"{URL}?q=李女", headers=head)) == {a_id}
    assert ids(client.get(f"{URL}?q=139-0000-1111", headers=head)) == {a_id}
    assert ids(client.get(f"{URL}?referrer_customer_id={fan_id}", headers=head)) == {b_id}
    page = client.get(f"{URL}?sort=created&limit=2", headers=head).get_json()
    assert [i["id"] for i in page["data"]] == [web_id, b_id] and page["count"] == 3
    rest = client.get(f"{URL}?sort=created&limit=2&after={page['next_after']}", headers=head)
    assert ids(rest) == {a_id} and rest.get_json()["next_after"] is None
    one = client.get(f"{URL}/{b_id}", headers=head)
    assert one.status_code == 200 and one.headers["ETag"] == '"1"'
    item = one.get_json()
    assert (item["name"], item["state"], item["source"], item["agent_id"]) == (
        "周先生",
        "new",
        "referral",
        people["other"],
    )
    assert (item["referrer_customer_id"], item["referrer_agent_id"]) == (fan_id, None)
    assert item["channel_id"] == people["other_channel"] and item["created_on"]
    for query, name in (
        ("state=bogus", "state"),
        ("source=telepathy", "source"),
        ("agent_id=x", "agent_id"),
        ("created_on__min=yesterday", "created_on__min"),
        ("no_agent=maybe", "no_agent"),
        ("referrer_agent_id=-1", "referrer_agent_id"),
        ("scope=mine", "scope"),  # the manager is no agent
        ("colour=red", "colour"),
        ("after=garbage", "after"),
    ):
        bad = client.get(f"{URL}?{query}", headers=head)
        assert bad.status_code == 400 and name in fields(bad), query
    assert client.get(f"{URL}/999999", headers=head).status_code == 404


def test_list_pages_with_constant_queries(client, db, insurer, people):
    with company_scope(insurer.id):
        for n in range(12):
            new_lead(db, f"客户{n:02d}", people["other"], people["manager"], source="walk_in",
                     referrer_agent_id=people["boss"])  # fmt: skip
        db.session.commit()
    head = bearer(people["manager"], insurer)
    client.get(f"{URL}?limit=3", headers=head)
    with QueryCounter(db.engine) as small:
        assert len(client.get(f"{URL}?limit=3", headers=head).get_json()["data"]) == 3
    with QueryCounter(db.engine) as large:
        assert len(client.get(f"{URL}?limit=50", headers=head).get_json()["data"]) == 12
    assert large.count == small.count


def test_an_agent_sees_her_leads_and_her_downlines_and_the_record_rule(client, db, insurer, people):
    with company_scope(insurer.id):
        mine = new_lead(db, "甲", people["boss"], source="walk_in")
        below = new_lead(db, "乙", people["below"], people["rep"], source="walk_in")
        other = new_lead(db, "丙", people["other"], people["manager"], source="online")
        db.session.commit()
        mine_id, below_id, other_id = mine.id, below.id, other.id
    head = bearer(people["rep"], insurer)
    assert ids(client.get(URL, headers=head)) == {mine_id}
    assert ids(client.get(f"{URL}?scope=team", headers=head)) == {mine_id, below_id}
    bad = client.get(f"{URL}?scope=all", headers=head)
    assert bad.status_code == 400 and fields(bad) == {"scope"}
    hidden = client.get(f"{URL}/{other_id}", headers=head)  # customer of the manager
    assert hidden.status_code == 403 and hidden.get_json()["error"]["code"] == "record_rule"
    assert client.get(f"{URL}/{other_id}/transitions", headers=head).status_code == 403


# -- creating -------------------------------------------------------------------------------------


def test_create_makes_the_prospect_and_the_lead_like_the_web_form(client, db, insurer, people):
    with company_scope(insurer.id):
        fan = Customer(name="老客户王", status="existing", owner_id=people["rep"].id)
        db.session.add(fan)
        db.session.commit()
        fan_id = fan.id
    head = bearer(people["rep"], insurer)
    response = client.post(
        URL,
        json={"name": " 李女士 ", "phone": "13900001111", "region": "上海市",
              "agent_id": people["boss"], "source": "referral",
              "referrer_customer_id": fan_id, "notes": "关注重疾"},
        headers=head,
    )  # fmt: skip
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"{URL}/{body['id']}")
    assert (body["name"], body["phone"], body["state"], body["version"]) == (
        "李女士",
        "13900001111",
        "new",
        1,
    )
    assert body["channel_id"] == people["boss_channel"]
    assert body["referrer_customer_id"] == fan_id
    with company_scope(insurer.id):
        lead = db.session.get(Lead, body["id"])
        customer = db.session.get(Customer, lead.customer_id)
        assert (customer.status, customer.kind, customer.owner_id) == (
            "potential",
            "consumer",
            people["rep"].id,  # the agent's login
        )
        assert customer.channel_id == people["boss_channel"] == lead.channel_id
        assert lead.created_on == company_today() and lead.notes == "关注重疾"
        referral = db.session.scalar(select(Referral).where(Referral.customer_id == customer.id))
        assert referral.referrer_customer_id == fan_id
        existing = Customer(name="陈先生", status="existing", owner_id=people["rep"].id)
        db.session.add(existing)
        db.session.commit()
        existing_id = existing.id
    # a website lead without an agent, on an existing customer, on the website's channel
    manager = bearer(people["manager"], insurer)
    on_existing = client.post(
        URL,
        json={"customer_id": existing_id, "channel_id": people["other_channel"],
              "source": "online"},
        headers=manager,
    )  # fmt: skip
    assert on_existing.status_code == 201, on_existing.get_json()
    made = on_existing.get_json()
    assert (made["customer_id"], made["agent_id"], made["name"]) == (existing_id, None, "陈先生")
    again = client.post(URL, json={"customer_id": existing_id}, headers=manager)
    assert again.status_code == 422 and fields(again) == {"customer_id"}  # an open lead already


def test_bad_input_names_the_field_and_writes_nothing(client, db, insurer, people):
    with company_scope(insurer.id):
        db.session.add(Customer(name="已有客户", phone="13800000000", status="existing"))
        db.session.commit()
    head = bearer(people["manager"], insurer)
    before = counts(db, insurer)
    future = (company_today() + timedelta(days=3)).isoformat()
    cases = [
        ({"source": "walk_in"}, "name"),
        ({"name": "  ", "source": "walk_in"}, "name"),
        ({"name": "甲", "source": "referral"}, "referrer_customer_id"),
        ({"name": "甲", "phone": "13800000000"}, "phone"),
        ({"name": "甲", "source": "telepathy"}, "source"),
        ({"name": "甲", "agent_id": 999999}, "agent_id"),
        ({"name": "甲", "agent_id": "1"}, "agent_id"),
        ({"name": "甲", "channel_id": 999999}, "channel_id"),
        ({"name": "甲", "agent_id": people["boss"], "channel_id": people["other_channel"]},
         "channel_id"),
        ({"name": "甲", "email": "not-an-address"}, "email"),
        ({"name": "甲", "created_on": future}, "created_on"),
        ({"name": "甲", "created_on": "someday"}, "created_on"),
        ({"name": "甲", "notes": "x" * 2001}, "notes"),
        ({"name": "甲", "referrer_agent_id": 999999}, "referrer_agent_id"),
        ({"name": "甲", "customer_id": 999999}, "customer_id"),
        ({"name": "甲", "state": "converted", "colour": "red"}, "colour"),
        ({"name": "x" * 201}, "name"),
        ({"name": "甲\x00"}, "name"),
    ]  # fmt: skip
    for data, name in cases:
        response = client.post(URL, json=data, headers=head)
        assert response.status_code == 422, (data, response.get_json())
        assert name in fields(response), (data, response.get_json())
    assert client.post(URL, json=[1], headers=head).status_code == 422
    assert (
        client.post(URL, data="{", headers=head, content_type="application/json").status_code == 400
    )
    assert counts(db, insurer) == before


def test_an_agent_gives_leads_only_to_herself_and_her_downline(client, db, insurer, people):
    head = bearer(people["rep"], insurer)
    before = counts(db, insurer)
    refused = client.post(URL, json={"name": "甲", "agent_id": people["other"]}, headers=head)
    assert refused.status_code == 422 and fields(refused) == {"agent_id"}
    assert counts(db, insurer) == before
    for agent_id in (people["boss"], people["below"]):
        made = client.post(URL, json={"name": f"客{agent_id}", "agent_id": agent_id}, headers=head)
        assert made.status_code == 201, made.get_json()


def test_viewers_read_but_cannot_write(client, db, insurer, people):
    with company_scope(insurer.id):
        lead = new_lead(db, "甲", people["other"], people["manager"], phone="13912345678")
        db.session.commit()
        lead_id = lead.id
    head = bearer(people["viewer"], insurer)
    item = client.get(f"{URL}/{lead_id}", headers=head).get_json()
    assert item["phone"] != "13912345678" and "*" in item["phone"]  # masked without pii
    before = counts(db, insurer)
    assert client.post(URL, json={"name": "乙"}, headers=head).status_code == 403
    assert client.patch(f"{URL}/{lead_id}", json={"notes": "x"}, headers=head).status_code == 403
    step = client.post(f"{URL}/{lead_id}/transitions/contact", json={}, headers=head)
    assert step.status_code == 403
    assert counts(db, insurer) == before
    with company_scope(insurer.id):
        assert (db.session.get(Lead, lead_id).state, db.session.get(Lead, lead_id).notes) == (
            "new",
            None,
        )


# -- changing -------------------------------------------------------------------------------------


def test_patch_source_notes_and_the_managers_reassigning(client, db, insurer, people):
    with company_scope(insurer.id):
        lead = new_lead(db, "甲", people["boss"], source="walk_in")
        db.session.commit()
        lead_id, customer_id = lead.id, lead.customer_id
    rep = bearer(people["rep"], insurer)
    changed = client.patch(
        f"{URL}/{lead_id}", json={"source": "event", "notes": "周末回访"}, headers=rep
    )
    assert changed.status_code == 200, changed.get_json()
    assert (changed.get_json()["source"], changed.get_json()["notes"]) == ("event", "周末回访")
    assert changed.headers["ETag"] == '"2"'
    # sending back what was set at creation, unchanged, is fine
    same = client.patch(
        f"{URL}/{lead_id}", json={"customer_id": customer_id, "name": "甲"}, headers=rep
    )
    assert same.status_code == 200, same.get_json()
    refused = client.patch(f"{URL}/{lead_id}", json={"agent_id": people["below"]}, headers=rep)
    assert refused.status_code == 403 and fields(refused) == {"agent_id"}
    for body, name in (
        ({"name": "乙"}, "name"),
        ({"phone": "13700000000"}, "phone"),
        ({"referrer_agent_id": people["other"]}, "referrer_agent_id"),
        ({"created_on": "2020-01-01"}, "created_on"),
        ({"channel_id": people["other_channel"]}, "channel_id"),
        ({"source": "telepathy"}, "source"),
        ({"state": "converted", "bogus": 1}, "bogus"),
    ):
        bad = client.patch(f"{URL}/{lead_id}", json=body, headers=rep)
        assert bad.status_code == 422 and name in fields(bad), (body, bad.get_json())
    manager = bearer(people["manager"], insurer)
    stale = client.patch(
        f"{URL}/{lead_id}", json={"notes": "x"}, headers={**manager, "If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert client.patch(f"{URL}/{lead_id}", json={"version": 1}, headers=manager).status_code == 409
    moved = client.patch(
        f"{URL}/{lead_id}",
        json={"agent_id": people["other"], "channel_id": people["other_channel"]},
        headers={**manager, "If-Match": '"2"'},
    )
    assert moved.status_code == 200, moved.get_json()
    assert (moved.get_json()["agent_id"], moved.get_json()["channel_id"]) == (
        people["other"],
        people["other_channel"],
    )
    with company_scope(insurer.id):
        db.session.get(Agent, people["below"]).status = "terminated"
        db.session.commit()
    gone = client.patch(f"{URL}/{lead_id}", json={"agent_id": people["below"]}, headers=manager)
    assert gone.status_code == 422 and fields(gone) == {"agent_id"}
    with company_scope(insurer.id):
        lead = db.session.get(Lead, lead_id)
        assert (lead.agent_id, lead.source, lead.notes) == (people["other"], "event", "周末回访")


def test_workflow_transitions_lost_needs_a_reason(client, db, insurer, people):
    with company_scope(insurer.id):
        lead = new_lead(db, "甲", people["boss"], source="walk_in")
        db.session.commit()
        lead_id = lead.id
    head = bearer(people["rep"], insurer)
    offered = client.get(f"{URL}/{lead_id}/transitions", headers=head).get_json()
    assert offered["state"] == "new"
    assert {t["name"] for t in offered["transitions"]} >= {"contact", "propose", "lose"}
    assert next(t for t in offered["transitions"] if t["name"] == "lose")["inputs"] == [
        "lost_reason"
    ]
    step = client.post(f"{URL}/{lead_id}/transitions/contact", json={"comment": "已电话"},
                       headers=head)  # fmt: skip
    assert step.status_code == 200 and step.get_json()["state"] == "contacted"
    for body in ({}, {"lost_reason": "  "}):
        bad = client.post(f"{URL}/{lead_id}/transitions/lose", json=body, headers=head)
        assert bad.status_code == 422 and fields(bad) == {"lost_reason"}, bad.get_json()
    for body, name in (({"lost_reason": 5}, "lost_reason"), ({"lost_reason": "x" * 201},
                       "lost_reason"), ({"assignee_id": 3}, "assignee_id")):  # fmt: skip
        bad = client.post(f"{URL}/{lead_id}/transitions/lose", json=body, headers=head)
        assert bad.status_code == 422 and fields(bad) == {name}, bad.get_json()
    lost = client.post(
        f"{URL}/{lead_id}/transitions/lose", json={"lost_reason": "已在他司投保"}, headers=head
    )
    assert lost.status_code == 200, lost.get_json()
    assert (lost.get_json()["state"], lost.get_json()["lost_reason"]) == ("lost", "已在他司投保")
    illegal = client.post(f"{URL}/{lead_id}/transitions/convert", json={}, headers=head)
    assert illegal.status_code == 409
    assert client.post(f"{URL}/{lead_id}/transitions/fly", json={}, headers=head).status_code == 404
    back = client.post(f"{URL}/{lead_id}/transitions/reopen", json={}, headers=head).get_json()
    assert (back["state"], back["lost_reason"]) == ("contacted", None)
    won = client.post(f"{URL}/{lead_id}/transitions/convert", json={}, headers=head).get_json()
    assert won["state"] == "converted" and won["converted_on"] == company_today().isoformat()
    with company_scope(insurer.id):
        customer = db.session.get(Customer, db.session.get(Lead, lead_id).customer_id)
        assert customer.status == "existing"


# -- plugin enablement and the document -----------------------------------------------------------


def test_nothing_for_a_company_without_insurance(client, db, company, make_user):
    plain = company(plugins=["sales"])
    head = bearer(make_user("admin", plain), plain)
    for url in (URL, f"{URL}/1", f"{URL}/1/transitions"):
        assert client.get(url, headers=head).status_code == 404, url
    assert client.post(URL, json={"name": "甲"}, headers=head).status_code == 404
    assert client.patch(f"{URL}/1", json={"notes": "x"}, headers=head).status_code == 404
    assert client.post(f"{URL}/1/transitions/contact", json={}, headers=head).status_code == 404
    document = client.get("/api/v1/openapi.json", headers=head).get_json()
    assert "/api/v1/insurance_leads" not in document["paths"]


def test_the_openapi_document_describes_the_resource(client, db, insurer, people):
    head = bearer(people["manager"], insurer)
    document = client.get("/api/v1/openapi.json", headers=head).get_json()
    assert {"get", "post"} <= set(document["paths"][URL])
    assert "patch" in document["paths"][URL + "/{id}"]
    schemas = document["components"]["schemas"]
    create = schemas["InsuranceLeadsCreate"]["properties"]
    assert {"name", "phone", "customer_id", "referrer_customer_id", "source"} <= set(create)
    assert "state" not in create and "lost_reason" not in create
    assert set(create["source"]["enum"]) == set(leads.SOURCE_KEYS)
    params = {p["name"] for p in document["paths"][URL]["get"]["parameters"]}
    assert {"state", "source", "agent_id", "channel_id", "created_on__min", "q", "scope",
            "no_agent", "referrer_customer_id"} <= params  # fmt: skip
    step = document["paths"][URL + "/{id}/transitions/{transition}"]["post"]
    body = step["requestBody"]["content"]["application/json"]["schema"]
    assert "lost_reason" in body["properties"]
