"""Property staff pages: estates, units and residents, complaint settings, intake, the
complaints list and the box on the ticket page with its dispatch and resolve forms."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.extend import utcnow
from core.models import Customer, Obligation, ServiceTicket, Team
from core.tenancy import company_scope
from core.testing import QueryCounter
from plugins.property import complaints as svc
from plugins.property.models import (
    Building,
    Complaint,
    ComplaintClass,
    DispatchRule,
    Estate,
    Residence,
    SlaRule,
    Unit,
)


@pytest.fixture
def co(company):
    return company(plugins=["property"])


@pytest.fixture
def place(db, co, make_user):
    """An estate with one building and two units, a resident, a repairs team with a person
    and a dispatch rule for the category ``repairs``."""
    agent = make_user("service_agent", co)
    with company_scope(co.id):
        estate = Estate(code="HY", name="和园")
        db.session.add(estate)
        db.session.flush()
        building = Building(estate_id=estate.id, name="3栋")
        db.session.add(building)
        db.session.flush()
        units = [Unit(building_id=building.id, label=label, floor=15) for label in ("1501", "1502")]
        team = Team(name="工程部")
        resident = Customer(name="王女士", phone="13800001111", kind="resident", status="existing")
        db.session.add_all([*units, team, resident])
        db.session.flush()
        db.session.add(Residence(unit_id=units[0].id, customer_id=resident.id, role="owner"))
        repairs = db.session.scalar(
            select(ComplaintClass).where(
                ComplaintClass.level == "category", ComplaintClass.code == "repairs"
            )
        )
        leak = db.session.scalar(select(ComplaintClass).where(ComplaintClass.code == "leak"))
        home = db.session.scalar(
            select(ComplaintClass).where(
                ComplaintClass.level == "place", ComplaintClass.code == "home"
            )
        )
        db.session.add(
            DispatchRule(
                category_id=repairs.id,
                building_id=building.id,
                team_id=team.id,
                assignee_id=agent.id,
            )
        )
        db.session.commit()
        return {
            "estate": estate.id,
            "building": building.id,
            "units": [u.id for u in units],
            "team": team.id,
            "agent": agent,
            "resident": resident.id,
            "repairs": repairs.id,
            "leak": leak.id,
            "home": home.id,
        }


def file(db, co, place, **kw):
    with company_scope(co.id):
        values = {
            "customer_id": place["resident"],
            "subject": "厨房漏水",
            "unit_id": place["units"][0],
            "category_id": place["repairs"],
            "problem_id": place["leak"],
            "type": "property_repair",
        }
        values.update(kw)
        ticket = svc.file_complaint(**values)
        db.session.commit()
        return ticket.id


def login(client, user, company):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id


# --- enabled per company ------------------------------------------------------------------------


def test_pages_answer_404_where_the_plugin_is_off(client, company, login_as):
    login_as("admin", company())
    for url in ("/property/estates", "/property/complaints", "/property/complaints/new"):
        assert client.get(url).status_code == 404
    login_as("admin", company(plugins=["property"]))
    for url in ("/property/estates", "/property/complaints", "/property/complaints/new"):
        assert client.get(url).status_code == 200, url
    html = client.get("/dashboard/").get_data(as_text=True)
    assert "/property/complaints" in html and "/property/settings" in html


# --- estates, units, residents ------------------------------------------------------------------


def test_estates_list_counts_and_add(client, db, co, place, login_as):
    login_as("manager", co)
    html = client.get("/property/estates").get_data(as_text=True)
    row = re.search(rf'data-estate="{place["estate"]}".*?</tr>', html, re.S).group(0)
    assert '<td class="buildings">1</td>' in row and '<td class="units">2</td>' in row
    bad = client.post("/property/estates", data={"code": "HY", "name": ""})
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert 'data-field="code"' in text and 'data-field="name"' in text
    ok = client.post("/property/estates", data={"code": "LX", "name": "绿溪", "address": "x"})
    assert ok.status_code == 302
    with company_scope(co.id):
        assert db.session.scalar(select(Estate.name).where(Estate.code == "LX")) == "绿溪"


def test_agents_read_estates_but_do_not_add(client, co, place):
    login(client, place["agent"], co)
    assert client.get("/property/estates").status_code == 200
    assert client.post("/property/estates", data={"code": "Z", "name": "Z"}).status_code == 403


def test_building_unit_and_bulk_units(client, db, co, place, login_as):
    login_as("manager", co)
    url = f"/property/estates/{place['estate']}"
    assert client.post(f"{url}/buildings", data={"building_name": "3栋"}).status_code == 422
    assert client.post(f"{url}/buildings", data={"building_name": "5栋"}).status_code == 302
    with company_scope(co.id):
        b5 = db.session.scalar(select(Building.id).where(Building.name == "5栋"))
    r = client.post(f"/property/buildings/{b5}/units", data={"label": "101", "floor": "x"})
    assert r.status_code == 422 and f'data-field="floor-{b5}"' in r.get_data(as_text=True)
    bulk = {"floor_from": "1", "floor_to": "18", "room_from": "1", "room_to": "4"}
    with QueryCounter(db.engine) as counter:
        assert client.post(f"/property/buildings/{b5}/bulk", data=bulk).status_code == 302
    assert counter.count < 20
    with company_scope(co.id):
        labels = set(db.session.scalars(select(Unit.label).where(Unit.building_id == b5)))
    assert len(labels) == 72 and {"101", "1804"} <= labels
    # again: nothing new, nothing doubled
    assert client.post(f"/property/buildings/{b5}/bulk", data=bulk).status_code == 302
    with company_scope(co.id):
        n = db.session.scalar(select(func.count(Unit.id)).where(Unit.building_id == b5))
    assert n == 72
    bad = client.post(f"/property/buildings/{b5}/bulk", data={**bulk, "floor_to": "0"})
    assert bad.status_code == 422 and f'data-field="floor_to-{b5}"' in bad.get_data(as_text=True)
    html = client.get(url).get_data(as_text=True)
    assert "1804" in html and "1502" in html


def test_unit_page_links_a_resident(client, db, co, place, login_as):
    login_as("service_agent", co)
    unit = place["units"][1]
    with company_scope(co.id):
        tenant = Customer(name="李先生", phone="13911112222", status="existing")
        db.session.add(tenant)
        db.session.commit()
        tenant_id = tenant.id
    html = client.get(f"/property/units/{unit}?q=1391111").get_data(as_text=True)
    assert f'value="{tenant_id}"' in html
    bad = client.post(f"/property/units/{unit}/residents", data={"role": "tenant"})
    assert bad.status_code == 422 and 'data-field="customer"' in bad.get_data(as_text=True)
    ok = client.post(
        f"/property/units/{unit}/residents", data={"customer_id": tenant_id, "role": "tenant"}
    )
    assert ok.status_code == 302
    again = client.post(
        f"/property/units/{unit}/residents", data={"customer_id": tenant_id, "role": "tenant"}
    )
    assert again.status_code == 422
    html = client.get(f"/property/units/{unit}").get_data(as_text=True)
    assert "李先生" in html
    # the customer's page shows the unit
    page = client.get(f"/customers/{tenant_id}").get_data(as_text=True)
    assert f'data-unit="{unit}"' in page


def test_unit_page_lists_its_complaints(client, db, co, place, login_as):
    first = file(db, co, place)
    login_as("viewer", co)
    html = client.get(f"/property/units/{place['units'][0]}").get_data(as_text=True)
    assert f'data-ticket="{first}"' in html
    assert client.get("/property/units/999999").status_code == 404


# --- settings -----------------------------------------------------------------------------------


def test_settings_for_managers_only(client, co, place):
    login(client, place["agent"], co)
    assert client.get("/property/settings").status_code == 403


def test_settings_validation_and_save(client, db, co, place, login_as):
    login_as("manager", co)
    html = client.get("/property/settings").get_data(as_text=True)
    assert 'data-default="urgent"' in html and "240" in html  # DEFAULT_SLA shown
    bad = client.post(
        "/property/settings",
        data={
            "followup_window_hours": "0",
            "repeat_window_days": "x",
            "public_rate_limit": "lots",
            "photo_max_mb": "nan",
        },
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    for key in ("followup_window_hours", "repeat_window_days", "public_rate_limit", "photo_max_mb"):
        assert f'data-field="{key}"' in text
    ok = client.post(
        "/property/settings",
        data={
            "followup_window_hours": "24",
            "repeat_window_days": "14",
            "public_rate_limit": "10/hour",
            "photo_max_mb": "2",
        },
    )
    assert ok.status_code == 302
    with company_scope(co.id):
        s = svc.settings()
    assert s["followup_window_hours"] == 24 and s["repeat_window_days"] == 14
    assert s["public_rate_limit"] == "10/hour" and s["photo_max_bytes"] == 2 * 1024 * 1024


def test_settings_classifier_rules_and_sla(client, db, co, place, login_as):
    login_as("manager", co)
    r = client.post("/property/settings/classes", data={"level": "category", "name": ""})
    assert r.status_code == 422 and 'data-field="new-category"' in r.get_data(as_text=True)
    r = client.post(
        "/property/settings/classes",
        data={"level": "problem", "name": "水管爆裂", "parent_id": place["repairs"]},
    )
    assert r.status_code == 302
    with company_scope(co.id):
        burst = db.session.scalar(select(ComplaintClass).where(ComplaintClass.name == "水管爆裂"))
        assert burst.parent_id == place["repairs"] and burst.level == "problem"
        burst_id = burst.id
    client.post(f"/property/settings/classes/{burst_id}", data={"action": "deactivate"})
    client.post(f"/property/settings/classes/{burst_id}", data={"name": "爆管", "action": "rename"})
    with company_scope(co.id):
        burst = db.session.get(ComplaintClass, burst_id)
        assert (burst.name, burst.active) == ("爆管", False)
    r = client.post("/property/settings/rules", data={"category_id": place["repairs"]})
    assert r.status_code == 422 and 'data-field="rule-team_id"' in r.get_data(as_text=True)
    r = client.post(
        "/property/settings/rules", data={"estate_id": place["estate"], "team_id": place["team"]}
    )
    assert r.status_code == 302
    r = client.post(
        "/property/settings/sla",
        data={"priority": "high", "response_minutes": "60", "resolution_minutes": "30"},
    )
    assert r.status_code == 422
    assert 'data-field="sla-resolution_minutes"' in r.get_data(as_text=True)
    data = {
        "category_id": place["repairs"],
        "priority": "high",
        "response_minutes": "60",
        "resolution_minutes": "600",
    }
    assert client.post("/property/settings/sla", data=data).status_code == 302
    assert (
        client.post("/property/settings/sla", data={**data, "response_minutes": "90"}).status_code
        == 302
    )
    with company_scope(co.id):
        rules = db.session.scalars(select(SlaRule)).all()
        assert [(r.response_minutes, r.resolution_minutes) for r in rules] == [(90, 600)]
        assert db.session.scalar(select(func.count(DispatchRule.id))) == 2


# --- intake -------------------------------------------------------------------------------------


def test_intake_files_the_complaint_with_suggested_dispatch(client, db, co, place, login_as):
    login_as("service_agent", co)
    html = client.get(f"/property/complaints/new?customer_id={place['resident']}").get_data(
        as_text=True
    )
    assert f'<option value="{place["units"][0]}" selected>' in html
    assert "王女士" in client.get("/property/complaints/new?q=王女").get_data(as_text=True)
    bad = client.post(
        "/property/complaints/new",
        data={
            "subject": "x",
            "priority": "normal",
            "intake_channel": "phone",
            "type": "property_repair",
        },
    )
    assert bad.status_code == 422 and 'data-field="customer_id"' in bad.get_data(as_text=True)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    r = client.post(
        "/property/complaints/new",
        data={
            "customer_id": place["resident"],
            "unit_id": place["units"][0],
            "place_id": place["home"],
            "category_id": place["repairs"],
            "problem_id": place["leak"],
            "type": "property_repair",
            "priority": "normal",
            "intake_channel": "wechat",
            "subject": "卫生间漏水",
            "emergency": "1",
            "photo": (__import__("io").BytesIO(png), "leak.png"),
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 302
    ticket_id = int(r.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    with company_scope(co.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        complaint = db.session.get(Complaint, ticket_id)
        assert ticket.workflow == svc.WORKFLOW and ticket.priority == "urgent"
        assert ticket.intake_channel == "wechat"
        assert (ticket.team_id, ticket.assignee_id) == (place["team"], place["agent"].id)
        assert complaint.category_id == place["repairs"] and complaint.problem_id == place["leak"]
        assert complaint.emergency and complaint.unit_id == place["units"][0]
    page = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert "工程部" in page  # the flash names the suggestion
    assert 'id="dispatch-form"' in page
    photo = re.search(r"/property/photos/(\d+)", page).group(0)
    got = client.get(photo)
    assert got.status_code == 200 and got.mimetype == "image/png"


def test_intake_refuses_a_bad_photo_at_its_field(client, db, co, place, login_as):
    login_as("service_agent", co)
    r = client.post(
        "/property/complaints/new",
        data={
            "customer_id": place["resident"],
            "type": "property_complaint",
            "priority": "normal",
            "intake_channel": "phone",
            "subject": "噪音",
            "photo": (__import__("io").BytesIO(b"not an image"), "x.png"),
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 422 and 'data-field="photo"' in r.get_data(as_text=True)
    with company_scope(co.id):
        assert db.session.scalar(select(func.count(Complaint.ticket_id))) == 0


# --- the ticket panel: dispatch and resolve -----------------------------------------------------


def test_panel_dispatch_and_resolve(client, db, co, place, login_as):
    ticket_id = file(db, co, place)
    login_as("service_agent", co)
    page = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert 'id="dispatch-form"' in page and 'name="team_id"' in page
    assert f'<option value="{place["team"]}" selected>' in page  # prefilled from the rule
    assert "和园 3栋 1501" in page
    version = re.search(r'id="dispatch-form".*?name="version" value="(\d+)"', page, re.S).group(1)
    bad = client.post(
        f"/property/complaints/{ticket_id}/dispatch", data={"team_id": "", "version": version}
    )
    assert bad.status_code == 422 and 'data-field="team_id"' in bad.get_data(as_text=True)
    ok = client.post(
        f"/property/complaints/{ticket_id}/dispatch",
        data={"team_id": place["team"], "assignee_id": place["agent"].id, "version": version},
    )
    assert ok.status_code == 302
    with company_scope(co.id):
        assert db.session.get(ServiceTicket, ticket_id).state == "assigned"
    # a stale form
    stale = client.post(
        f"/property/complaints/{ticket_id}/dispatch",
        data={"team_id": place["team"], "version": version},
    )
    assert stale.status_code == 409
    page = client.get(f"/tickets/{ticket_id}").get_data(as_text=True)
    assert 'id="resolve-form"' in page and 'name="root_cause"' in page
    version = re.search(r'id="resolve-form".*?name="version" value="(\d+)"', page, re.S).group(1)
    refused = client.post(
        f"/property/complaints/{ticket_id}/resolve",
        data={"root_cause": "", "action": "换了阀门", "version": version},
    )
    assert refused.status_code == 422
    assert 'data-field="root_cause"' in refused.get_data(as_text=True)
    with company_scope(co.id):
        assert db.session.get(ServiceTicket, ticket_id).state == "assigned"
    done = client.post(
        f"/property/complaints/{ticket_id}/resolve",
        data={"root_cause": "equipment_ageing", "action": "换了阀门", "version": version},
    )
    assert done.status_code == 302
    with company_scope(co.id):
        assert db.session.get(ServiceTicket, ticket_id).state == "resolved"
        complaint = db.session.get(Complaint, ticket_id)
        assert (complaint.root_cause, complaint.action) == ("equipment_ageing", "换了阀门")


def test_panel_shows_repeat_and_classify_corrects(client, db, co, place, login_as):
    first = file(db, co, place)
    second = file(db, co, place, subject="又漏水了")
    login_as("service_agent", co)
    page = client.get(f"/tickets/{second}").get_data(as_text=True)
    assert f'href="/tickets/{first}"' in page
    assert "Repeat complaint" in page or "重复投诉" in page
    with company_scope(co.id):
        noise = db.session.scalar(
            select(ComplaintClass.id).where(
                ComplaintClass.level == "category", ComplaintClass.code == "noise"
            )
        )
    bad = client.post(
        f"/property/complaints/{second}/classify",
        data={"category_id": noise, "problem_id": place["leak"]},
    )
    assert bad.status_code == 422 and 'data-field="problem_id"' in bad.get_data(as_text=True)
    ok = client.post(
        f"/property/complaints/{second}/classify",
        data={"category_id": noise, "unit_id": place["units"][0], "paid": "1"},
    )
    assert ok.status_code == 302
    with company_scope(co.id):
        c = db.session.get(Complaint, second)
        assert c.category_id == noise and c.paid and c.problem_id is None


def test_panel_not_on_other_tickets(client, db, co, place, login_as):
    with company_scope(co.id):
        t = ServiceTicket(
            customer_id=place["resident"],
            type="inquiry",
            subject="问路",
            priority="normal",
            intake_channel="phone",
        )
        db.session.add(t)
        db.session.commit()
        tid = t.id
    login_as("service_agent", co)
    page = client.get(f"/tickets/{tid}").get_data(as_text=True)
    assert 'id="dispatch-form"' not in page
    assert client.post(f"/property/complaints/{tid}/dispatch", data={}).status_code == 404


# --- the list -----------------------------------------------------------------------------------


def test_list_filters(client, db, co, place, login_as):
    first = file(db, co, place)
    repeat = file(db, co, place, subject="又漏水了")
    urgent = file(
        db,
        co,
        place,
        subject="电梯困人",
        unit_id=place["units"][1],
        emergency=True,
        category_id=None,
        problem_id=None,
    )
    with company_scope(co.id):
        # make the first one's resolution clock breached
        for ob in db.session.scalars(select(Obligation).where(Obligation.subject_id == first)):
            past = utcnow() - timedelta(days=30)
            ob.warn_at, ob.due_at, ob.escalate_at = past, past, past + timedelta(days=60)
        db.session.commit()
    login_as("viewer", co)

    def ids(query):
        html = client.get(f"/property/complaints?{query}").get_data(as_text=True)
        return {int(x) for x in re.findall(r'<tr data-ticket="(\d+)"', html)}

    assert ids("") == {first, repeat, urgent}
    assert ids("repeat=1") == {repeat}
    assert ids("emergency=1") == {urgent}
    assert ids(f"category={place['repairs']}") == {first, repeat}
    assert ids(f"estate={place['estate']}") == {first, repeat, urgent}
    assert ids(f"building={place['building']}&state=new") == {first, repeat, urgent}
    assert ids("state=closed") == set()
    assert ids("overdue=1") == {first}
    assert client.get("/property/complaints?state=nope").status_code == 400
    assert client.get("/property/complaints?estate=x").status_code == 400
    assert client.get("/property/complaints?after=zzz").status_code == 400


def test_list_pages_and_query_count(app, client, db, co, place, login_as):
    for n in range(7):
        file(
            db,
            co,
            place,
            subject=f"投诉{n}",
            unit_id=place["units"][1],
            category_id=None,
            problem_id=None,
        )
    login_as("viewer", co)
    app.config["LIST_PAGE_SIZE"] = 2
    with QueryCounter(db.engine) as small:
        html = client.get("/property/complaints").get_data(as_text=True)
    nxt = re.search(r'href="(/property/complaints\?after=[^"]+)"', html).group(1)
    page2 = client.get(nxt.replace("&amp;", "&")).get_data(as_text=True)
    first_ids = set(re.findall(r'<tr data-ticket="(\d+)"', html))
    second_ids = set(re.findall(r'<tr data-ticket="(\d+)"', page2))
    assert len(first_ids) == 2 and len(second_ids) == 2 and not first_ids & second_ids
    app.config["LIST_PAGE_SIZE"] = 50
    with QueryCounter(db.engine) as big:
        client.get("/property/complaints")
    assert big.count == small.count
