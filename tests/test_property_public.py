"""The property plugin's public pages: residents file a complaint without logging in
(``/p/<company>/property/complaint``) and follow it by its tracking link
(``/p/<company>/property/track/<code>``)."""

from __future__ import annotations

from io import BytesIO
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from core import followup, workflow
from core.models import Customer, ServiceTicket, Team
from core.tenancy import company_scope
from plugins.property import complaints
from plugins.property.models import (
    Building,
    Complaint,
    ComplaintClass,
    ComplaintPhoto,
    Estate,
    Residence,
    Unit,
)
from plugins.property.public import mask_phone, normalize_phone

#: The smallest bytes that pass as a PNG (the signature and a bit).
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def estate(app, db, company, make_user):
    """A property company ``wuye`` with two estates (one with two buildings), units, an
    engineering team and a service agent."""
    co = company("wuye", plugins=["surveys", "property"], name="安居物业")
    agent = make_user("service_agent", co)
    with company_scope(co.id):
        team = Team(name="工程维修部")
        sunny, lake = Estate(code="YG", name="阳光花园"), Estate(code="HP", name="湖畔家园")
        db.session.add_all([team, sunny, lake])
        db.session.flush()
        b3, b5 = Building(estate_id=sunny.id, name="3栋"), Building(estate_id=sunny.id, name="5栋")
        b1 = Building(estate_id=lake.id, name="1栋")
        db.session.add_all([b3, b5, b1])
        db.session.flush()
        unit, other = (
            Unit(building_id=b3.id, label="2单元1502"),
            Unit(building_id=b5.id, label="101"),
        )
        db.session.add_all([unit, other])
        db.session.commit()
        classes = {(c.level, c.code): c.id for c in db.session.scalars(select(ComplaintClass))}
        return SimpleNamespace(
            company=co,
            agent=agent,
            team=team.id,
            building=b3.id,
            other_building=b5.id,
            unit=unit.id,
            other_unit=other.id,
            classes=classes,
        )


