"""The audit log: old → new values of updates, logins and logouts, plugin switches, and the
viewer (filters, keyset pages, links, CSV export, refusals)."""

from __future__ import annotations

from sqlalchemy import select

from core.models import AuditLog, Customer
from core.tenancy import company_scope


def _rows(db, company_id, **where):
    with company_scope(company_id):
        stmt = select(AuditLog).order_by(AuditLog.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(AuditLog, key) == value)
        return list(db.session.scalars(stmt))


def test_an_update_keeps_old_and_new_values(app, db, client, company, login_as):
    acme = company()
    login_as("manager", acme)
    with company_scope(acme.id):
        customer = Customer(name="甲", phone="13800000000")
        db.session.add(customer)
        db.session.commit()
        customer_id = customer.id
    resp = client.post(
        f"/customers/{customer_id}/edit",
        data={"name": "乙", "kind": "consumer", "phone": "13800000000", "status": "existing"},
    )
    assert resp.status_code == 302
    (row,) = _rows(db, acme.id, action="update", entity_type="customer")
    assert row.data["changes"]["name"] == ["甲", "乙"]
    assert "phone" not in row.data["changes"] and "updated_at" not in row.data["changes"]
    page = client.get("/audit/?action=update").get_data(as_text=True)
    assert "甲 → 乙" in page
    assert f'href="/customers/{customer_id}"' in page  # linked to the record's page


def test_login_failure_logout_are_audited(app, db, client, company, make_user):
    acme = company()
    user = make_user("sales_rep", acme, email="rep@example.com")
    client.post("/login", data={"email": "rep@example.com", "password": "wrong"})
    client.post("/login", data={"email": "nobody@example.com", "password": "wrong"})
    client.post("/login", data={"email": "rep@example.com", "password": "secret"})
    client.post("/logout")
    actions = [(r.action, r.user_id) for r in _rows(db, acme.id, entity_type="user")]
    assert actions == [("login_failed", user.id), ("login", user.id), ("logout", user.id)]
    failed = _rows(db, acme.id, action="login_failed")[0]
    assert failed.data["email"] == "rep@example.com" and "password" not in failed.data


def test_plugin_switches_and_settings_are_audited(app, db, client, company, login_as):
    acme = company()
    login_as("admin", acme)
    client.post("/settings/plugins/surveys/enable")
    client.post("/settings/plugins/surveys/disable")
    from core import classify

    rules = {**classify.DEFAULTS.as_dict(), "tier_a_min": classify.DEFAULTS.tier_a_min + 1}
    assert client.post("/settings/", data=rules).status_code == 302
    found = {(r.action, r.entity_type) for r in _rows(db, acme.id)}
    assert {("enable", "plugin"), ("disable", "plugin")} <= found
    assert any(t == "company_setting" for _a, t in found)


def test_viewer_filters_pages_and_refuses_other_roles(app, db, client, company, login_as):
    acme, other = company(), company()
    boss = login_as("admin", acme)
    with company_scope(acme.id):
        for n in range(7):
            db.session.add(AuditLog(action="create", entity_type="customer", entity_id=n + 1))
        db.session.add(
            AuditLog(action="delete", entity_type="contact", entity_id=9, user_id=boss.id)
        )
        db.session.commit()
    with company_scope(other.id):
        db.session.add(AuditLog(action="create", entity_type="secret_other", entity_id=1))
        db.session.commit()
    app.config["LIST_PAGE_SIZE"] = 5
    page = client.get("/audit/").get_data(as_text=True)
    assert page.count("data-audit=") == 5 and "secret_other" not in page
    assert "contact #9" in page  # newest first
    after = page.split('class="button next" href="')[1].split('"')[0].replace("&amp;", "&")
    rest = client.get(after).get_data(as_text=True)
    assert rest.count("data-audit=") == 3
    mine = client.get(f"/audit/?user={boss.id}").get_data(as_text=True)
    assert mine.count("data-audit=") == 1
    assert (
        client.get("/audit/?entity=customer&entity_id=3")
        .get_data(as_text=True)
        .count("data-audit=")
        == 1
    )
    assert (
        client.get("/audit/?since=2000-01-01&until=2000-01-02")
        .get_data(as_text=True)
        .count("data-audit=")
        == 0
    )
    for bad in ("entity_id=x", "user=-1", "since=2026-13-01", "after=garbage"):
        resp = client.get(f"/audit/?{bad}")
        assert resp.status_code == 400, bad
    login_as("sales_rep", acme)
    refused = client.get("/audit/")
    assert refused.status_code == 403 and "sales_rep" in refused.get_data(as_text=True)


