"""Demo rows: a generic after-service questionnaire (售后服务满意度回访), its ticket_closed
campaign running since six months ago, the closed demo tickets' invitations, and six months of
earlier invitations with answers (about three in four answered, some by link, some entered on
the phone), the ratings improving month by month, and about one customer in ten who refused
surveys (consent), so the campaign page, its trend chart and the
reports have something to show."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from core.extend import consent, db, utcnow
from core.models import Customer, Membership, ServiceTicket, User
from plugins.surveys import campaigns, questionnaires
from plugins.surveys.models import Invitation

DIMENSIONS = (
    ("service_quality", "Service quality", "服务质量"),
    ("response_speed", "Response speed", "响应速度"),
    ("problem_solving", "Problem solving", "问题解决能力"),
    ("attitude", "Staff attitude", "服务态度"),
)
SECTIONS = (
    {
        "title": "服务评价",
        "questions": [
            {
                "text": "您对本次服务的整体质量满意吗？",
                "kind": "rating",
                "dimension": "service_quality",
            },
            {"text": "我们响应您的速度如何？", "kind": "rating", "dimension": "response_speed"},
            {"text": "您的问题是否得到了解决？", "kind": "rating", "dimension": "problem_solving"},
            {"text": "服务人员的态度如何？", "kind": "rating", "dimension": "attitude"},
        ],
    },
    {
        "title": "总体评价",
        "questions": [
            {"text": "您有多大可能向亲友推荐我们？", "kind": "nps"},
            {
                "text": "您是通过什么方式联系我们的？",
                "kind": "single",
                "options": ["电话", "微信", "网站", "前台"],
            },
            {
                "text": "您希望我们在哪些方面改进？",
                "kind": "multiple",
                "options": ["响应速度", "专业能力", "服务态度", "回访跟进"],
                "required": False,
            },
            {"text": "其他意见或建议", "kind": "text", "required": False},
        ],
    },
)
#: Where the demo's survey refusals come from.
REFUSALS = ("客户要求不再回访", "电话回访时拒绝", "短信回复 TD")
COMMENTS = ("师傅很专业，谢谢！", "希望响应再快一点", "电话一直占线", "处理及时，满意", None, None)


def _staff() -> User | None:
    return db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role.in_(("service_agent", "manager")))
        .order_by(Membership.role.desc(), User.id)
    )


def _answers(rng: random.Random, questions: list[Any], mood: float) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for q in questions:
        if q.kind == "rating":
            out[q.id] = max(1, min(5, round(rng.gauss(3.2 + mood, 0.9))))
        elif q.kind == "nps":
            out[q.id] = max(0, min(10, round(rng.gauss(6.5 + 2 * mood, 1.8))))
        elif q.kind == "single":
            out[q.id] = rng.choice(q.options)
        elif q.kind == "multiple":
            out[q.id] = rng.sample(q.options, rng.randint(0, 2))
        else:
            out[q.id] = rng.choice(COMMENTS) or ""
    return out


def _refusals(customers: list[int], rng: random.Random) -> None:
    """About one customer in ten refused surveys: on every channel, or only by phone."""
    for cid in customers:
        if rng.random() < 0.1:
            everywhere = rng.random() < 0.6
            for channel, _label in consent.channels():
                if everywhere or channel == "phone":
                    consent.record(cid, channel, "survey", False, rng.choice(REFUSALS))


def seed(company: Any, fake: Any) -> None:
    """The questionnaire, the campaign, invitations and answers (see the module docstring)."""
    rng = random.Random(f"surveys-{company.code}")
    staff = _staff()
    q = questionnaires.create_questionnaire(
        "售后服务满意度回访",
        dimensions=DIMENSIONS,
        sections=SECTIONS,
        description="感谢您使用我们的服务！请花一分钟告诉我们您的感受。",
        user=staff,
    )
    today = campaigns.today()
    start = (today.replace(day=1) - timedelta(days=160)).replace(day=1)
    campaign = campaigns.create_campaign(
        q,
        "工单关闭后满意度回访",
        trigger="ticket_closed",
        channel="sms",
        starts_on=start,
        user=staff,
    )
    campaigns.launch_campaign(campaign, staff)
    questions = questionnaires.questions_of(q.id)
    customers = db.session.scalars(select(Customer.id).order_by(Customer.id)).all()
    _refusals(customers, rng)
    rng.shuffle(customers)
    # earlier months: a few customers invited each month, most of them answering
    moment = datetime.combine(start, time(2), UTC)
    month = 0
    now = utcnow()
    while moment < now - timedelta(days=7) and customers:
        batch, customers = customers[:8], customers[8:]
        campaigns.invite(campaign, batch, at=moment)
        db.session.flush()
        invited = db.session.scalars(
            select(Invitation).where(
                Invitation.campaign_id == campaign.id, Invitation.customer_id.in_(batch)
            )
        ).all()
        for invitation in invited:
            if rng.random() < 0.25:
                continue
            at = moment + timedelta(days=rng.randint(0, 5), minutes=rng.randint(0, 600))
            phone = staff is not None and rng.random() < 0.4
            campaigns.record_response(
                invitation,
                _answers(rng, questions, mood=0.25 * month),
                user=staff if phone else None,
                at=min(at, now),
                mode="phone" if phone else "link",
            )
        moment += timedelta(days=30)
        month += 1
    # the demo's closed tickets (closed before the plugin's demo ran): their invitations
    closed = db.session.execute(
        select(ServiceTicket.id, ServiceTicket.customer_id, ServiceTicket.closed_at).where(
            ServiceTicket.state == "closed"
        )
    ).all()
    for ticket_id, customer_id, closed_at in closed:
        campaigns.invite(campaign, [customer_id], ticket_id=ticket_id, at=closed_at or now)
    db.session.flush()
