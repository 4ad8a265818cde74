"""In a real browser: a resident files a complaint on the public form without logging in; staff
dispatch it and resolve it with a root cause; the follow-up gets a low score and reopens it;
the resident's tracking link shows each of those steps.

Needs Debian's chromium (see tests/conftest.py); skipped with a message when it is missing.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from core.models import ServiceTicket, Team
from core.tenancy import company_scope
from plugins.property.models import Building, Complaint, ComplaintClass, Estate, Unit

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_a_residents_complaint_is_dispatched_resolved_reopened_and_tracked(
    app, db, company, make_user, browser, live_url, log_in
):
    co = company("anju", plugins=["surveys", "property"], name="安居物业")
    make_user("manager", co, email="manager@anju.example", password="s3cret-pass")
    worker = make_user("service_agent", co, email="li@anju.example", password="s3cret-pass")
    with company_scope(co.id):
        team = Team(name="工程维修部")
        estate, lake = Estate(code="YG", name="阳光花园"), Estate(code="HP", name="湖畔家园")
        db.session.add_all([team, estate, lake])
        db.session.flush()
        building = Building(estate_id=estate.id, name="3栋")
        db.session.add_all([building, Building(estate_id=lake.id, name="1栋")])
        db.session.flush()
        unit = Unit(building_id=building.id, label="2单元1502")
        db.session.add(unit)
        db.session.commit()
        repairs = db.session.scalar(
            select(ComplaintClass.id).where(
                ComplaintClass.level == "category", ComplaintClass.code == "repairs"
            )
        )
        leak = db.session.scalar(
            select(ComplaintClass.id).where(
                ComplaintClass.level == "problem", ComplaintClass.code == "leak"
            )
        )
        team_id, building_id, unit_id = team.id, building.id, unit.id

    # the resident, not logged in, on the company's public form
    resident = browser.new_context(locale="zh-CN").new_page()
    resident.goto(f"{live_url}/p/anju/property/complaint")
    resident.select_option("select[name=building_id]", str(building_id))
    with resident.expect_navigation():
        resident.click("#place-form button[type=submit]")
    resident.select_option("select[name=unit_id]", str(unit_id))
    resident.fill("input[name=name]", "王芳")
    resident.fill("input[name=phone]", "1380013")  # too short: refused at the field
    resident.check("input[name=type][value=property_repair]")
    resident.select_option("select[name=category_id]", str(repairs))
    resident.select_option("select[name=problem_id]", str(leak))
    resident.fill("textarea[name=description]", "卫生间天花板漏水，楼上住户不在家。")
    resident.check("input[name=emergency]")
    with resident.expect_navigation():
        resident.click("#complaint-form button[type=submit]")
    assert resident.locator("small.error[data-field=phone]").is_visible()
    assert resident.locator("textarea[name=description]").input_value().startswith("卫生间")
    resident.fill("input[name=phone]", "138 0013 8000")
    resident.set_input_files(
        "input[name=photo]", {"name": "leak.png", "mimeType": "image/png", "buffer": PNG}
    )
    with resident.expect_navigation():
        resident.click("#complaint-form button[type=submit]")
    assert re.search(r"/p/anju/property/track/[\w-]+$", resident.url)
    tracking_url = resident.url
    assert resident.locator("[data-current-state]").inner_text() == "已受理"
    assert "138****8000" in resident.locator("[data-reporter]").inner_text()
    assert resident.locator("#photos img").count() == 1

    with company_scope(co.id):
        ticket = db.session.scalars(select(ServiceTicket)).one()
        ticket_id = ticket.id
        assert (ticket.workflow, ticket.intake_channel, ticket.priority) == (
            "property_complaint",
            "web",
            "urgent",
        )
        assert db.session.get(Complaint, ticket_id).tracking_code in tracking_url

    # staff dispatch it to the engineering team and resolve it with a root cause
    staff = browser.new_context(locale="zh-CN").new_page()
    log_in(staff, "manager@anju.example")
    staff.goto(f"{live_url}/tickets/{ticket_id}")
    staff.select_option("#dispatch-form select[name=team_id]", str(team_id))
    staff.select_option("#dispatch-form select[name=assignee_id]", str(worker.id))
    with staff.expect_navigation():
        staff.click("#dispatch-form button[type=submit]")
    assert staff.locator("#resolve-form").count() == 1
    staff.select_option("#resolve-form select[name=root_cause]", "equipment_ageing")
    staff.fill("#resolve-form textarea[name=action]", "更换了老化的水管接头")
    with staff.expect_navigation():
        staff.click("#resolve-form button[type=submit]")

    # the follow-up call: the resident is not satisfied, so the complaint reopens
    staff.fill(".followup-form input[name=customer_score]", "1")
    staff.fill(".followup-form textarea[name=result]", "还在滴水")
    with staff.expect_navigation():
        staff.click(".followup-form button[type=submit]")
    with company_scope(co.id):
        db.session.expire_all()
        ticket = db.session.get(ServiceTicket, ticket_id)
        assert ticket.state == "in_progress"
        complaint = db.session.get(Complaint, ticket_id)
        assert (complaint.root_cause, complaint.reopen_count) == ("equipment_ageing", 1)

    # the resident's link shows every step, the team and the action, no staff names
    resident.goto(tracking_url)
    steps = resident.locator("#steps tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.step)"
    )
    assert steps == ["filed", "dispatch", "resolve", "followup", "reopen"]
    text = resident.locator("#steps").inner_text()
    for label in ("已受理", "已派单", "已解决·待回访", "重新打开", "处理中", "1/5"):
        assert label in text
    assert resident.locator("[data-current-state]").inner_text() == "处理中"
    assert resident.locator("[data-team]").inner_text() == "工程维修部"
    assert resident.locator("[data-action]").inner_text() == "更换了老化的水管接头"
    body = resident.locator("body").inner_text()
    assert worker.name not in body and "还在滴水" not in body and "13800138000" not in body
