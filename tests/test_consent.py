"""Consent (core.consent): one record per customer, channel and purpose, shared by the plugins
that contact customers, shown and recorded on the customer's page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core import consent, importer, privacy
from core.models import AuditLog, Consent, Customer
from core.tenancy import company_scope

CHANNELS = ("phone", "sms", "email", "wechat")


def _customers(db, co, n=2):
    with company_scope(co.id):
        rows = [Customer(name=f"顾客{i}", status="existing") for i in range(n)]
        db.session.add_all(rows)
        db.session.commit()
        return [c.id for c in rows]


def _answers(db, co, customer_id):
    with company_scope(co.id):
        return {
            (r.channel, r.purpose): r.granted
            for r in db.session.scalars(select(Consent).where(Consent.customer_id == customer_id))
        }


def test_the_box_shows_the_purposes_of_the_enabled_plugins_only(db, client, company, login_as):
    surveys_only = company(plugins=["surveys"])
    login_as("service_agent", surveys_only)
    (cid,) = _customers(db, surveys_only, 1)
    html = client.get(f"/customers/{cid}").get_data(as_text=True)
    assert 'data-purpose="survey"' in html and 'data-purpose="marketing"' not in html
    assert "consent-form" in html
    for channel in CHANNELS:  # no answer yet: surveys still go out
        assert f'data-consent="{channel}-survey" data-granted="none"' in html

    plain = company()
    login_as("service_agent", plain)
    (other,) = _customers(db, plain, 1)
    assert "consent-panel" not in client.get(f"/customers/{other}").get_data(as_text=True)


def test_an_agent_records_a_refusal_on_every_channel(db, client, company, login_as):
    co = company(plugins=["surveys"])
    agent = login_as("service_agent", co)
    (cid,) = _customers(db, co, 1)
    form = {"purpose": "survey", "channel": "*", "granted": "0", "source": "客户来电要求"}
    done = client.post(f"/customers/{cid}/consent", data=form)
    assert done.status_code == 302 and done.location.endswith("#consent")
    assert _answers(db, co, cid) == {(c, "survey"): False for c in CHANNELS}
    with company_scope(co.id):
        rows = db.session.scalars(select(AuditLog).where(AuditLog.action == "consent")).all()
        assert len(rows) == 4 and {r.user_id for r in rows} == {agent.id}
    html = client.get(f"/customers/{cid}").get_data(as_text=True)
    assert 'data-consent="sms-survey" data-granted="no"' in html and "客户来电要求" in html
    # then agrees again by SMS only
    form.update(channel="sms", granted="1", source="短信回复")
    client.post(f"/customers/{cid}/consent", data=form)
    assert _answers(db, co, cid)[("sms", "survey")] is True
    assert _answers(db, co, cid)[("phone", "survey")] is False


def test_a_bad_answer_says_why_and_writes_nothing(db, client, company, login_as):
    co = company(plugins=["surveys"])
    agent = login_as("service_agent", co)
    agent.locale = "en"
    db.session.commit()
    (cid,) = _customers(db, co, 1)
    cases = [
        ({"purpose": "marketing", "channel": "sms", "source": "表格"}, "Unknown purpose."),
        ({"purpose": "survey", "channel": "fax", "source": "表格"}, "Unknown channel."),
        ({"purpose": "survey", "channel": "*", "source": "  "}, "Say where the consent"),
    ]
    for form, message in cases:
        page = client.post(f"/customers/{cid}/consent", data={**form, "granted": "1"})
        assert page.status_code == 302
        assert message in client.get(page.location).get_data(as_text=True)
    assert _answers(db, co, cid) == {}
    with company_scope(co.id):
        assert not db.session.scalar(select(func.count()).where(AuditLog.action == "consent"))


def test_a_viewer_reads_the_answers_but_cannot_record(db, client, company, login_as):
    co = company(plugins=["surveys"])
    login_as("viewer", co)
    (cid,) = _customers(db, co, 1)
    html = client.get(f"/customers/{cid}").get_data(as_text=True)
    assert "consent-panel" in html and "consent-form" not in html
    form = {"purpose": "survey", "channel": "sms", "granted": "0", "source": "x"}
    assert client.post(f"/customers/{cid}/consent", data=form).status_code == 403
    assert _answers(db, co, cid) == {}


def test_another_companys_customer_is_not_found(db, client, company, login_as):
    mine, theirs = company(plugins=["surveys"]), company(plugins=["surveys"])
    login_as("admin", mine)
    (cid,) = _customers(db, theirs, 1)
    form = {"purpose": "survey", "channel": "sms", "granted": "0", "source": "x"}
    assert client.post(f"/customers/{cid}/consent", data=form).status_code == 404
    assert _answers(db, theirs, cid) == {}


def test_allowed_follows_what_no_answer_means(db, company):
    """Marketing needs a yes; surveys go out unless refused. One SQL clause each."""
    co = company(plugins=["marketing", "surveys"])
    yes, no, silent = _customers(db, co, 3)
    with company_scope(co.id):
        consent.record(yes, "sms", "marketing", True, "门店登记表")
        consent.record(yes, "sms", "survey", True, "门店登记表")
        consent.record(no, "sms", "marketing", False, "来电拒绝")
        consent.record(no, "sms", "survey", False, "来电拒绝")
        db.session.commit()

        def reached(purpose, channel="sms"):
            clause = consent.allowed(Customer.id, channel, purpose, co.id)
            return set(db.session.scalars(select(Customer.id).where(clause)))

        assert reached("marketing") == {yes}
        assert reached("survey") == {yes, silent}
        assert reached("survey", channel="phone") == {yes, no, silent}  # refused by SMS only
        assert consent.may_contact(silent, "sms", "survey")
        assert not consent.may_contact(silent, "sms", "marketing")


def test_a_persons_copy_of_their_data_holds_their_answers(db, company, app):
    co = company(plugins=["surveys"])
    (cid,) = _customers(db, co, 1)
    with company_scope(co.id), app.test_request_context("/"):
        consent.record(cid, "wechat", "survey", False, "微信回复")
        sections = privacy.export_person(db.session.get(Customer, cid))
    (row,) = sections["consent"]
    assert (row["channel"], row["purpose"], row["granted"], row["source"]) == (
        "wechat",
        "survey",
        False,
        "微信回复",
    )


def _token(db, make_user, role, co):
    from core import tokens

    user = make_user(role, co)
    _row, secret = tokens.issue(user, co.id, f"{role} token")
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_the_api_records_and_lists_answers(db, client, company, make_user):
    co, other = company(plugins=["surveys"]), company(plugins=["surveys"])
    headers = _token(db, make_user, "service_agent", co)
    cid, theirs = _customers(db, co, 1)[0], _customers(db, other, 1)[0]
    body = {"customer_id": cid, "channel": "sms", "purpose": "survey", "granted": False}
    made = client.post("/api/v1/consents", json={**body, "source": "小程序"}, headers=headers)
    assert made.status_code == 201, made.json
    again = client.post(
        "/api/v1/consents", json={**body, "granted": True, "source": "回访"}, headers=headers
    )
    assert again.status_code == 201 and again.json["id"] == made.json["id"]  # one answer
    patched = client.patch(
        f"/api/v1/consents/{made.json['id']}", json={"granted": False}, headers=headers
    )
    assert patched.status_code == 200 and patched.json["source"] == "回访"
    listed = client.get(f"/api/v1/consents?customer_id={cid}", headers=headers).json
    assert [(r["channel"], r["granted"]) for r in listed["data"]] == [("sms", False)]
    assert _answers(db, co, cid) == {("sms", "survey"): False}
    with company_scope(co.id):
        rows = db.session.scalars(select(AuditLog).where(AuditLog.action == "consent")).all()
        assert [r.data["granted"] for r in rows] == [False, True, False]

    for wrong, field in (
        ({"purpose": "marketing"}, "purpose"),
        ({"channel": "fax"}, "channel"),
        ({"source": ""}, "source"),
        ({"customer_id": theirs}, "customer_id"),
    ):
        refused = client.post(
            "/api/v1/consents", json={**body, "source": "x", **wrong}, headers=headers
        )
        assert refused.status_code == 422 and field in refused.json["error"]["fields"], refused.json
    viewer = _token(db, make_user, "viewer", co)
    assert (
        client.post("/api/v1/consents", json={**body, "source": "x"}, headers=viewer).status_code
        == 403
    )
    assert _answers(db, other, theirs) == {}


def test_answers_are_not_a_kind_of_import(db, company, tmp_path):
    """An answer replaces the current one of its customer, channel and purpose: the import's
    one-column duplicate handling cannot follow that, so answers come by page or API."""

    co = company(plugins=["surveys"])
    path = tmp_path / "c.csv"
    path.write_text("customer_id,channel,purpose,granted,source\n1,sms,survey,否,表\n")
    with company_scope(co.id):
        assert "consents" not in importer.resources()
        with pytest.raises(importer.MappingError):
            importer.import_file(path, "consents", user_id=None)
