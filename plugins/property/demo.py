"""The demo property company's data (``demo-property``, 锦苑物业服务有限公司).

* two estates, 阳光花园 (six buildings) and 翠湖湾 (four), 48 units a building (bulk insert);
* 150 residents (new customers of kind ``resident``) living in units as owners, tenants or
  family (bulk insert), with their resident type and unit on the customer;
* the teams 客服中心 (the core demo's, led by the demo manager), 工程维修部, 保洁绿化部 and
  秩序维护部, each led by a demo user (``eng@property.demo``, ``clean@…``, ``guard@…``, role
  service agent, the team's manager: deadlines escalate to them first) with a technician in
  the repairs team (``tech@property.demo``);
* dispatch rules per category (and one per estate for repairs), SLA rules (emergency repairs
  on site in 30 minutes, complaints answered within 24 h);
* a quarter (13 weeks before today) of complaints replayed through the workflow at their own
  moments (``at=``): dispatched, started, resolved with a root cause, followed up (most scored
  4-5 and closed, some 1-2 and reopened then resolved again), repeats on a few units, some
  late (SLA breaches), the last days' complaints still open;
* the quarterly residents' satisfaction survey (业主满意度调查) over seven dimensions, with a
  finished campaign for each of the last two quarters and their answers.

Seeded random (``random.Random("property-<code>")``): the same demo each time.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from core import fields as ext
from core.extend import db, utcnow
from core.models import Customer, Membership, ServiceTicket, Team, User
from plugins.property.complaints import ROOT_CAUSE_CODES, dispatch, file_complaint, resolve
from plugins.property.models import (
    Building,
    ComplaintClass,
    DispatchRule,
    Estate,
    Residence,
    SlaRule,
    Unit,
)
from plugins.property.reports import SATISFACTION_DIMENSIONS

ZONE = ZoneInfo("Asia/Shanghai")
ESTATES = (
    ("YGHY", "阳光花园", "上海市浦东新区锦绣路1888弄", 6),
    ("CHW", "翠湖湾", "上海市闵行区虹梅南路2666弄", 4),
)
#: Demo staff added by the plugin: (local part, name, team, is the team's lead).
STAFF = (
    ("eng", "陈工", "工程维修部", True),
    ("clean", "刘姐", "保洁绿化部", True),
    ("guard", "张队长", "秩序维护部", True),
    ("tech", "黄师傅", "工程维修部", False),
)
#: category code → team that handles it.
TEAM_OF = {
    "repairs": "工程维修部",
    "facilities": "工程维修部",
    "cleaning": "保洁绿化部",
    "greening": "保洁绿化部",
    "security": "秩序维护部",
    "parking": "秩序维护部",
    "noise": "秩序维护部",
    "illegal_build": "秩序维护部",
    "fees": "客服中心",
    "attitude": "客服中心",
}
#: How often each category comes up (weights) and the root causes it usually has.
MIX: dict[str, tuple[int, tuple[str, ...]]] = {
    "repairs": (30, ("equipment_ageing", "construction_defect", "maintenance_missed")),
    "facilities": (10, ("equipment_ageing", "maintenance_missed", "contractor")),
    "cleaning": (14, ("contractor", "staff_service", "maintenance_missed")),
    "greening": (6, ("contractor", "maintenance_missed")),
    "noise": (12, ("resident_behaviour", "process_gap")),
    "parking": (9, ("resident_behaviour", "design", "process_gap")),
    "security": (6, ("staff_service", "process_gap")),
    "fees": (6, ("process_gap", "staff_service")),
    "attitude": (4, ("staff_service",)),
    "illegal_build": (3, ("resident_behaviour", "third_party")),
}
ACTIONS = {
    "repairs": "已上门维修，更换损坏部件并测试正常",
    "facilities": "已修复设施并加强日常巡检",
    "cleaning": "已安排保洁重新清理，督促外包方整改",
    "greening": "已修剪绿植、补种草皮",
    "noise": "已上门劝导，告知装修时间规定",
    "parking": "已联系车主挪车，并张贴告示",
    "security": "已加强门岗登记与夜间巡逻",
    "fees": "已向业主解释账单明细并更正",
    "attitude": "已约谈当事员工，向业主致歉",
    "illegal_build": "已下发整改通知书并报城管",
}
SURVEY_WORDING = {
    "front_desk": "您对物业前台（客服中心）的服务是否满意？",
    "cleaning": "您对小区公共区域的保洁是否满意？",
    "greening": "您对小区绿化养护是否满意？",
    "safety": "您对小区的安全秩序（门岗、巡逻、消防）是否满意？",
    "facilities": "您对电梯、路灯、健身设施等公共设施的状况是否满意？",
    "repairs": "您对报修的响应速度和维修质量是否满意？",
    "overall": "总体而言，您对我们的物业服务是否满意？",
}
#: Mean score (1-5) per dimension in the earlier and in the latest quarter.
SURVEY_MEANS = {
    "front_desk": (3.9, 4.1),
    "cleaning": (3.5, 3.8),
    "greening": (3.7, 3.8),
    "safety": (3.8, 4.0),
    "facilities": (3.2, 3.4),
    "repairs": (3.0, 3.5),
    "overall": (3.5, 3.8),
}
WEEKS = 13
RESIDENTS = 150


def _local(day: date, hour: float) -> datetime:
    """The UTC moment of ``hour`` (decimal) o'clock on ``day`` in Shanghai."""
    h = int(hour)
    m = int((hour - h) * 60)
    return datetime.combine(day, time(h, m), ZONE).astimezone(UTC)


