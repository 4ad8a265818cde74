"""Marketing plugin: segments over the customer filters, consent, campaigns to the outbox
(once per customer), triggers, the points ledger and its expiry, level moves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core import consent
from core import fields as ext
from core.extend import company_scope
from core.models import Customer, Tag
from plugins.marketing import campaigns, loyalty, segments
from plugins.marketing.models import LevelMove, Message, PointsEntry, Reward
from plugins.sales.models import Order

DAY = date(2026, 6, 15)


def _customers(db, n=4):
    rows = [
        Customer(
            name=f"会员{i}",
            phone=f"1380000000{i}",
            email=f"m{i}@example.com",
            kind="consumer",
            status="existing",
        )
        for i in range(n)
    ]
    db.session.add_all(rows)
    db.session.flush()
    return rows


def _fields():
    from core.customers import extension_fields

    return extension_fields()


@pytest.fixture
def shop(db, company):
    co = company(plugins=["marketing"])
    with company_scope(co.id):
        yield co


def test_enabling_marketing_enables_sales_and_seeds_levels(db, shop):
    from core.plugins import current

    assert {"sales", "marketing"} <= set(current().enabled(shop.id))
    assert [lv.key for lv in loyalty.levels()] == ["regular", "silver", "gold", "platinum"]
    loyalty.seed()  # idempotent
    assert len(loyalty.levels()) == 4


def test_a_segment_reuses_the_customer_list_filters(db, shop):
    a, b, c, d = _customers(db)
    b.value_tier, c.lifecycle_stage = "A", "decline"
    tag = Tag(name="VIP")
    db.session.add(tag)
    db.session.flush()
    from core.customers import set_tags

    set_tags(d, ["VIP"])
    ext.save(_fields(), a.id, {"marketing__member_level": "gold"})
    seg = segments.save_segment("金卡", [["marketing__member_level", "gold"]])
    assert segments.count(segments.customer_ids(seg)) == 1
    assert segments.count(segments.filter_query([["value_tier", "A"]])[0]) == 1
    assert segments.count(segments.filter_query([["lifecycle_stage", "decline"]])[0]) == 1
    assert segments.count(segments.filter_query([["tag", str(tag.id)]])[0]) == 1
    assert segments.count(segments.filter_query([])[0]) == 4
    with pytest.raises(segments.SegmentRefused) as refused:
        segments.save_segment("坏的", [["value_tier", "nonsense"]])
    assert "value_tier" in refused.value.errors


def test_a_segment_by_last_purchase_and_rfm_segment(db, shop):
    from plugins.sales.models import CustomerValue

    a, b, *_ = _customers(db)
    db.session.add_all(
        [
            CustomerValue(customer_id=a.id, last_order_on=date(2026, 5, 1), segment="champions"),
            CustomerValue(customer_id=b.id, last_order_on=date(2025, 1, 1), segment="at_risk"),
        ]
    )
    db.session.flush()
    recent, errors = segments.filter_query([["last_purchase__min", "2026-01-01"]])
    assert not errors and segments.preview(recent) == [a]
    at_risk, _errors = segments.filter_query([["rfm_segment", "at_risk"]])
    assert segments.preview(at_risk) == [b]
    _ids, errors = segments.filter_query([["last_purchase__max", "yesterday"]])
    assert "last_purchase__max" in errors


def test_a_static_list_from_an_import(db, shop):
    a, b, *_ = _customers(db)
    a.code = "C-001"
    seg = segments.save_segment("展会名单", kind="static")
    added, missing = segments.import_members(seg, ["C-001", b.phone, "nobody", "C-001"])
    assert (added, missing) == (2, ["nobody"])
    assert segments.count(segments.customer_ids(seg)) == 2


def _consent_all(customers, channel="sms", purpose="marketing"):
    for c in customers:
        consent.record(c.id, channel, purpose, True, "门店登记表")


def test_a_campaign_never_reaches_a_customer_without_consent_for_its_channel(db, shop):
    a, b, c, d = _customers(db)
    consent.record(a.id, "sms", "marketing", True, "门店登记表")
    consent.record(b.id, "email", "marketing", True, "官网注册")  # other channel
    consent.record(c.id, "sms", "care", True, "电话")  # other purpose
    consent.record(d.id, "sms", "marketing", True, "门店登记表")
    consent.record(d.id, "sms", "marketing", False, "客户来电撤回")  # withdrawn
    campaign = campaigns.create_campaign("会员日", body="{name}您好，会员日九折", channel="sms")
    assert campaigns.reach(campaign) == {"segment": 4, "reachable": 1}
    assert campaigns.launch(campaign) == 1
    messages = db.session.scalars(select(Message)).all()
    assert [(m.customer_id, m.address, m.body) for m in messages] == [
        (a.id, a.phone, "会员0您好，会员日九折")
    ]
    assert campaign.state == "sent"


def test_running_the_same_campaign_twice_sends_once(db, shop):
    customers = _customers(db)
    _consent_all(customers)
    campaign = campaigns.create_campaign("春季促销", body="春季促销", channel="sms")
    assert campaigns.launch(campaign) == 4
    assert campaigns.send(campaign) == 0
    with pytest.raises(campaigns.CampaignRefused):
        campaigns.launch(campaign)
    assert db.session.scalar(select(func.count(Message.id))) == 4
    # The database itself refuses a second message to one customer in one campaign.
    first = db.session.scalars(select(Message)).first()
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.add(
            Message(
                campaign_id=campaign.id,
                customer_id=first.customer_id,
                channel="sms",
                address="x",
                body="again",
                sent_on=DAY,
                convert_until=DAY,
            )
        )
        db.session.flush()


def test_a_campaign_to_a_segment_skips_customers_without_an_address(db, shop):
    a, b, *_ = _customers(db)
    b.email = None
    _consent_all([a, b], "email")
    seg = segments.save_segment("两位", [["q", "会员"]])
    campaign = campaigns.create_campaign(
        "邮件", body="你好", subject="{name}的专属优惠", channel="email", segment=seg
    )
    assert campaigns.launch(campaign) == 1
    message = db.session.scalars(select(Message)).one()
    assert message.subject == "会员0的专属优惠"


def test_unsubscribe_withdraws_the_consent_and_opens_are_counted(app, db, shop):
    (a,) = _customers(db, 1)
    _consent_all([a])
    campaign = campaigns.create_campaign("活动", body="hi", channel="sms")
    campaigns.launch(campaign)
    message = db.session.scalars(select(Message)).one()
    with app.test_request_context("/"):
        token = campaigns.token_for(message.id)
        assert campaigns.message_for_token(token) == message
        assert campaigns.message_for_token(token[:-2] + "xx") is None
        assert "/p/" in campaigns.full_text(message)
    assert campaigns.unsubscribe(message) is True
    assert consent.of_customer(a.id)[("sms", "marketing")].granted is False
    campaigns.mark(message, "opened")
    assert campaigns.campaign_counts([campaign.id])[campaign.id]["opened"] == 1


def test_a_sender_with_a_gateway_delivers_and_without_one_keeps_the_outbox(app, db, shop):
    customers = _customers(db, 2)
    _consent_all(customers)
    campaign = campaigns.create_campaign("活动", body="hi", channel="sms")
    campaigns.launch(campaign)
    from plugins.marketing import senders

    assert senders.deliver() == 0  # no SMS gateway: the messages wait in the outbox
    assert set(db.session.scalars(select(Message.state))) == {"queued"}
    got = []
    app.config["MARKETING_GATEWAYS"] = {"sms": lambda to, subject, text: got.append(to) or True}
    try:
        with app.test_request_context("/"):
            assert senders.deliver() == 2
    finally:
        app.config.pop("MARKETING_GATEWAYS")
    assert sorted(got) == sorted(c.phone for c in customers)
    assert set(db.session.scalars(select(Message.state))) == {"sent"}


def test_triggered_care_campaigns(db, shop):
    a, b, c, d = _customers(db)
    _consent_all([a, b, c, d], "sms", "care")
    fields = _fields()
    ext.save(fields, a.id, {"marketing__birthday": date(1980, 6, 15)})
    ext.save(fields, b.id, {"marketing__birthday": date(1980, 6, 16)})
    db.session.add_all(
        [
            Order(number="A1", customer_id=c.id, ordered_on=date(2024, 6, 15), amount=100),
            Order(number="A2", customer_id=c.id, ordered_on=date(2025, 1, 1), amount=100),
            Order(number="A3", customer_id=b.id, ordered_on=DAY - timedelta(days=7), amount=50),
        ]
    )
    d.lifecycle_stage = "decline"
    db.session.flush()
    made = {
        t: campaigns.create_campaign(
            t, body="关怀", channel="sms", purpose="care", trigger=t, days=7
        )
        for t in ("birthday", "anniversary", "after_purchase", "decline")
    }
    for campaign in made.values():
        campaigns.launch(campaign)
        assert campaign.state == "active"
    assert campaigns.run_triggers(DAY) == 4
    assert campaigns.run_triggers(DAY) == 0  # once per occasion
    got = dict(db.session.execute(select(Message.campaign_id, Message.customer_id)).all())
    assert got == {
        made["birthday"].id: a.id,
        made["anniversary"].id: c.id,
        made["after_purchase"].id: b.id,
        made["decline"].id: d.id,
    }
    # Next year's birthday is a new occasion; the win-back is not sent again.
    assert campaigns.run_triggers(date(2027, 6, 15)) == 2


def test_a_scheduled_campaign_waits_for_its_time(db, shop):
    customers = _customers(db, 2)
    _consent_all(customers)
    when = datetime(2026, 6, 20, 1, 0, tzinfo=UTC)
    campaign = campaigns.create_campaign(
        "预约", body="hi", channel="sms", trigger="scheduled", scheduled_at=when
    )
    campaigns.launch(campaign)
    assert campaigns.run_scheduled(at=when - timedelta(minutes=1)) == 0
    assert campaigns.run_scheduled(at=when) == 2
    assert campaign.state == "sent"


# -- points ------------------------------------------------------------------------------------


def _order(customer, day, amount, number):
    row = Order(number=number, customer_id=customer.id, ordered_on=day, amount=Decimal(amount))
    db_session().add(row)
    db_session().flush()
    return row


def db_session():
    from core.extend import db

    return db.session


def _ledger_sum(customer_id):
    return loyalty.balance(customer_id)


def test_points_are_earned_once_per_order_by_the_rule(db, shop):
    member, guest = _customers(db, 2)
    loyalty.enrol(member, at=DAY)
    _order(member, DAY - timedelta(days=3), "199.90", "P1")
    _order(guest, DAY - timedelta(days=3), "500", "P2")  # not a member: no points
    _order(member, DAY - timedelta(days=400), "800", "P3")  # older than the expiry period
    assert loyalty.award_points(DAY) == 1
    assert loyalty.award_points(DAY) == 0
    assert loyalty.balance(member.id) == 199  # floor(199.90 × 1 × 1)
    assert loyalty.balance(guest.id) == 0


def test_points_expire_on_schedule_and_the_ledger_balances(db, shop):
    (m,) = _customers(db, 1)
    loyalty.enrol(m, at=DAY)
    start = date(2025, 1, 10)
    _order(m, start, "100", "E1")
    _order(m, start + timedelta(days=200), "50", "E2")
    loyalty.award_points(start + timedelta(days=200))
    reward = Reward(name="保温杯", points=30)
    db.session.add(reward)
    db.session.flush()
    loyalty.redeem(m.id, reward, day=start + timedelta(days=250))
    assert loyalty.balance(m.id) == 120
    # A day before the first points are a year old: nothing expires.
    assert loyalty.expire_points(start + timedelta(days=364)) == 0
    # On the day: the 100 earned first, less the 30 redeemed from them, expire.
    assert loyalty.expire_points(start + timedelta(days=365)) == 1
    assert loyalty.expire_points(start + timedelta(days=365)) == 0  # idempotent
    assert loyalty.balance(m.id) == 50
    assert loyalty.expire_points(start + timedelta(days=565)) == 1
    stmt = loyalty.statement(m.id)
    assert stmt.totals == {"earn": 150, "redeem": -30, "expire": -120}
    assert stmt.balance == 0 == _ledger_sum(m.id)
    assert all(e.points < 0 for e in stmt.rows if e.kind != "earn")


def test_redeeming_more_than_the_balance_is_refused(db, shop):
    (m,) = _customers(db, 1)
    loyalty.enrol(m)
    reward = Reward(name="体检套餐", points=5000)
    db.session.add(reward)
    db.session.flush()
    with pytest.raises(loyalty.PointsRefused):
        loyalty.redeem(m.id, reward)
    assert db.session.scalar(select(func.count(PointsEntry.id))) == 0


def test_a_level_change_follows_the_rule(db, shop):
    up, down, stay = _customers(db, 3)
    for c in (up, down, stay):
        loyalty.enrol(c, at=DAY - timedelta(days=500))
    ext.save(_fields(), down.id, {"marketing__member_level": "gold"})
    _order(up, DAY - timedelta(days=10), "1200", "L1")  # 1200 points: silver (1000)
    _order(
        down, DAY - timedelta(days=30), "300", "L2"
    )  # 450 (gold earns 1.5×), gold needs 5000: regular
    _order(stay, DAY - timedelta(days=30), "999", "L3")  # below silver
    loyalty.award_points(DAY)
    assert loyalty.move_levels(DAY) == 2
    assert loyalty.move_levels(DAY) == 0
    assert (loyalty.level_of(up.id), loyalty.level_of(down.id), loyalty.level_of(stay.id)) == (
        "silver",
        "regular",
        "regular",
    )
    moves = db.session.execute(
        select(LevelMove.customer_id, LevelMove.from_level, LevelMove.to_level, LevelMove.points)
        .where(LevelMove.moved_on == DAY)
        .order_by(LevelMove.customer_id)
    ).all()
    assert moves == [(up.id, "regular", "silver", 1200), (down.id, "gold", "regular", 450)]
    # A year on, the points left the window: silver falls back to regular.
    assert loyalty.move_levels(DAY + timedelta(days=400)) == 1
    assert loyalty.level_of(up.id) == "regular"


def test_levels_multiply_points(db, shop):
    (m,) = _customers(db, 1)
    loyalty.enrol(m)
    ext.save(_fields(), m.id, {"marketing__member_level": "gold"})
    _order(m, DAY, "100", "X1")
    loyalty.award_points(DAY)
    assert loyalty.balance(m.id) == 150


def test_another_company_sees_none_of_it(db, company, shop):
    customers = _customers(db, 2)
    _consent_all(customers)
    campaigns.launch(campaigns.create_campaign("活动", body="hi", channel="sms"))
    other = company(plugins=["marketing"])
    with company_scope(other.id):
        assert db.session.scalar(select(func.count(Message.id))) == 0
        assert segments.count(segments.filter_query([])[0]) == 0
