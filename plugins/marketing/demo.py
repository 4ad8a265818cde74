"""Demo rows.

Every demo company with the plugin: birthdays on the customers, consent for most of them
(source 门店登记表 / 官网注册 / 电话确认, some withdrawn), segments, and the loyalty program.

- **Pharma** (``pharma`` enabled: retail members, 1 point per 100 yuan): about two customers
  in three are members;
  their orders of the last year earn points, a few redeem rewards, old points expire, the levels
  job places them; a promotion sent to a segment (会员日), a birthday greeting and a medication
  follow-up seven days after a purchase (用药回访) run as care campaigns.
- **Insurance** (care campaigns): birthday greetings by WeChat, the anniversary of the first
  policy, and a win-back for customers in decline; the triggers are run for the last 30 days so
  the outbox and the reports show them.

No gateway is configured in the demo: part of the messages are marked delivered, opened and
replied as a gateway would report them, so the campaign report has numbers.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from core.extend import consent, db, utcnow
from core.models import Customer
from core.web.context import enabled_plugins
from plugins.marketing import campaigns, loyalty, segments
from plugins.marketing.models import Message, Reward

SOURCES = ("门店登记表", "官网注册", "电话确认", "会员申请表")
REWARDS = (("保温杯", 800), ("家用血压计", 5000), ("体检套餐", 12000), ("20元代金券", 300))


def seed(company: Any, fake: Any) -> None:
    from plugins import demo_values

    demo_values(
        "customer",
        {
            "marketing__birthday": lambda rng: (
                date(1960, 1, 1) + timedelta(days=rng.randint(0, 16000))
            ),
        },
    )
    rng = random.Random(f"marketing-{company.code}")
    loyalty.seed(company)
    ids = list(db.session.scalars(select(Customer.id).order_by(Customer.id)))
    _consents(ids, rng)
    if "pharma" in enabled_plugins():
        _pharma(ids, rng)
    else:
        _care(rng)
    _delivery(rng)
    db.session.flush()


def _consents(ids: list[int], rng: random.Random) -> None:
    for cid in ids:
        if rng.random() < 0.15:
            continue  # never asked: no consent
        for channel in ("sms", "wechat", "email"):
            for purpose in ("marketing", "care", "loyalty"):
                if rng.random() < (0.8 if purpose != "marketing" else 0.6):
                    consent.record(cid, channel, purpose, True, rng.choice(SOURCES))
        if rng.random() < 0.1:
            consent.record(cid, "sms", "marketing", False, "客户来电撤回")


def _pharma(ids: list[int], rng: random.Random) -> None:
    today = loyalty.today()
    # The demo's pharma orders are large (hospital and pharmacy purchases): 1 point per 100 yuan.
    loyalty.program().points_per_yuan = Decimal("0.01")
    for cid in ids:
        if rng.random() < 0.66:
            loyalty.enrol(cid, at=today - timedelta(days=rng.randint(30, 700)))
    rewards = [Reward(name=n, points=p) for n, p in REWARDS]
    db.session.add_all(rewards)
    db.session.flush()
    # The daily job, as it would have run: a year ago (old points, to expire), then today.
    loyalty.award_points(today - timedelta(days=300))
    loyalty.award_points(today)
    for cid in rng.sample(ids, min(8, len(ids))):
        if loyalty.level_of(cid):
            cheap = [r for r in rewards if r.points <= loyalty.balance(cid)]
            if cheap:
                loyalty.redeem(
                    cid, rng.choice(cheap), day=today - timedelta(days=rng.randint(1, 60))
                )
    loyalty.expire_points(today)
    loyalty.move_levels(today)
    gold = segments.save_segment(
        "金卡及以上会员",
        [["marketing__member_level", "gold"], ["marketing__member_level", "platinum"]],
    )
    segments.save_segment("衰退期客户", [["lifecycle_stage", "decline"]])
    segments.save_segment(
        "近半年未购买", [["last_purchase__max", (today - timedelta(days=180)).isoformat()]]
    )
    promo = campaigns.create_campaign(
        "会员日·金卡专享九折",
        segment=gold,
        channel="sms",
        purpose="marketing",
        body="尊敬的{name}，本周六会员日金卡及以上会员全场九折，积分双倍。",
    )
    campaigns.launch(promo, at=utcnow() - timedelta(days=20))
    birthday = campaigns.create_campaign(
        "会员生日祝福",
        channel="wechat",
        purpose="care",
        trigger="birthday",
        body="{name}，祝您生日快乐！生日当月到店可领取健康礼包一份。",
    )
    follow = campaigns.create_campaign(
        "用药回访（购药后7天）",
        channel="sms",
        purpose="care",
        trigger="after_purchase",
        days=7,
        body="{name}您好，您上周购买的药品使用情况如何？如有不适请及时咨询药师。",
    )
    for c in (birthday, follow):
        campaigns.launch(c)
    _run_days(30)


def _care(rng: random.Random) -> None:
    birthday = campaigns.create_campaign(
        "客户生日关怀",
        channel="wechat",
        purpose="care",
        trigger="birthday",
        body="{name}您好，鸿信人寿祝您生日快乐，愿您和家人平安健康！",
    )
    anniversary = campaigns.create_campaign(
        "投保周年感恩",
        channel="sms",
        purpose="care",
        trigger="anniversary",
        body="{name}您好，感谢您与鸿信人寿相伴又一年，您的保障顾问将与您联系做年度保单检视。",
    )
    winback = campaigns.create_campaign(
        "老客户回访关怀",
        channel="sms",
        purpose="care",
        trigger="decline",
        body="{name}您好，好久没有联系，您的保障是否仍然适合家庭现状？欢迎预约免费保单检视。",
    )
    for c in (birthday, anniversary, winback):
        campaigns.launch(c)
    _run_days(30)


def _run_days(days: int) -> None:
    today = loyalty.today()
    for back in range(days, -1, -1):
        campaigns.run_triggers(today - timedelta(days=back))


def _delivery(rng: random.Random) -> None:
    """What a gateway would have reported: most delivered, some opened, a few replied."""
    ids = list(db.session.scalars(select(Message.id).order_by(Message.id)))
    now = utcnow()
    for mid in ids:
        roll = rng.random()
        values: dict[str, Any] = {}
        if roll < 0.9:
            values = {"state": "sent", "delivered_at": now}
            if roll < 0.5:
                values["opened_at"] = now
            if roll < 0.12:
                values["replied_at"] = now
        if values:
            db.session.execute(
                update(Message).where(Message.id == mid).values(**values),
                execution_options={"synchronize_session": False},
            )