def _user(email: str, name: str) -> User:
    from core.demo import PASSWORD

    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=name, locale="zh_CN")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.flush()
    return user


def _places(company: Any, rng: random.Random) -> list[tuple[int, int]]:
    """Estates, buildings and units; returns ``(unit id, estate id)`` of every unit."""
    estates = []
    for code, name, address, _n in ESTATES:
        estate = Estate(code=code, name=name, address=address)
        db.session.add(estate)
        estates.append(estate)
    db.session.flush()
    buildings = []
    for estate, (_code, _name, _address, count) in zip(estates, ESTATES, strict=True):
        for b in range(1, count + 1):
            building = Building(estate_id=estate.id, name=f"{b}栋")
            db.session.add(building)
            buildings.append(building)
    db.session.flush()
    rows = [
        {
            "company_id": company.id,
            "building_id": building.id,
            "label": f"{entrance}单元{floor}{door:02d}",
            "floor": floor,
            "area": float(rng.choice([89, 96, 118, 128, 143])),
        }
        for building in buildings
        for entrance in (1, 2)
        for floor in range(1, 13)
        for door in (1, 2)
    ]
    db.session.execute(insert(Unit), rows)
    return [
        (unit_id, estate_id)
        for unit_id, estate_id in db.session.execute(
            select(Unit.id, Building.estate_id)
            .join(Building, Building.id == Unit.building_id)
            .order_by(Unit.id)
        )
    ]


