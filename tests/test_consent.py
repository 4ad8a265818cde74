"""Consent (core.consent): one record per customer, channel and purpose, shared by the plugins
that contact customers, shown and recorded on the customer's page."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from core import consent, importer, privacy, tasks
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


def _consent_file(tmp_path, name, rows):
    path = tmp_path / name
    lines = ["customer_id,channel,purpose,granted,source", *[",".join(r) for r in rows]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _coded(db, co, *codes):
    with company_scope(co.id):
        rows = [Customer(code=c, name=f"顾客{c}", status="existing") for c in codes]
        db.session.add_all(rows)
        db.session.commit()
        return [c.id for c in rows]


def test_answers_import_from_a_spreadsheet_and_replace_the_current_ones(
    db, company, make_user, tmp_path
):
    co = company(plugins=["marketing", "surveys"])
    clerk = make_user("admin", co)
    k1, k2 = _coded(db, co, "K1", "K2")
    first = _consent_file(
        tmp_path,
        "optin.csv",
        [
            ("K1", "短信", "marketing", "是", "2023 纸质授权书"),
            ("K2", "email", "survey", "否", "退订名单"),
        ],
    )
    with company_scope(co.id):
        outcome = importer.import_file(first, "consents", user_id=clerk.id)
        assert outcome["status"] == "done" and outcome["created"] == 2, outcome["errors"]
    assert _answers(db, co, k1) == {("sms", "marketing"): True}
    assert _answers(db, co, k2) == {("email", "survey"): False}
    with company_scope(co.id):
        assert consent.may_contact(k1, "sms", "marketing")
        assert not consent.may_contact(k2, "email", "survey")
        audits = db.session.scalars(select(AuditLog).where(AuditLog.action == "consent")).all()
        assert sorted((a.entity_id, a.data["granted"], a.data["before"]) for a in audits) == [
            (k1, True, None),
            (k2, False, None),
        ]
        assert {a.user_id for a in audits} == {clerk.id}

    # The customer changed their mind: the next file replaces the answer, never adds one.
    second = _consent_file(tmp_path, "optout.csv", [("K1", "sms", "marketing", "否", "客户来电")])
    with company_scope(co.id):
        kept = importer.import_file(second, "consents", user_id=clerk.id)  # skip: the default
        assert kept["skipped"] == 1 and kept["created"] == 0
        assert _answers(db, co, k1) == {("sms", "marketing"): True}
        replaced = importer.import_file(second, "consents", user_id=clerk.id, on_duplicate="update")
        assert replaced["updated"] == 1, replaced["errors"]
    assert _answers(db, co, k1) == {("sms", "marketing"): False}
    with company_scope(co.id):
        row = db.session.scalars(select(Consent).where(Consent.customer_id == k1)).one()
        assert row.source == "客户来电" and row.recorded_by == clerk.id
        last = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "consent").order_by(AuditLog.id.desc())
        ).first()
        assert (last.data["granted"], last.data["before"]) == (False, True)
        assert not consent.may_contact(k1, "sms", "marketing")
        with pytest.raises(importer.MappingError):
            importer.import_file(second, "consents", user_id=clerk.id, on_duplicate="create")


def test_bad_consent_rows_name_their_line_and_nothing_is_written(db, company, make_user, tmp_path):
    co = company(plugins=["surveys"])  # no marketing: its purposes are unknown here
    clerk = make_user("admin", co)
    _coded(db, co, "K1")
    path = _consent_file(
        tmp_path,
        "bad.csv",
        [
            ("K1", "sms", "survey", "否", "退订名单"),
            ("K1", "sms", "marketing", "否", "退订名单"),  # not a purpose of this company
            ("K9", "sms", "survey", "否", "退订名单"),  # no such customer
            ("K1", "传真", "survey", "否", "退订名单"),  # no such channel
            ("K1", "短信", "survey", "是", "又一次"),  # the same answer as line 2
            ("K1", "phone", "survey", "也许", "退订名单"),  # not yes or no
        ],
    )
    with company_scope(co.id):
        outcome = importer.import_file(path, "consents", user_id=clerk.id)
        assert outcome["status"] == "failed"
        lines = [(e["line"], e["column"]) for e in outcome["errors"]]
        assert lines == [
            (3, "purpose"),
            (4, "customer_id"),
            (5, "channel"),
            (6, "customer_id"),
            (7, "granted"),
        ]
        assert "2" in outcome["errors"][3]["message"]
        assert db.session.scalar(select(func.count()).select_from(Consent)) == 0
        written = select(func.count()).select_from(AuditLog).where(AuditLog.action == "consent")
        assert db.session.scalar(written) == 0


def test_the_import_page_takes_answers_and_never_offers_a_second_one(db, client, company, login_as):
    co = company(plugins=["surveys"])
    login_as("manager", co)
    (k1,) = _coded(db, co, "K1")
    assert 'value="consents"' in client.get("/imports/").text
    data = "customer_id,channel,purpose,granted,source\nK1,短信,survey,否,退订名单\n".encode()
    uploaded = client.post(
        "/imports/",
        data={"kind": "consents", "file": (io.BytesIO(data), "退订名单.csv")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302
    page = client.get(uploaded.location).text
    assert 'value="update"' in page and 'value="create"' not in page
    assert "customer_id" in page or "客户" in page
    columns = ("customer_id", "channel", "purpose", "granted", "source")
    form = {**{f"map-{i}": key for i, key in enumerate(columns)}, "mode": "atomic"}
    refused = client.post(uploaded.location, data={**form, "on_duplicate": "create"})
    assert refused.status_code == 422
    started = client.post(uploaded.location, data={**form, "on_duplicate": "update"})
    assert started.status_code == 302
    tasks.wait(int(started.location.rstrip("/").rsplit("/", 1)[1]))
    assert _answers(db, co, k1) == {("sms", "survey"): False}
