"""Which extension fields are columns of the customer list (core/columns.py).

Plugins flag the one or two fields a user scans the list by (``Field.list_column``); a company
admin changes the choice for the company on ``/settings/columns/``. The list joins and shows only
the chosen fields; every field still filters, and the page costs as many statements whatever the
number of fields it hides.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select

from core import columns, fields
from core.models import AuditLog, CompanySetting, Customer
from core.plugins import current
from core.tenancy import company_scope, unscoped
from core.testing import QueryCounter

BUILTIN = ("sales", "surveys", "marketing", "pharma", "insurance", "property")


def header_keys(html: str) -> list[str]:
    """The extension fields the list shows, in order (``<th data-field=…>``)."""
    return re.findall(r'<th data-field="([^"]+)"', html)


def add(db, company, name, **values):
    with company_scope(company.id):
        customer = Customer(name=name, kind="consumer")
        db.session.add(customer)
        db.session.flush()
        if values:
            plugins = {key.split("__")[0] for key in values}
            declared = current().registry.fields_for("customer", plugins)
            fields.save(declared, customer.id, values)
        db.session.commit()
        return customer.id


def flagged(company) -> list[str]:
    """The fields the declarations show on ``company``'s list (its plugins and their
    dependencies: pharma needs sales)."""
    enabled = current().enabled(company.id)
    return [f.key for f in current().registry.fields_for("customer", enabled) if f.list_column]


def test_every_builtin_plugin_flags_few_fields_and_most_stay_off(app):
    declared = current().registry.fields_for("customer", BUILTIN)
    shown = {f.key for f in declared if f.list_column}
    assert 0 < len(shown) <= len(declared) // 3
    for plugin in BUILTIN:
        assert len([k for k in shown if k.startswith(plugin + "__")]) <= 2, plugin
    assert {"pharma__hospital", "property__unit_label"} <= shown
    # Sales is pulled in by every industry plugin: its fields would be everyone's columns.
    assert not [k for k in shown if k.startswith("sales__")]
    assert fields.Field("customer", "x", "string", "X").list_column is False


def test_the_list_shows_the_flagged_fields_of_the_enabled_plugins(
    app, db, client, company, login_as
):
    acme = company(plugins=["pharma"])
    other = company()
    add(db, acme, "协和医院", pharma__hospital_grade="3a", pharma__beds=1500)
    add(db, other, "别家客户")
    login_as("sales_rep", acme)
    html = client.get("/customers/").get_data(as_text=True)
    assert header_keys(html) == flagged(acme) == ["pharma__hospital_grade", "pharma__hospital"]
    assert "三级甲等" in html
    assert "1500" not in html  # beds: not a column by default
    assert 'name="pharma__beds__min"' in html  # but a filter
    assert 'href="/settings/columns/"' not in html  # a rep does not choose
    login_as("admin", other)
    html = client.get("/customers/").get_data(as_text=True)
    assert header_keys(html) == [] and "别家客户" in html
    assert 'href="/settings/columns/"' not in html  # no plugin field to choose


def test_an_admin_chooses_the_columns_and_the_list_shows_exactly_those(
    app, db, client, company, login_as
):
    acme = company(plugins=["pharma", "surveys"])
    other = company(plugins=["pharma"])
    add(db, acme, "协和医院", pharma__beds=1500, sales__share_of_wallet=37)
    admin = login_as("admin", acme)
    assert 'href="/settings/columns/"' in client.get("/customers/").get_data(as_text=True)
    page = client.get("/settings/columns/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "客户列表的列" in text and 'value="pharma__hospital" checked' in text
    answer = client.post(
        "/settings/columns/", data={"shown": ["pharma__beds", "sales__share_of_wallet"]}
    )
    assert answer.status_code == 302
    html = client.get("/customers/").get_data(as_text=True)
    assert header_keys(html) == ["sales__share_of_wallet", "pharma__beds"]  # declaration order
    assert "1500" in html and "37" in html
    with company_scope(acme.id):
        stored = db.session.scalar(
            select(CompanySetting.value).where(CompanySetting.key == columns.SETTING_KEY)
        )
        audited = db.session.scalars(
            select(AuditLog).where(AuditLog.entity_type == "company_setting").order_by(AuditLog.id)
        ).all()
    # Only what differs from the declarations is stored.
    assert stored == {
        "customer": {
            "pharma__beds": True,
            "pharma__hospital": False,
            "pharma__hospital_grade": False,
            "sales__share_of_wallet": True,
        }
    }
    assert audited[-1].user_id == admin.id
    assert audited[-1].data["shown"] == ["sales__share_of_wallet", "pharma__beds"]
    # The other company keeps the defaults.
    login_as("admin", other)
    assert header_keys(client.get("/customers/").get_data(as_text=True)) == flagged(other)
    # Nothing ticked: no plugin column at all; then back to the defaults.
    login_as("admin", acme)
    client.post("/settings/columns/", data={})
    assert header_keys(client.get("/customers/").get_data(as_text=True)) == []
    client.post("/settings/columns/", data={"shown": ["pharma__beds"], "action": "defaults"})
    html = client.get("/customers/").get_data(as_text=True)
    assert header_keys(html) == flagged(acme)


def test_a_choice_about_a_disabled_plugin_waits_for_it(app, db, client, company, login_as):
    acme = company(plugins=["pharma", "surveys"])
    login_as("admin", acme)
    client.post("/settings/columns/", data={"shown": ["surveys__preferred_channel"]})
    current().disable(acme, "surveys")
    db.session.commit()
    client.post("/settings/columns/", data={"shown": ["pharma__title"]})
    assert header_keys(client.get("/customers/").get_data(as_text=True)) == ["pharma__title"]
    current().enable(acme, "surveys")
    db.session.commit()
    html = client.get("/customers/").get_data(as_text=True)
    assert sorted(header_keys(html)) == ["pharma__title", "surveys__preferred_channel"]


def test_an_unknown_field_is_refused(app, db, client, company, login_as):
    acme = company(plugins=["pharma"])
    login_as("admin", acme)
    answer = client.post("/settings/columns/", data={"shown": ["pharma__beds", "sales__nope"]})
    assert answer.status_code == 422
    assert header_keys(client.get("/customers/").get_data(as_text=True)) == flagged(acme)


@pytest.mark.parametrize("role", ["manager", "sales_rep", "viewer"])
def test_only_an_admin_changes_the_columns(app, db, client, company, login_as, role):
    acme = company(plugins=["pharma"])
    login_as(role, acme)
    assert client.get("/settings/columns/").status_code == 403
    answer = client.post("/settings/columns/", data={"shown": ["pharma__beds"]})
    assert answer.status_code == 403
    with unscoped():
        assert db.session.scalar(select(CompanySetting.id)) is None
    assert header_keys(client.get("/customers/").get_data(as_text=True)) == flagged(acme)


def test_a_filter_on_a_hidden_field_still_narrows_the_list(app, db, client, company, login_as):
    acme = company(plugins=["pharma", "surveys"])
    add(db, acme, "大医院", pharma__beds=1500, surveys__preferred_channel="phone")
    add(db, acme, "小诊所", pharma__beds=20, surveys__preferred_channel="wechat")
    login_as("manager", acme)
    seen: list[str] = []

    def watch(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        plain = client.get("/customers/").get_data(as_text=True)
        assert "大医院" in plain and "小诊所" in plain
        assert not any("surveys_customer_ext" in s for s in seen)  # no column, no join
        # A hidden field of a plugin that shows none: its side table is joined for the filter.
        html = client.get("/customers/?surveys__preferred_channel=wechat").get_data(as_text=True)
        assert "小诊所" in html and "大医院" not in html
        assert "surveys__preferred_channel" not in header_keys(html)
        assert any("surveys_customer_ext" in s for s in seen)
        # A hidden field whose side table is joined already (for a shown field of the plugin).
        html = client.get("/customers/?pharma__beds__min=100").get_data(as_text=True)
        assert "大医院" in html and "小诊所" not in html
        html = client.get(
            "/customers/?pharma__beds__max=100&surveys__preferred_channel=wechat&pharma__title="
        ).get_data(as_text=True)
        assert "小诊所" in html and "大医院" not in html
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert client.get("/customers/?surveys__preferred_channel=fax").status_code == 400


def test_the_export_and_the_api_keep_every_field(app, db, client, company, login_as):
    acme = company(plugins=["pharma"])
    add(db, acme, "大医院", pharma__beds=1500)
    login_as("admin", acme)
    client.post("/settings/columns/", data={})
    header = client.get("/customers/export.csv").get_data(as_text=True).lstrip("\ufeff")
    assert "pharma__beds" in header.splitlines()[0]
    record = client.get("/api/v1/customers").get_json()["data"][0]
    assert record["pharma__beds"] == 1500


def test_the_page_costs_the_same_statements_whatever_it_hides(app, db, client, company, login_as):
    acme = company(plugins=list(BUILTIN))
    for n in range(3):
        add(db, acme, f"客户{n}", pharma__beds=n, sales__share_of_wallet=n)
    login_as("admin", acme)
    every = [f.key for f in current().registry.fields_for("customer", BUILTIN)]
    counts = []
    for shown in (every, flagged(acme), every[:1], []):
        client.post("/settings/columns/", data={"shown": shown})
        client.get("/customers/")  # warm
        db.session.expire_all()
        with QueryCounter(db.engine) as counter:
            html = client.get("/customers/").get_data(as_text=True)
        assert header_keys(html) == shown
        counts.append(counter.count)
    assert len(set(counts)) == 1, counts