def form(place: Any, **overrides: Any) -> dict[str, Any]:
    values = {
        "name": "王芳",
        "phone": "138 0013 8000",
        "unit_id": str(place.unit),
        "type": "property_repair",
        "category_id": str(place.classes[("category", "repairs")]),
        "problem_id": str(place.classes[("problem", "leak")]),
        "place_id": str(place.classes[("place", "home")]),
        "description": "卫生间天花板漏水，楼上住户不在家。",
        "emergency": "1",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def post(client, place: Any, data: dict[str, Any], building: int | None = None) -> Any:
    return client.post(
        f"/p/wuye/property/complaint?building_id={building or place.building}",
        data=data,
        content_type="multipart/form-data",
    )


def counts(db, place: Any) -> tuple[int, int, int]:
    with company_scope(place.company.id):
        return (
            db.session.scalar(select(func.count(ServiceTicket.id))),
            db.session.scalar(select(func.count(Customer.id))),
            db.session.scalar(select(func.count(ComplaintPhoto.id))),
        )


def only_complaint(db, place: Any) -> tuple[ServiceTicket, Complaint]:
    with company_scope(place.company.id):
        ticket = db.session.scalars(select(ServiceTicket)).one()
        return ticket, db.session.get(Complaint, ticket.id)


def test_phone_numbers_are_read_as_typed_and_masked():
    assert normalize_phone("+86 138-0013-8000") == "13800138000"
    assert normalize_phone("8613800138000") == "13800138000"
    assert mask_phone("13800138000") == "138****8000"


def test_the_form_picks_the_building_first_then_files_a_complaint_without_login(
    app, db, client, estate
):
    first = client.get("/p/wuye/property/complaint")
    assert first.status_code == 200
    assert "阳光花园 3栋" in first.text and "湖畔家园 1栋" in first.text
    assert 'name="building_id"' in first.text and "<script" not in first.text
    assert client.get("/p/wuye/property/complaint?building_id=999999").status_code == 422

    page = client.get(f"/p/wuye/property/complaint?building_id={estate.building}")
    assert page.status_code == 200
    assert "2单元1502" in page.text and ">101<" not in page.text  # units of this building only
    assert 'enctype="multipart/form-data"' in page.text and "<script" not in page.text

    answer = post(client, estate, {**form(estate), "photo": (BytesIO(PNG), "leak.png")})
    assert answer.status_code == 302
    ticket, complaint = only_complaint(db, estate)
    assert answer.headers["Location"].endswith(f"/p/wuye/property/track/{complaint.tracking_code}")
    assert (ticket.workflow, ticket.state, ticket.type) == (
        "property_complaint",
        "new",
        "property_repair",
    )
    assert (ticket.intake_channel, ticket.priority) == ("web", "urgent")
    assert (complaint.unit_id, complaint.category_id, complaint.problem_id) == (
        estate.unit,
        estate.classes[("category", "repairs")],
        estate.classes[("problem", "leak")],
    )
    assert (complaint.reporter_name, complaint.reporter_phone) == ("王芳", "13800138000")
    assert complaint.emergency is True
    with company_scope(estate.company.id):
        resident = db.session.get(Customer, ticket.customer_id)
        assert (resident.name, resident.phone, resident.kind) == ("王芳", "13800138000", "resident")
        assert (
            db.session.scalar(select(Residence.unit_id).where(Residence.customer_id == resident.id))
            == estate.unit
        )
        photo = db.session.scalars(select(ComplaintPhoto)).one()
        assert (photo.ticket_id, photo.content_type) == (ticket.id, "image/png")


def test_a_resident_already_known_by_phone_files_as_themselves(app, db, client, estate):
    with company_scope(estate.company.id):
        known = Customer(name="王芳（业主）", kind="resident", phone="13800138000")
        db.session.add(known)
        db.session.commit()
        known_id = known.id
    assert post(client, estate, form(estate, emergency=None)).status_code == 302
    ticket, _complaint = only_complaint(db, estate)
    assert ticket.customer_id == known_id and ticket.priority == "normal"
    assert counts(db, estate)[1] == 1


def test_refused_input_is_shown_at_its_field_and_nothing_is_written(app, db, client, estate):
    answer = post(
        client,
        estate,
        form(
            estate,
            name="",
            phone="12345",
            unit_id=str(estate.other_unit),  # a unit of another building
            category_id="",
            description="",
        ),
    )
    assert answer.status_code == 422
    for field in ("name", "phone", "unit_id", "category_id", "description"):
        assert f'data-field="{field}"' in answer.text
    assert 'value="12345"' in answer.text  # what was typed is kept
    # a problem of another category: the engine's refusal, at its field
    wrong = post(
        client,
        estate,
        form(estate, problem_id=str(estate.classes[("problem", "rubbish")])),
    )
    assert wrong.status_code == 422 and 'data-field="problem_id"' in wrong.text
    assert counts(db, estate) == (0, 0, 0)


def test_oversized_and_fake_photos_are_refused_at_the_photo_field_and_nothing_is_written(
    app, db, client, estate
):
    with company_scope(estate.company.id):
        complaints.save_settings({"photo_max_bytes": 1000})
        db.session.commit()
    big = post(client, estate, {**form(estate), "photo": (BytesIO(JPEG * 40), "big.jpg")})
    assert big.status_code == 422
    assert 'data-field="photo"' in big.text and "1000" not in big.text
    fake = post(
        client, estate, {**form(estate), "photo": (BytesIO(b"just some text\n" * 5), "a.jpg")}
    )
    assert fake.status_code == 422 and 'data-field="photo"' in fake.text
    assert "王芳" in fake.text  # the other fields are kept
    assert counts(db, estate) == (0, 0, 0)


def test_a_body_beyond_every_limit_is_a_form_error_not_a_crash(app, db, client, estate):
    with company_scope(estate.company.id):
        complaints.save_settings({"photo_max_bytes": 1000})
        db.session.commit()
    app.config["MAX_CONTENT_LENGTH"] = 2000  # the form allows the photo limit plus 1 MB
    huge = post(client, estate, {**form(estate), "photo": (BytesIO(JPEG * 30000), "huge.jpg")})
    assert huge.status_code == 422
    assert 'data-field="photo"' in huge.text and 'id="complaint-form"' in huge.text
    assert counts(db, estate) == (0, 0, 0)


def test_the_form_checks_its_csrf_token_itself(app, db, client, estate):
    app.config["WTF_CSRF_ENABLED"] = True
    assert post(client, estate, form(estate)).status_code == 400
    page = client.get(f"/p/wuye/property/complaint?building_id={estate.building}")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert post(client, estate, {**form(estate), "csrf_token": token}).status_code == 302


def test_floods_beyond_the_company_limit_get_429_and_nothing_more_is_written(
    app, db, client, estate
):
    with company_scope(estate.company.id):
        complaints.save_settings({"public_rate_limit": "2/hour"})
        db.session.commit()
    codes = [post(client, estate, form(estate)).status_code for _ in range(4)]
    assert codes == [302, 302, 429, 429]
    refused = post(client, estate, form(estate))
    assert refused.status_code == 429 and 'role="alert"' in refused.text
    assert counts(db, estate)[0] == 2
    assert client.get("/p/wuye/property/complaint").status_code == 200  # reading is free


def test_the_pages_are_404_without_the_plugin_or_the_company(app, client, company, estate):
    company("plain")
    for url in ("/p/plain/property/complaint", "/p/nobody/property/complaint"):
        assert client.get(url).status_code == 404
    assert client.get("/p/plain/property/track/abc").status_code == 404


def test_the_tracking_page_shows_each_step_and_no_one_elses_data(app, db, client, estate):
    assert post(client, estate, {**form(estate), "photo": (BytesIO(PNG), "a.png")}).status_code
    ticket, complaint = only_complaint(db, estate)
    url = f"/p/wuye/property/track/{complaint.tracking_code}"
    fresh = client.get(url)
    assert fresh.status_code == 200
    assert f"{ticket.id}" in fresh.text and "已受理" in fresh.text and "维修" in fresh.text
    assert "138****8000" in fresh.text and "13800138000" not in fresh.text
    assert fresh.headers["Referrer-Policy"] == "no-referrer"

    agent = estate.agent
    with company_scope(estate.company.id):
        ticket = db.session.get(ServiceTicket, ticket.id)
        complaints.dispatch(ticket, agent, team_id=estate.team, assignee_id=agent.id)
        db.session.commit()
        workflow.transition(ticket, "start", user=agent)
        db.session.commit()
        complaints.resolve(
            ticket, agent, root_cause="equipment_ageing", action="更换了老化的水管接头"
        )
        db.session.commit()
        followup.record_followup(ticket, agent, 2, 60, "还在滴水")
        db.session.commit()
        assert ticket.state == "in_progress"

    page = client.get(url)
    assert page.status_code == 200
    steps = [row.split('data-step="')[1].split('"')[0] for row in page.text.split("<tr")[2:]]
    assert steps == ["filed", "dispatch", "start", "resolve", "followup", "reopen"]
    for label in ("已派单", "处理中", "已解决·待回访", "重新打开", "2/5"):
        assert label in page.text
    assert "工程维修部" in page.text and "更换了老化的水管接头" in page.text
    assert agent.name not in page.text and agent.email not in page.text
    assert "还在滴水" not in page.text  # the follow-up's notes stay inside
    assert "13800138000" not in page.text

    with company_scope(estate.company.id):
        photo_id = db.session.scalar(select(ComplaintPhoto.id))
    image = client.get(f"{url}/photos/{photo_id}")
    assert image.status_code == 200 and image.data == PNG
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_codes_and_other_complaints_photos_are_404(app, db, client, estate):
    post(client, estate, {**form(estate), "photo": (BytesIO(PNG), "a.png")})
    post(client, estate, form(estate, phone="13900001111", name="李四"))
    with company_scope(estate.company.id):
        rows = db.session.scalars(select(Complaint).order_by(Complaint.ticket_id)).all()
        photo_id = db.session.scalar(select(ComplaintPhoto.id))
        first, second = rows[0].tracking_code, rows[1].tracking_code
    assert client.get("/p/wuye/property/track/not-a-code").status_code == 404
    assert client.get(f"/p/wuye/property/track/{first}/photos/{photo_id}").status_code == 200
    assert client.get(f"/p/wuye/property/track/{second}/photos/{photo_id}").status_code == 404
    # a tracking code is valid only under its own company's address
    other = SimpleNamespace(code="other")
    from core.models import Company

    db.session.add(Company(code=other.code, name="别家物业"))
    db.session.commit()
    app.extensions["guanxi.plugins"].enable(
        db.session.scalar(select(Company).where(Company.code == "other")), "property"
    )
    db.session.commit()
    assert client.get(f"/p/other/property/track/{first}").status_code == 404
    # and the second resident's page shows nothing of the first
    second_page = client.get(f"/p/wuye/property/track/{second}")
    assert "王" not in second_page.text and "8000" not in second_page.text
