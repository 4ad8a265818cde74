"""Extension fields: declared once by a plugin, present in form, JSON, list filter and CSV."""

from __future__ import annotations

import pytest

from core import fields
from core.models import Customer
from core.tenancy import company_scope

pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin")


def add_customer(db, company, name, **values):
    with company_scope(company.id):
        customer = Customer(name=name, kind="consumer")
        db.session.add(customer)
        db.session.flush()
        if values:
            from core.plugins import current

            declared = current().registry.fields_for("customer", ["sample"])
            fields.save(declared, customer.id, values)
        db.session.commit()
        return customer.id


def test_field_appears_in_the_form_and_is_saved(app, db, client, company, login_as):
    acme = company(plugins=["sample"])
    login_as("agent", acme)
    page = client.get("/customers/new").get_data(as_text=True)
    assert 'name="sample__hospital_beds"' in page
    assert "Hospital beds" in page or "床位数" in page

    response = client.post(
        "/customers/new",
        data={"name": "协和医院", "kind": "consumer", "sample__hospital_beds": "800"},
    )
    assert response.status_code == 302
    detail = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "800" in detail


def test_bad_form_value_is_refused_with_the_field_named(app, db, client, company, login_as):
    acme = company(plugins=["sample"])
    login_as("agent", acme)
    response = client.post(
        "/customers/new",
        data={"name": "协和医院", "kind": "consumer", "sample__hospital_beds": "-3"},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'class="error" data-field="sample__hospital_beds"' in page
    with company_scope(acme.id):
        assert db.session.query(Customer).count() == 0


def test_field_is_in_the_json_of_the_record(app, db, client, company, login_as):
    acme = company(plugins=["sample"])
    customer_id = add_customer(db, acme, "协和医院", sample__hospital_beds=1200, sample__grade="a")
    login_as("agent", acme)
    record = client.get(f"/api/v1/customers/{customer_id}").get_json()
    assert record["sample__hospital_beds"] == 1200
    assert record["sample__grade"] == "a"


def test_field_is_absent_for_a_company_without_the_plugin(app, db, client, company, login_as):
    other = company()
    customer_id = add_customer(db, other, "某药店")
    login_as("agent", other)
    record = client.get(f"/api/v1/customers/{customer_id}").get_json()
    assert "sample__hospital_beds" not in record
    assert 'name="sample__hospital_beds"' not in client.get("/customers/new").get_data(as_text=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "greater than or equal to 0"), (6000, "less than or equal to 5000"), ("many", "integer")],
)
def test_bad_json_value_is_refused_with_the_field_named(
    app, db, client, company, login_as, value, message
):
    acme = company(plugins=["sample"])
    login_as("agent", acme)
    response = client.post(
        "/api/v1/customers", json={"name": "协和医院", "sample__hospital_beds": value}
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert message in " ".join(error["fields"]["sample__hospital_beds"]).lower()
    with company_scope(acme.id):
        assert db.session.query(Customer).count() == 0


def test_bad_choice_is_refused_with_the_field_named(app, client, company, login_as):
    login_as("agent", company(plugins=["sample"]))
    response = client.post("/api/v1/customers", json={"name": "x", "sample__grade": "z"})
    assert response.status_code == 422
    assert "sample__grade" in response.get_json()["error"]["fields"]


def test_list_shows_the_column_and_filters_by_the_field(app, db, client, company, login_as):
    acme = company(plugins=["sample"])
    add_customer(db, acme, "大医院", sample__hospital_beds=1500)
    add_customer(db, acme, "小诊所", sample__hospital_beds=20)
    login_as("agent", acme)
    page = client.get("/customers/").get_data(as_text=True)
    assert "大医院" in page and "小诊所" in page and "1500" in page
    filtered = client.get("/customers/?sample__hospital_beds__min=100").get_data(as_text=True)
    assert "大医院" in filtered and "小诊所" not in filtered
    api = client.get("/api/v1/customers?sample__hospital_beds__max=100").get_json()
    assert [r["name"] for r in api["data"]] == ["小诊所"]


def test_bad_filter_value_is_reported_not_a_500(app, client, company, login_as):
    login_as("agent", company(plugins=["sample"]))
    page = client.get("/customers/?sample__hospital_beds__min=lots")
    assert page.status_code == 400
    assert "sample__hospital_beds__min" in page.get_data(as_text=True)
    api = client.get("/api/v1/customers?sample__hospital_beds__min=lots")
    assert api.status_code == 400
    assert "sample__hospital_beds__min" in api.get_json()["error"]["fields"]


def test_csv_export_has_a_column_for_the_field(app, db, client, company, login_as):
    acme = company(plugins=["sample"])
    add_customer(db, acme, "大医院", sample__hospital_beds=1500, sample__grade="b")
    login_as("agent", acme)
    response = client.get("/customers/export.csv")
    assert response.status_code == 200
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    header = lines[0].split(",")
    assert "sample__hospital_beds" in header and "sample__grade" in header
    row = dict(zip(header, lines[1].split(","), strict=True))
    assert row["sample__hospital_beds"] == "1500" and row["sample__grade"] == "b"


def test_field_declared_twice_stops_the_start():
    import types

    from core.extend import Field, Manifest, hookimpl
    from core.plugins import PluginError, PluginManager

    def declare(name):
        module = types.ModuleType(name)
        module.manifest = Manifest("twice", "Twice", "两次", "1.0")
        module.guanxi_extension_fields = hookimpl(
            lambda: [Field("customer", "x", "string", "X"), Field("customer", "x", "string", "X")]
        )
        return module

    with pytest.raises(PluginError, match="twice__x"):
        PluginManager().install([declare("twice_module")])


def test_customer_reference_values_are_ids_that_export_and_display_by_name(app):
    ref = fields.CustomerRef(5, "协和医院")
    declared = fields.Field("customer", "hospital", "customer", "Hospital", plugin="p")
    assert ref == 5 and isinstance(ref, int)
    assert fields.csv_value(declared, ref) == "协和医院"
    assert fields.display(declared, ref) == "协和医院"  # linked only inside a request
    assert fields.dump([declared], {"p__hospital": ref}) == {"p__hospital": 5}
