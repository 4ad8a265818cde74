"""Marketing pages: segment builder with live counts, campaigns, outbox, unsubscribe link,
membership panel and program page, reports; who may do what."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core import consent
from core.extend import company_scope
from core.models import Consent, Customer
from core.testing import QueryCounter
from plugins.marketing import campaigns, loyalty
from plugins.marketing.models import Campaign, Message, PointsEntry, Reward, Segment


@pytest.fixture
def shop(app, db, company):
    co = company(plugins=["marketing"])
    with company_scope(co.id):
        for i in range(6):
            c = Customer(
                name=f"顾客{i}",
                phone=f"1390000000{i}",
                kind="consumer",
                lifecycle_stage="decline" if i < 4 else "growth",
            )
            db.session.add(c)
            db.session.flush()
            if i % 2 == 0:
                consent.record(c.id, "sms", "marketing", True, "门店登记")
        db.session.commit()
    return co


def test_the_builder_counts_and_saves_a_segment(client, login_as, shop, db):
    login_as("manager", shop)
    page = client.get("/marketing/segments/new?lifecycle_stage=decline")
    assert page.status_code == 200
    assert 'data-count="4"' in page.text
    assert client.get("/marketing/segments/count?lifecycle_stage=decline").json == {
        "count": 4,
        "errors": {},
    }
    bad = client.get("/marketing/segments/count?lifecycle_stage=nope").json
    assert bad["count"] == 0 and "lifecycle_stage" in bad["errors"]
    saved = client.post(
        "/marketing/segments/new",
        data={"name": "衰退期客户", "seg_kind": "dynamic", "lifecycle_stage": "decline"},
    )
    assert saved.status_code == 302
    with company_scope(shop.id):
        seg = db.session.scalars(select(Segment)).one()
        assert seg.filters == [["lifecycle_stage", "decline"]]
    detail = client.get(f"/marketing/segments/{seg.id}")
    assert 'data-count="4"' in detail.text
    assert "衰退期" in detail.text or "Decline" in detail.text
    listing = client.get("/marketing/segments")
    assert "衰退期客户" in listing.text


def test_a_campaign_from_the_form_lands_in_the_outbox(client, login_as, shop, db):
    login_as("manager", shop)
    client.post(
        "/marketing/segments/new",
        data={"name": "衰退期", "seg_kind": "dynamic", "lifecycle_stage": "decline"},
    )
    with company_scope(shop.id):
        seg_id = db.session.scalar(select(Segment.id))
    made = client.post(
        "/marketing/campaigns/new",
        data={
            "name": "回归礼",
            "segment_id": str(seg_id),
            "channel": "sms",
            "purpose": "marketing",
            "trigger": "manual",
            "body": "{name}，好久不见，送您20元券",
            "conversion_days": "30",
            "launch": "1",
        },
    )
    assert made.status_code == 302
    with company_scope(shop.id):
        campaign = db.session.scalars(select(Campaign)).one()
        assert campaign.state == "sent"
        # four in decline, two of them consented to SMS marketing
        assert db.session.scalar(select(func.count(Message.id))) == 2
    page = client.get(f"/marketing/campaigns/{campaign.id}")
    assert page.status_code == 200
    outbox = client.get("/marketing/outbox")
    assert outbox.text.count("data-message=") == 2
    assert "好久不见" in outbox.text and "/p/" in outbox.text
    assert client.get("/marketing/campaigns").status_code == 200
    # a refused form says why
    bad = client.post("/marketing/campaigns/new", data={"name": "", "body": "", "trigger": "x"})
    assert bad.status_code == 422


def test_the_outbox_query_count_does_not_grow_with_its_rows(client, login_as, shop, db, app):
    login_as("manager", shop)
    with company_scope(shop.id):
        c = campaigns.create_campaign("活动", body="hi", channel="sms")
        campaigns.launch(c)
        db.session.commit()
    client.get("/marketing/outbox")
    with QueryCounter(db.engine) as few:
        client.get("/marketing/outbox")
    with company_scope(shop.id):
        for cust in db.session.scalars(select(Customer)):
            consent.record(cust.id, "sms", "care", True, "电话")
        c2 = campaigns.create_campaign("关怀", body="hi", channel="sms", purpose="care")
        campaigns.launch(c2)
        db.session.commit()
    assert client.get("/marketing/outbox").text.count("data-message=") == 9
    with QueryCounter(db.engine) as many:
        client.get("/marketing/outbox")
    assert many.count == few.count


def test_the_unsubscribe_link_withdraws_consent(client, shop, db, app):
    with company_scope(shop.id):
        c = campaigns.create_campaign("活动", body="hi", channel="sms")
        campaigns.launch(c)
        db.session.commit()
        message = db.session.scalars(select(Message)).first()
        with app.test_request_context("/"):
            token = campaigns.token_for(message.id)
    app.config["WTF_CSRF_ENABLED"] = False
    url = f"/p/{shop.code}/marketing/u/{token}"
    assert client.get(url).status_code == 200
    assert client.get(f"/p/{shop.code}/marketing/u/{message.id}-forged").status_code == 404
    done = client.post(url)
    assert done.status_code == 200
    with company_scope(shop.id):
        row = db.session.scalars(
            select(Consent).where(Consent.customer_id == message.customer_id)
        ).one()
        assert row.granted is False and row.source.startswith("unsubscribe link")
    pixel = client.get(f"/p/{shop.code}/marketing/o/{token}.gif")
    assert pixel.status_code == 200 and pixel.mimetype == "image/gif"


def test_membership_panel_and_program(client, login_as, shop, db):
    login_as("manager", shop)
    with company_scope(shop.id):
        cust = db.session.scalars(select(Customer)).first()
        db.session.add(Reward(name="保温杯", points=10))
        db.session.commit()
        reward_id = db.session.scalar(select(Reward.id))
    page = client.get(f"/customers/{cust.id}")
    assert "marketing-panel" in page.text
    assert client.post(f"/marketing/customers/{cust.id}/enrol").status_code == 302
    client.post(f"/marketing/customers/{cust.id}/adjust", data={"points": "25", "note": "开卡礼"})
    client.post(f"/marketing/customers/{cust.id}/redeem", data={"reward_id": str(reward_id)})
    client.post(
        f"/customers/{cust.id}/consent",
        data={"channel": "email", "purpose": "care", "granted": "1", "source": "会员申请表"},
    )
    with company_scope(shop.id):
        assert loyalty.balance(cust.id) == 15
        assert db.session.scalar(select(func.count(PointsEntry.id))) == 2
        assert consent.of_customer(cust.id)[("email", "care")].granted
    page = client.get(f"/customers/{cust.id}")
    assert 'class="points-balance">15<' in page.text
    loyalty_page = client.get("/marketing/loyalty")
    assert loyalty_page.status_code == 200 and "保温杯" in loyalty_page.text
    assert (
        client.post(
            "/marketing/loyalty/program",
            data={"points_per_yuan": "2", "expiry_days": "730", "level_window_days": "365"},
        ).status_code
        == 302
    )
    with company_scope(shop.id):
        assert loyalty.program().expiry_days == 730


@pytest.mark.parametrize(
    "name",
    ["marketing_campaigns", "marketing_points", "marketing_members", "marketing_level_moves"],
)
def test_reports_render(client, login_as, shop, name, db):
    login_as("manager", shop)
    assert client.get(f"/reports/{name}").status_code == 200
    with company_scope(shop.id):
        campaigns.launch(campaigns.create_campaign("活动", body="hi", channel="sms"))
        cust = db.session.scalars(select(Customer)).first()
        loyalty.enrol(cust)
        loyalty.adjust(cust.id, 2000, "补录")
        db.session.add(
            PointsEntry(customer_id=cust.id, kind="earn", points=1500, booked_on=loyalty.today())
        )
        loyalty.move_levels()
        db.session.commit()
    page = client.get(f"/reports/{name}")
    assert page.status_code == 200
    assert {
        "marketing_campaigns": "活动",
        "marketing_points": "3,500",
        "marketing_members": "银卡会员",
        "marketing_level_moves": "普通会员 → 银卡会员",
    }[name] in page.text


def test_who_may_do_what(client, login_as, shop, company):
    login_as("sales_rep", shop)
    assert client.get("/marketing/campaigns").status_code == 403
    login_as("viewer", shop)
    assert client.get("/marketing/campaigns").status_code == 200
    assert client.get("/marketing/campaigns/new").status_code == 403
    login_as("admin", company())
    assert client.get("/marketing/campaigns").status_code == 404


def test_the_segment_list_counts_in_one_statement(client, login_as, shop, db):
    login_as("manager", shop)
    with company_scope(shop.id):
        from plugins.marketing import segments

        segments.save_segment("一", [["lifecycle_stage", "decline"]])
        db.session.commit()
    client.get("/marketing/segments")
    with QueryCounter(db.engine) as few:
        client.get("/marketing/segments")
    with company_scope(shop.id):
        for i in range(5):
            segments.save_segment(f"分群{i}", [["q", f"顾客{i}"]])
        segments.save_segment("名单", kind="static")
        db.session.commit()
    client.get("/marketing/segments")
    with QueryCounter(db.engine) as many:
        page = client.get("/marketing/segments")
    assert many.count == few.count
    assert page.text.count('class="num count">1<') == 5


def test_the_jobs_award_expire_move_and_send(app, db, shop):
    import plugins.marketing as plugin

    names = {job.name for job in plugin.guanxi_jobs()}
    assert names == {"marketing.dispatch", "marketing.care", "marketing.loyalty"}
    got: list[str] = []
    with company_scope(shop.id):  # as ``guanxi jobs run-due`` runs them: no request
        campaigns.launch(
            campaigns.create_campaign("衰退挽回", body="hi", channel="sms", trigger="decline")
        )
        assert plugin._care(shop) == "care messages 2"
        assert plugin._dispatch(shop) == "scheduled 0, delivered 0"
        app.config["MARKETING_GATEWAYS"] = {"sms": lambda to, subject, text: got.append(text)}
        try:
            assert plugin._dispatch(shop) == "scheduled 0, delivered 0"  # the gateway said no
            assert set(db.session.scalars(select(Message.state))) == {"failed"}
        finally:
            app.config.pop("MARKETING_GATEWAYS")
        assert plugin._loyalty(shop) == "awarded 0, expired 0, moved 0"
    assert len(got) == 2 and all(f"/p/{shop.code}/marketing/u/" in t for t in got)


def test_a_sales_rep_records_consent_for_a_customer_they_see(client, login_as, shop, db):
    rep = login_as("sales_rep", shop)
    with company_scope(shop.id):
        mine, other = db.session.scalars(select(Customer).limit(2)).all()
        mine.owner_id = rep.id
        db.session.commit()
    data = {"channel": "wechat", "purpose": "care", "granted": "1", "source": "电话确认"}
    assert client.post(f"/customers/{mine.id}/consent", data=data).status_code == 302
    assert client.post(f"/customers/{other.id}/consent", data=data).status_code == 403
    assert client.post(f"/marketing/customers/{mine.id}/enrol").status_code == 403
    with company_scope(shop.id):
        assert consent.of_customer(mine.id)[("wechat", "care")].source == "电话确认"
        assert ("wechat", "care") not in consent.of_customer(other.id)
