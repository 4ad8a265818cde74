"""In a real browser: a manager raises the weight of a criterion of the active tier scheme,
recomputes, opens the doctor and sees the new tier with the reason for it.

Needs Debian's chromium (see tests/conftest.py); skipped with a message when it is missing.
"""

from __future__ import annotations

from core import fields
from core.models import Customer
from core.tenancy import company_scope
from plugins.pharma import tiering


def test_change_a_weight_recompute_and_see_the_new_tier_with_its_reason(
    app, db, company, make_user, browser, live_url, log_in
):
    acme = company(name="康泰医药", plugins=["pharma"])
    make_user("manager", acme, email="manager@example.com", password="s3cret-pass")
    with company_scope(acme.id):
        declared = app.extensions["guanxi.plugins"].registry.fields_for("customer", ["pharma"])
        config = tiering.validate_config(
            {
                "criteria": [
                    {"source": "field", "field": "pharma__prescription_potential", "weight": 50},
                    {"source": "field", "field": "pharma__adoption", "weight": 50},
                ],
                "method": "thresholds",
                "tiers": [{"name": "A", "bound": 70}, {"name": "B", "bound": 40},
                          {"name": "C", "bound": 0}],
            },
            fields=declared,
        )  # fmt: skip
        tiering.create_scheme("处方导向方案", config, activate=True)
        doctor = Customer(name="孙思邈", kind="doctor", status="existing")
        db.session.add(doctor)
        db.session.flush()
        # potential 100, adoption 0: (50×100 + 50×0) / 100 = 50 → B
        fields.save(declared, doctor.id, {"pharma__prescription_potential": 100,
                                          "pharma__adoption": 0})  # fmt: skip
        tiering.recompute()
        db.session.commit()
        doctor_id = doctor.id

    page = browser.new_page(locale="zh-CN")
    log_in(page, "manager@example.com")

    page.click("nav.menu summary >> text=医药")
    page.click("nav.menu >> text=医生分级")
    assert page.locator(f"tr[data-doctor='{doctor_id}'] td.tier").inner_text().strip() == "B"

    # the scheme: potential now weighs 150 against adoption's 50
    page.goto(f"{live_url}/pharma/tiering")
    with page.expect_navigation():
        page.click("section[data-active='yes'] a.edit")
    page.fill("input[name='criteria-0-weight']", "150")
    page.fill("input[name='note']", "处方潜力权重提高")
    with page.expect_navigation():
        page.click("form.scheme-form button[type=submit]")
    assert page.locator("section[data-active='yes'] details[data-version='2']").count() == 1

    with page.expect_navigation():
        page.click("button.recompute")
    assert page.locator(".recompute-result").get_attribute("data-doctors") == "1"

    # the doctor, from the list: A now, and why
    page.goto(f"{live_url}/pharma/doctors")
    assert page.locator(f"tr[data-doctor='{doctor_id}'] td.tier").inner_text().strip() == "A"
    with page.expect_navigation():
        page.click(f"tr[data-doctor='{doctor_id}'] td a >> nth=0")
    box = page.locator(".doctor-tier")
    assert box.locator("[data-current-tier]").get_attribute("data-current-tier") == "A"
    why = box.locator("table.tier-why")
    # (150×100 + 50×0) / 200 = 75: contributions 75.00 and 0.00, weights 150 (75 %) and 50
    assert why.locator("tr[data-criterion='0'] td.contribution").inner_text() == "75.00"
    assert "150" in why.locator("tr[data-criterion='0'] td.weight").inner_text()
    assert why.locator("tr[data-criterion='1'] td.contribution").inner_text() == "0.00"
    assert "75.00" in box.locator(".tier-summary").inner_text()
    assert "≥ 70" in box.locator(".tier-rules [data-rule='A']").inner_text()
    history = box.locator("table.tier-history tr[data-history='recompute']")
    assert history.count() == 2 and "v2" in history.first.inner_text()
