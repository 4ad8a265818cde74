"""The sales plugin as a company switches it (issue 6): disabling hides its menu, pages, API,
fields and reports for that company and keeps every row; enabling again shows them again."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from core import fields, tokens
from core.models import Customer
from core.tenancy import company_scope
from plugins.sales.models import Opportunity, Order, Target

PAGES = (
    "/sales/opportunities",
    "/sales/opportunities/board",
    "/sales/orders",
    "/sales/receivables",
    "/sales/value",
    "/sales/targets",
    "/sales/scorecard",
    "/reports/sales_funnel",
    "/reports/sales_receivables_ageing",
)
API = ("/api/v1/sales_opportunities", "/api/v1/sales_orders")


def _seen(client, headers) -> dict[str, object]:
    """What the member sees of the plugin: page statuses, API statuses, menu, form, reports."""
    dashboard = client.get("/dashboard/").get_data(as_text=True)
    form = client.get("/customers/new").get_data(as_text=True)
    reports = client.get("/reports/").get_data(as_text=True)
    return {
        "pages": {url: client.get(url).status_code for url in PAGES},
        "api": {url: client.get(url, headers=headers).status_code for url in API},
        "menu": "/sales/targets" in dashboard,
        "field": 'name="sales__purchase_potential"' in form,
        "report": "/reports/sales_funnel" in reports,
        "spec": "sales_orders"
        in client.get("/api/v1/openapi.json", headers=headers).get_data(as_text=True),
    }


def test_disable_hides_everything_and_keeps_rows_enable_shows_them_again(
    app, db, client, company, login_as
):
    manager = app.extensions["guanxi.plugins"]
    acme = company(plugins=["sales"])
    other = company()  # never had sales
    admin = login_as("admin", acme)
    _row, secret = tokens.issue(admin, acme.id, "integration")
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    with company_scope(acme.id):
        customer = Customer(name="协和医院", kind="business", status="existing")
        db.session.add(customer)
        db.session.flush()
        declared = manager.registry.fields_for("customer", ["sales"])
        fields.save(declared, customer.id, {"sales__purchase_potential": Decimal(800000)})
        db.session.add_all(
            [
                Opportunity(name="年度采购", customer_id=customer.id, amount=Decimal(50000)),
                Order(
                    number="SO-1",
                    customer_id=customer.id,
                    ordered_on=date(2026, 11, 1),
                    amount=Decimal(1000),
                ),  # fmt: skip
                Target(user_id=admin.id, period="2026-11", amount=Decimal(100000)),
            ]
        )
        db.session.commit()

    on = _seen(client, headers)
    assert set(on["pages"].values()) == {200}, on["pages"]
    assert set(on["api"].values()) == {200}, on["api"]
    assert on["menu"] and on["field"] and on["report"] and on["spec"]

    manager.disable(acme, "sales")
    db.session.commit()
    off = _seen(client, headers)
    assert set(off["pages"].values()) == {404}, off["pages"]
    assert set(off["api"].values()) == {404}, off["api"]
    assert not (off["menu"] or off["field"] or off["report"] or off["spec"])
    with company_scope(acme.id):
        assert db.session.scalar(select(func.count(Opportunity.id))) == 1
        assert db.session.scalar(select(func.count(Order.id))) == 1
        assert db.session.scalar(select(func.count(Target.id))) == 1
        values = fields.load(declared, [customer.id])[customer.id]
        assert values["sales__purchase_potential"] == Decimal(800000)

    manager.enable(acme, "sales")
    db.session.commit()
    assert _seen(client, headers) == on

    login_as("admin", other)
    assert client.get("/sales/opportunities").status_code == 404


def test_the_menu_marks_the_entry_the_page_belongs_to(app, db, client, company, login_as):
    import re

    acme = company(plugins=["sales"])
    login_as("manager", acme)

    def active(url: str) -> list[str]:
        page = client.get(url).get_data(as_text=True)
        nav = page.split('<nav class="menu">', 1)[1].split("</nav>", 1)[0]
        return re.findall(r'<a href="([^"]+)"\s+class="active"', nav)

    assert active("/sales/orders") == ["/sales/orders"]
    assert active("/sales/receivables") == ["/sales/receivables"]
    assert active("/sales/opportunities/board") == ["/sales/opportunities"]
    assert active("/customers/") == ["/customers/"]
    assert active("/sales/scorecard") == []  # no entry of its own: none is marked