def _residents(
    company: Any, fake: Any, rng: random.Random, units: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """New resident customers living in units; returns ``(customer id, unit id)``."""
    owner = db.session.scalar(
        select(Membership.user_id).where(Membership.role == "service_agent").limit(1)
    )
    since = utcnow() - timedelta(days=900)
    homes = rng.sample(units, RESIDENTS)
    db.session.execute(
        insert(Customer),
        [
            {
                "company_id": company.id,
                "code": f"R{company.id:02d}{n + 1:04d}",
                "name": fake.name(),
                "is_organization": False,
                "kind": "resident",
                "phone": f"139{rng.randint(10**7, 10**8 - 1)}",
                "status": "existing",
                "owner_id": owner,
                "created_at": since + timedelta(days=rng.randint(0, 800)),
            }
            for n in range(RESIDENTS)
        ],
    )
    ids = db.session.scalars(
        select(Customer.id).where(Customer.kind == "resident").order_by(Customer.id)
    ).all()
    labels = dict(
        db.session.execute(
            select(Unit.id, Building.name + Unit.label).join(
                Building, Building.id == Unit.building_id
            )
        ).all()
    )
    pairs, roles = [], []
    for customer_id, (unit_id, _estate) in zip(ids, homes, strict=True):
        role = rng.choice(["owner", "owner", "owner", "tenant", "family"])
        pairs.append((customer_id, unit_id))
        roles.append(
            {
                "company_id": company.id,
                "unit_id": unit_id,
                "customer_id": customer_id,
                "role": role,
                "since": date.today() - timedelta(days=rng.randint(60, 2000)),
            }
        )
    db.session.execute(insert(Residence), roles)
    from core.plugins import current
    from core.web.context import enabled_plugins

    fields = [
        f
        for f in current().registry.fields_for("customer", enabled_plugins())
        if f.key in ("property__resident_type", "property__unit_label")
    ]
    for row in roles:
        ext.save(
            fields,
            row["customer_id"],
            {
                "property__resident_type": row["role"],
                "property__unit_label": labels[row["unit_id"]],
            },
        )
    return pairs


def _teams(company: Any) -> tuple[dict[str, Team], dict[str, User]]:
    """The four service teams and the plugin's demo staff."""
    slug = (company.code or "property").removeprefix("demo-")
    teams = {t.name: t for t in db.session.scalars(select(Team))}
    manager = db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == "manager")
        .order_by(User.id)
    )
    if "客服中心" not in teams:
        teams["客服中心"] = Team(name="客服中心", manager_id=manager.id if manager else None)
        db.session.add(teams["客服中心"])
    staff: dict[str, User] = {}
    for local, name, team_name, lead in STAFF:
        user = _user(f"{local}@{slug}.demo", name)
        staff[local] = user
        if team_name not in teams:
            teams[team_name] = Team(name=team_name)
            db.session.add(teams[team_name])
            db.session.flush()
        if lead:
            teams[team_name].manager_id = user.id
        db.session.add(
            Membership(user_id=user.id, role="service_agent", team_id=teams[team_name].id)
        )
    db.session.flush()
    return teams, staff


def _rules(teams: dict[str, Team], staff: dict[str, User], estates: dict[str, int]) -> None:
    categories = {
        c.code: c.id
        for c in db.session.scalars(
            select(ComplaintClass).where(ComplaintClass.level == "category")
        )
    }
    position = 0
    for code, team in TEAM_OF.items():
        if code in categories:
            db.session.add(
                DispatchRule(
                    category_id=categories[code], team_id=teams[team].id, position=position
                )
            )
            position += 1
    # repairs in 阳光花园 go straight to the technician; anything else to the front desk
    db.session.add(
        DispatchRule(
            category_id=categories.get("repairs"),
            estate_id=estates["YGHY"],
            team_id=teams["工程维修部"].id,
            assignee_id=staff["tech"].id,
        )
    )
    db.session.add(DispatchRule(team_id=teams["客服中心"].id, position=99))
    repairs = categories.get("repairs")
    db.session.add_all(
        [
            # emergency repairs: someone on site within 30 minutes, fixed within 4 hours
            SlaRule(
                category_id=repairs, priority="urgent", response_minutes=30, resolution_minutes=240
            ),
            # complaints: a first response within 24 hours, resolved within 3 days
            SlaRule(priority="normal", response_minutes=1440, resolution_minutes=4320),
            SlaRule(priority="high", response_minutes=240, resolution_minutes=1440),
            SlaRule(priority="low", response_minutes=2880, resolution_minutes=7200),
        ]
    )
    db.session.flush()


def _problems() -> dict[str, list[tuple[int, int, str]]]:
    """category code → ``(category id, problem id, problem name)``."""
    cats = {
        c.id: c.code
        for c in db.session.scalars(
            select(ComplaintClass).where(ComplaintClass.level == "category")
        )
    }
    out: dict[str, list[tuple[int, int, str]]] = {}
    for p in db.session.scalars(select(ComplaintClass).where(ComplaintClass.level == "problem")):
        if p.parent_id in cats:
            out.setdefault(cats[p.parent_id], []).append((p.parent_id, p.id, p.name))
    return out


