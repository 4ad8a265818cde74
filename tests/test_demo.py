"""The demo: three industry companies a newcomer can log into and find populated."""

from __future__ import annotations

from sqlalchemy import func, select

from core import demo, search
from core.clocks import status_counts
from core.models import BackgroundTask, Company, Consent, Customer, ServiceTicket
from core.tenancy import company_scope, unscoped


def lead_prospects() -> int:
    """The insurance demo's leads on new prospects: those whose customer holds no policy (the
    converted leads of buyers are on customers the policies demo sold to)."""
    from core.db import db
    from plugins.insurance.models import Lead, Policy

    return db.session.scalar(
        select(func.count(Lead.id)).where(Lead.customer_id.not_in(select(Policy.customer_id)))
    )


def test_demo_creates_three_companies_once_with_their_plugins(app, db, client):
    printed: list[str] = []
    demo.ensure(echo=printed.append)
    demo.ensure(echo=printed.append)  # a second run creates nothing more
    with unscoped():
        companies = {c.code: c for c in db.session.scalars(select(Company))}
    assert set(companies) == {"demo-pharma", "demo-insurance", "demo-property"}
    manager = app.extensions["guanxi.plugins"]
    assert {"pharma", "sales", "marketing"} <= manager.enabled(companies["demo-pharma"].id)
    assert {"insurance", "sales"} <= manager.enabled(companies["demo-insurance"].id)
    assert {"property", "surveys"} <= manager.enabled(companies["demo-property"].id)
    assert "pharma" not in manager.enabled(companies["demo-property"].id)
    assert any("manager@pharma.demo" in line for line in printed)

    for company in companies.values():
        with company_scope(company.id):
            # 60 seeded, 7 from the trade-fair list imported through the import path, plus
            # the prospects a plugin's demo adds with their leads (insurance: one per lead
            # not on an existing customer)
            prospects = lead_prospects() if company.code == "demo-insurance" else 0
            # the property demo's residents (customers of kind resident) and complaints
            property_demo = company.code == "demo-property"
            if property_demo:
                prospects = db.session.scalar(
                    select(func.count()).where(Customer.kind == "resident")
                )
                assert prospects == 150
            assert db.session.scalar(select(func.count()).select_from(Customer)) == 67 + prospects
            task, opt_outs = db.session.scalars(
                select(BackgroundTask)
                .where(BackgroundTask.kind == "import")
                .order_by(BackgroundTask.id)
            )
            assert task.status == "done"
            assert (task.result["created"], task.result["failed"]) == (7, 3)
            # the SMS opt-out list, imported as consent answers (every demo company has a
            # plugin that contacts customers)
            assert opt_outs.status == "done" and opt_outs.params["resource"] == "consents"
            assert opt_outs.result["created"] + opt_outs.result["updated"] == 6
            refused = select(func.count()).where(
                Consent.source == "短信回复TD退订", Consent.channel == "sms", ~Consent.granted
            )
            assert db.session.scalar(refused) == 6
            complaints = (
                db.session.scalar(
                    select(func.count()).where(ServiceTicket.workflow == "property_complaint")
                )
                if property_demo
                else 0
            )
            assert db.session.scalar(select(func.count()).select_from(ServiceTicket)) == (
                24 + complaints
            )
            statuses = status_counts()
            assert sum(statuses.values()) > 24 and len(statuses) >= 3

    with company_scope(companies["demo-pharma"].id):
        kinds = set(db.session.scalars(select(Customer.kind)))
        assert {"hospital", "doctor"} <= kinds
    with db.engine.begin() as conn:
        assert search.refresh(conn) == 0  # the demo left every customer in the search index


def test_demo_users_log_in_and_see_their_company_in_chinese(app, client):
    demo.ensure(echo=lambda line: None)
    response = client.post(
        "/login",
        data={"email": "manager@pharma.demo", "password": demo.PASSWORD},
        headers={"Accept-Language": "zh-CN"},
    )
    assert response.status_code == 302
    page = client.get("/customers/").get_data(as_text=True)
    assert "康泰医药有限公司" in page and "医院" in page