def test_export_needs_permission_and_is_audited(app, db, client, company, login_as):
    acme = company()
    login_as("manager", acme)
    acme_id = acme.id  # the streamed export empties the session between batches
    with company_scope(acme_id):
        db.session.add(AuditLog(action="merge", entity_type="customer", entity_id=4, data={"x": 1}))
        db.session.commit()
    resp = client.get("/audit/export.csv?action=merge")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "merge" in body and '"{""x"": 1}"' in body
    exports = _rows(db, acme_id, action="export", entity_type="audit_log")
    assert exports and exports[0].data["filters"] == {"action": "merge"}
    with company_scope(acme_id):
        from core.models import CompanySetting

        db.session.add(CompanySetting(key="permissions", value={"export": ["manager"]}))
        db.session.commit()
    assert client.get("/audit/export.csv").status_code == 403


def test_erasure_drops_the_old_and_new_values_of_the_person(app, db, client, company, login_as):
    from core import audit, privacy

    acme = company()
    boss = login_as("admin", acme)
    with company_scope(acme.id):
        customer = Customer(name="王小明", phone="13900001111")
        db.session.add(customer)
        db.session.flush()
        customer.phone = "13900002222"
        audit.record("update", "customer", customer.id, user_id=boss.id)
        db.session.commit()
        (row,) = _rows(db, acme.id, action="update")
        assert row.data["changes"]["phone"] == ["13900001111", "13900002222"]
        privacy.erase_person(customer, boss)
        db.session.commit()
    (row,) = _rows(db, acme.id, action="update")
    assert not row.data and row.user_id == boss.id  # who and when stay, the values go
    assert _rows(db, acme.id, action="erase")


def test_viewer_query_count_does_not_grow_with_page_size(app, db, client, company, login_as):
    from core.testing import QueryCounter

    acme = company()
    boss = login_as("admin", acme)
    with company_scope(acme.id):
        for n in range(30):
            db.session.add(
                AuditLog(action="update", entity_type="customer", entity_id=n + 1, user_id=boss.id)
            )
        db.session.commit()
    counts = []
    for size in (5, 25):
        app.config["LIST_PAGE_SIZE"] = size
        client.get("/audit/")  # warm the per-app caches
        with QueryCounter(db.engine) as counter:
            page = client.get("/audit/").get_data(as_text=True)
        assert page.count("data-audit=") == size
        counts.append(counter.count)
    assert counts[0] == counts[1], counts


def test_extension_field_changes_have_old_and_new_values(app, db, company):
    """Extension fields are written by SQL statements the ORM does not see; their old → new
    values still reach the record's audit row, whether it is added after them (the edit form)
    or before (the API)."""
    from core import audit
    from core import fields as ext
    from core.plugins import current

    acme = company(plugins=["pharma"])
    wanted = ("pharma__beds", "pharma__department")
    declared = [f for f in current().registry.fields if f.key in wanted]
    with company_scope(acme.id):
        customer = Customer(name="协和医院")
        db.session.add(customer)
        db.session.flush()
        ext.save(declared, customer.id, {"pharma__beds": 500, "pharma__department": "心内科"})
        db.session.commit()

        db.session.refresh(customer)  # as a page loads it
        customer.name = "北京协和医院"
        ext.save(declared, customer.id, {"pharma__beds": 800, "pharma__department": "心内科"})
        audit.record("update", "customer", customer.id)
        db.session.commit()

        audit.record("update", "customer", customer.id, {"via": "api"})
        db.session.flush()
        ext.save(declared, customer.id, {"pharma__department": "呼吸科"})
        db.session.commit()
    first, second = _rows(db, acme.id, action="update", entity_type="customer")
    assert first.data["changes"] == {
        "name": ["协和医院", "北京协和医院"],
        "pharma__beds": [500, 800],
    }
    assert second.data == {"via": "api", "changes": {"pharma__department": ["心内科", "呼吸科"]}}