def _complaints(
    rng: random.Random,
    residents: list[tuple[int, int]],
    teams: dict[str, Team],
    staff: dict[str, User],
) -> None:
    """A quarter of complaints, each replayed through the workflow at its own moments."""
    from core import followup, workflow

    now = utcnow()
    today = now.astimezone(ZONE).date()
    first = today - timedelta(weeks=WEEKS)
    places = {
        c.code: c.id
        for c in db.session.scalars(select(ComplaintClass).where(ComplaintClass.level == "place"))
    }
    problems = _problems()
    categories = [c for c in MIX if c in problems]
    weights = [MIX[c][0] for c in categories]
    desk = db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == "service_agent", User.email.like("service_agent@%"))
    ) or next(iter(staff.values()))
    worker = {
        "工程维修部": staff["tech"],
        "保洁绿化部": staff["clean"],
        "秩序维护部": staff["guard"],
        "客服中心": desk,
    }
    # a few units complain again and again (repeat complaints)
    hot = rng.sample(residents, 6)
    day = first
    while day <= today:
        for _n in range(rng.choice([0, 1, 1, 2, 2, 3])):
            customer_id, unit_id = rng.choice(hot) if rng.random() < 0.15 else rng.choice(residents)
            code = rng.choices(categories, weights)[0]
            category_id, problem_id, problem = rng.choice(problems[code])
            emergency = code == "repairs" and rng.random() < 0.2
            hour = rng.uniform(8, 21) if not emergency else rng.uniform(9, 17)
            filed = _local(day, hour)
            if filed > now - timedelta(minutes=30):
                continue
            ticket = file_complaint(
                customer_id=customer_id,
                subject=problem,
                description=f"业主反映：{problem}，请尽快处理。",
                unit_id=unit_id,
                place_id=places.get("home" if code == "repairs" else "common"),
                category_id=category_id,
                problem_id=problem_id,
                type="property_repair"
                if code in ("repairs", "facilities")
                else "property_complaint",
                priority="high" if code in ("security", "attitude") else "normal",
                emergency=emergency,
                intake_channel=rng.choice(["phone", "phone", "wechat", "front_desk", "web"]),
                user_id=desk.id,
                at=filed,
            )
            _replay(
                rng, ticket, code, emergency, filed, now, teams, worker, desk, followup, workflow
            )
        day += timedelta(days=1)


def _replay(
    rng: random.Random,
    ticket: ServiceTicket,
    code: str,
    emergency: bool,
    filed: datetime,
    now: datetime,
    teams: dict[str, Team],
    worker: dict[str, User],
    desk: User,
    followup: Any,
    workflow: Any,
) -> None:
    """The steps of one complaint at plausible moments, stopping at ``now``."""
    team = teams[TEAM_OF.get(code, "客服中心")]
    person = worker[team.name]
    late = rng.random() < 0.12  # this one misses its deadlines
    moment = filed + timedelta(minutes=rng.randint(3, 40))
    if moment >= now:
        return
    dispatch(ticket, desk, team_id=team.id, assignee_id=person.id, at=moment)
    if emergency:
        delay = timedelta(minutes=rng.randint(10, 25) if not late else rng.randint(50, 150))
    else:
        delay = timedelta(hours=rng.uniform(0.5, 20) if not late else rng.uniform(30, 120))
    moment += delay
    if moment >= now:
        return
    workflow.transition(ticket, "start", user=person, inputs={"comment": "已到场"}, at=moment)
    work = timedelta(hours=rng.uniform(1, 3) if emergency else rng.uniform(2, 40))
    if late:
        work *= 3
    moment += work
    if moment >= now or rng.random() < 0.04:
        return  # still being worked on
    causes = MIX[code][1]
    cause = rng.choice(causes) if rng.random() < 0.85 else rng.choice(ROOT_CAUSE_CODES)
    resolve(ticket, person, root_cause=cause, action=ACTIONS[code], at=moment)
    visits = 0
    while True:
        moment += timedelta(hours=rng.uniform(4, 40))
        if moment >= now or rng.random() < 0.05:
            return  # the follow-up is still due
        bad = rng.random() < (0.12 if visits == 0 else 0.03)
        score = rng.choice([1, 2]) if bad else rng.choice([4, 5, 5])
        followup.record_followup(
            ticket,
            desk,
            score,
            rng.choice([3, 4, 5]),
            "业主表示不满意，问题仍未解决" if bad else "业主对处理结果满意",
            at=moment,
        )
        visits += 1
        if not bad:
            return
        moment += timedelta(hours=rng.uniform(2, 30))
        if moment >= now:
            return
        resolve(ticket, worker[team.name], root_cause=cause, action="二次上门处理完毕", at=moment)


def _survey(rng: random.Random, residents: list[tuple[int, int]]) -> None:
    """The quarterly satisfaction questionnaire and a finished campaign for each of the last
    two quarters, most residents answering."""
    from plugins.surveys import campaigns, questionnaires
    from plugins.surveys.models import Invitation

    staff = db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == "manager")
        .order_by(User.id)
    )
    q = questionnaires.create_questionnaire(
        "业主满意度调查（季度）",
        dimensions=SATISFACTION_DIMENSIONS,
        sections=(
            {
                "title": "服务评价",
                "questions": [
                    {"text": SURVEY_WORDING[code], "kind": "rating", "dimension": code}
                    for code, _l, _z in SATISFACTION_DIMENSIONS
                ],
            },
            {
                "title": "推荐与建议",
                "questions": [
                    {"text": "您有多大可能向亲友推荐本小区的物业服务？", "kind": "nps"},
                    {"text": "您对物业服务还有哪些意见或建议？", "kind": "text", "required": False},
                ],
            },
        ),
        description="尊敬的业主：为持续改进服务，请您对本季度的物业服务进行评价。",
        user=staff,
    )
    questions = questionnaires.questions_of(q.id)
    dimension_of = {}
    from plugins.surveys.models import Dimension

    codes = dict(db.session.execute(select(Dimension.id, Dimension.code)).all())
    for question in questions:
        dimension_of[question.id] = codes.get(question.dimension_id)
    today = utcnow().astimezone(ZONE).date()
    quarter_start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    previous = (quarter_start - timedelta(days=1)).replace(day=1)
    previous = date(previous.year, 3 * ((previous.month - 1) // 3) + 1, 1)
    for n, start in enumerate((previous - timedelta(days=92), previous)):
        start = date(start.year, 3 * ((start.month - 1) // 3) + 1, 1)
        # surveyed in the last month of the quarter
        opens = start + timedelta(days=62)
        closes = opens + timedelta(days=20)
        label = f"{start.year}年第{(start.month - 1) // 3 + 1}季度业主满意度调查"
        campaign = campaigns.create_campaign(
            q,
            label,
            trigger="segment",
            audience={"kind": ["resident"]},
            channel="sms",
            starts_on=opens,
            ends_on=closes,
            user=staff,
        )
        campaigns.launch_campaign(campaign, staff, at=_local(opens, 10))
        invitations = db.session.scalars(
            select(Invitation).where(Invitation.campaign_id == campaign.id)
        ).all()
        for invitation in invitations:
            if rng.random() < 0.35:
                continue
            mood = rng.gauss(0, 0.6)
            answers: dict[int, Any] = {}
            for question in questions:
                if question.kind == "rating":
                    mean = SURVEY_MEANS[dimension_of[question.id]][n]
                    answers[question.id] = max(1, min(5, round(rng.gauss(mean + mood, 0.8))))
                elif question.kind == "nps":
                    answers[question.id] = max(0, min(10, round(rng.gauss(7 + 2 * mood, 1.8))))
                else:
                    answers[question.id] = rng.choice(
                        ["", "", "希望电梯维保更及时", "地库保洁需加强", "前台服务很热情"]
                    )
            phone = rng.random() < 0.3
            campaigns.record_response(
                invitation,
                answers,
                user=staff if phone else None,
                at=_local(opens + timedelta(days=rng.randint(0, 18)), rng.uniform(9, 21)),
                mode="phone" if phone else "link",
            )
        campaigns.finish_campaign(campaign, staff)


def demo(company: Any, fake: Any) -> None:
    """The demo property company's estates, residents, teams, rules, a quarter of complaints
    and the satisfaction survey (see the module docstring)."""
    from plugins.property.complaints import seed_classifier

    rng = random.Random(f"property-{company.code}")
    seed_classifier()
    units = _places(company, rng)
    residents = _residents(company, fake, rng, units)
    teams, staff = _teams(company)
    estates = dict(db.session.execute(select(Estate.code, Estate.id)).all())
    _rules(teams, staff, estates)
    _complaints(rng, residents, teams, staff)
    db.session.flush()
    _survey(rng, residents)
    db.session.flush()
