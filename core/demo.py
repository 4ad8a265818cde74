"""Demo companies: a pharma, an insurance and a property-management company, in Chinese.

``ensure()`` creates them once (``guanxi serve --demo`` / ``guanxi demo``) with users for each
role, teams, channels, customers, contacts, interactions and service tickets with running SLA
clocks; then each enabled plugin adds its own data through ``guanxi_demo_data``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from faker import Faker
from sqlalchemy import select

from core import clocks, search, tokens, workflow
from core.channels import seed_demo as seed_channels_demo
from core.classify import seed_demo as seed_identify_demo
from core.customers import seed_demo as seed_customers_demo
from core.db import db, utcnow
from core.followup import seed_demo as seed_followup_demo
from core.interactions import seed_demo as seed_activity_demo
from core.models import (
    CalendarRecord,
    Channel,
    Company,
    Contact,
    Customer,
    Interaction,
    Membership,
    SlaPolicy,
    Team,
    User,
)
from core.plugins import current
from core.security import ROLES
from core.tenancy import company_scope, unscoped
from core.tickets import open_ticket

PASSWORD = "guanxi123"

COMPANIES = [
    ("demo-pharma", "康泰医药有限公司", "pharma", ("pharma", "marketing")),
    ("demo-insurance", "鸿信人寿保险股份有限公司", "insurance", ("insurance", "marketing")),
    ("demo-property", "锦苑物业服务有限公司", "property", ("property", "sales")),
]

CALENDAR = {
    "timezone": "Asia/Shanghai",
    "hours": {str(d): [["09:00", "18:00"]] for d in range(5)},
    # Sample public holidays; maintain them from the State Council's yearly notice.
    "holidays": [f"2026-10-0{d}" for d in range(1, 8)] + ["2027-01-01"],
    "workdays": [],
}

SLA = {"urgent": (30, 240), "high": (60, 480), "normal": (120, 1080), "low": (480, 2700)}


def ensure(echo: Callable[[str], None] = print) -> None:
    """Create the demo companies unless they exist, then print how to log in."""
    with unscoped():
        exists = db.session.scalar(select(Company.id).where(Company.code == COMPANIES[0][0]))
    if not exists:
        create()
    echo(f"Demo companies and logins (password for every user: {PASSWORD}):")
    for code, name, slug, _plugins in COMPANIES:
        echo(f"  {name} ({code}): " + ", ".join(f"{r}@{slug}.demo" for r in ROLES))
    echo("  boss@guanxi.demo belongs to all three companies (company switcher).")
    echo("  sales_rep2@<company>.demo: a sales rep of a second team (sees that team's customers).")
    for line in _plugin_logins():
        echo(line)


def _plugin_logins() -> list[str]:
    """Lines naming the logins the plugins' demo data added (an insurance agent's own login,
    say), with their role, one line per company."""
    known = {f"{r}@{slug}.demo" for _c, _n, slug, _p in COMPANIES for r in (*ROLES, "sales_rep2")}
    with unscoped():
        rows = db.session.execute(
            select(Company.name, User.email, Membership.role)
            .join(Membership, Membership.company_id == Company.id)
            .join(User, User.id == Membership.user_id)
            .where(Company.code.in_([code for code, *_ in COMPANIES]), User.email.like("%.demo"))
            .order_by(Company.id, User.email)
        ).all()
    by_company: dict[str, list[str]] = {}
    for company, email, role in rows:
        if email not in known and not email.startswith("boss@"):
            by_company.setdefault(company, []).append(f"{email} ({role})")
    return [
        f"  {name}, from its plugins: " + ", ".join(found) for name, found in by_company.items()
    ]


def create(seed: int = 20261124) -> list[Company]:
    """Create the three demo companies and everything in them; commits."""
    manager = current()
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    boss = _user("boss@guanxi.demo", "王总")
    made = []
    for code, name, slug, plugins in COMPANIES:
        company = Company(code=code, name=name)
        db.session.add(company)
        db.session.flush()
        for plugin in plugins:
            if plugin in manager.manifests:
                manager.enable(company, plugin)
        with company_scope(company.id):
            _populate(company, slug, boss, fake, rng)
            enabled = manager.enabled(company.id)
            # pluggy calls the last registered plugin first; demo data must follow the
            # dependencies (sales' orders exist before pharma tiers doctors on them).
            for name in manager.order:
                if name in enabled:
                    only = frozenset({name})
                    manager.hooks(only).guanxi_demo_data(company=company, fake=fake)
            db.session.commit()
            _import_fair_leads(slug)
            _import_opt_outs(slug)
        made.append(company)
    clocks.scan()
    search.refresh(db.session.connection())  # what the customers.search_index job would do
    db.session.commit()
    return made


#: A trade fair's lead list as a clerk would bring it: mostly good rows, three to correct.
FAIR_LEADS = [
    ["编号", "客户名称", "手机", "类型", "地区", "状态"],
    ["ZH-001", "上海瑞康大药房", "13916000001", "中间客户", "上海市", "潜在客户"],
    ["ZH-002", "苏州宁和堂连锁", "13916000002", "中间客户", "江苏省", "潜在客户"],
    ["ZH-003", "杭州同济诊所", "13916000003", "商用客户", "浙江省", "潜在客户"],
    ["ZH-004", "陈晓燕", "13916000004", "消费客户", "上海市", "潜在客户"],
    ["ZH-005", "", "13916000005", "消费客户", "上海市", "潜在客户"],
    ["ZH-006", "刘建国", "电话待补", "消费客户", "江苏省", "潜在客户"],
    ["ZH-007", "南京康宁医疗器械", "13916000007", "商用客户", "江苏省", "潜在客户"],
    ["ZH-008", "周慧敏", "13916000004", "消费客户", "浙江省", "潜在客户"],
    ["ZH-009", "无锡百草堂", "13916000009", "中间客户", "江苏省", "潜在客户"],
    ["ZH-010", "宁波海曙社区卫生服务站", "13916000010", "商用客户", "浙江省", "潜在客户"],
]


def _import_fair_leads(slug: str) -> None:
    """Import the trade-fair list through the real import path (batched: the good rows go in,
    the three bad ones wait in the error report), so /imports/ shows a finished import."""
    _import_demo_file(slug, "展会客户名单.csv", FAIR_LEADS, "customers", mode="batched")


def _import_opt_outs(slug: str) -> None:
    """Import an opt-out list (退订名单: customers who replied "TD" to a text message) as
    consent answers through the real import path, so /imports/ shows one and those customers'
    pages show the refusal with its source. Only where a plugin contacts customers."""
    from core import consent
    from core.models import Customer

    purposes = [p.name for p in consent.purposes()]
    if not purposes:
        return
    codes = db.session.scalars(
        select(Customer.code).where(Customer.code.is_not(None)).order_by(Customer.id).limit(6)
    ).all()
    rows = [["客户编号", "渠道", "用途", "同意", "来源"]]
    rows += [[code, "短信", purposes[0], "否", "短信回复TD退订"] for code in codes]
    mapping = {"客户编号": "customer_id", "渠道": "channel", "用途": "purpose", "同意": "granted",
               "来源": "source"}  # fmt: skip
    _import_demo_file(
        slug, "短信退订名单.csv", rows, "consents", mapping=mapping, on_duplicate="update"
    )


def _import_demo_file(
    slug: str,
    filename: str,
    rows: list[list[str]],
    resource: str,
    *,
    mapping: dict[str, str | None] | None = None,
    on_duplicate: str = "skip",
    mode: str = "atomic",
) -> None:
    """Write ``rows`` as a CSV in the import folder and run it as the company manager's import
    task, as the import page would."""
    import csv

    from flask import current_app

    from core import importer, tasks

    folder = Path(
        current_app.config.get("IMPORT_FOLDER") or Path(current_app.instance_path) / "imports"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-{slug}-{filename}"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)
    clerk = db.session.scalar(select(User).where(User.email == f"manager@{slug}.demo"))
    task = tasks.create(
        "import",
        importer.run,
        user_id=clerk.id if clerk else None,
        path=str(path),
        resource=resource,
        mapping=mapping,
        on_duplicate=on_duplicate,
        mode=mode,
        batch=importer.DEFAULT_BATCH,
        filename=filename,
    )
    tasks.execute(task.id)


def _user(email: str, name: str) -> User:
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=name, locale="zh_CN")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.flush()
    return user


#: (city, province) pairs for channel names and territories that agree with each other.
CITIES = [
    ("上海", "上海市"),
    ("北京", "北京市"),
    ("广州", "广东省"),
    ("深圳", "广东省"),
    ("杭州", "浙江省"),
    ("南京", "江苏省"),
    ("苏州", "江苏省"),
    ("成都", "四川省"),
    ("武汉", "湖北省"),
    ("西安", "陕西省"),
    ("沈阳", "辽宁省"),
    ("济南", "山东省"),
]


def _channel_cities(rng: random.Random) -> list[tuple[str, str]]:
    """Cities of the direct office, the agent, the distributor (Guangzhou: its sub-dealers
    are in Guangzhou and Foshan) and the online shop."""
    others = rng.sample([c for c in CITIES if c[0] != "广州"], 3)
    return [others[0], others[1], ("广州", "广东省"), others[2]]


def _populate(
    company: Company,
    slug: str,
    boss: User,
    fake: Faker,
    rng: random.Random,
    customers_count: int = 60,
    tickets_count: int = 24,
) -> None:
    """The core's demo rows of ``company``; tests ask for fewer customers and tickets."""
    db.session.add(CalendarRecord(name="default", config=CALENDAR))
    for priority, (first, resolve) in SLA.items():
        db.session.add(
            SlaPolicy(priority=priority, first_response_minutes=first, resolution_minutes=resolve)
        )
    users: dict[str, User] = {}
    for role in ROLES:
        users[role] = _user(f"{role}@{slug}.demo", fake.name())
    sales_team = Team(name="销售一部", manager_id=users["manager"].id)
    service_team = Team(name="客服中心", manager_id=users["manager"].id)
    db.session.add_all([sales_team, service_team])
    db.session.flush()
    for role, user in users.items():
        team = service_team if role == "service_agent" else sales_team
        db.session.add(Membership(user_id=user.id, role=role, team_id=team.id))
    db.session.add(Membership(user_id=boss.id, role="admin"))

    channels = []
    for (ctype, label), (city, province) in zip(
        (
            ("direct", "直销部"),
            ("agent", "代理"),
            ("distributor", "经销商"),
            ("ecommerce", "天猫旗舰店"),
        ),
        _channel_cities(rng),
        strict=True,
    ):
        channel = Channel(
            name=f"{city}{label}" if ctype != "ecommerce" else f"{company.name[:2]}{label}",
            type=ctype,
            territory=province if ctype != "ecommerce" else "全国",
            commission_rate=rng.choice([None, 5, 8, 12]),
            credit_limit=rng.choice([None, 500000]),
        )
        channels.append(channel)
    db.session.add_all(channels)
    db.session.flush()

    customers = []
    for i in range(customers_count):
        is_org = i % 3 == 0
        customer = Customer(
            code=f"C{company.id:02d}{i + 1:04d}",
            name=fake.company() if is_org else fake.name(),
            is_organization=is_org,
            kind=rng.choice(["business", "intermediary"] if is_org else ["consumer"]),
            phone=fake.phone_number(),
            email=fake.email(),
            region=fake.province(),
            address=fake.address(),
            status=rng.choice(["existing", "existing", "potential"]),
            owner_id=rng.choice([users["sales_rep"].id, users["manager"].id]),
            channel_id=rng.choice(channels).id,
            created_at=utcnow() - timedelta(days=rng.randint(1, 900)),
        )
        customers.append(customer)
    db.session.add_all(customers)
    db.session.flush()
    roles = ["buyer", "decider", "user", "gatekeeper", "influencer", "approver"]
    for customer in customers:
        if customer.is_organization:
            for _ in range(rng.randint(1, 3)):
                db.session.add(
                    Contact(
                        customer_id=customer.id,
                        name=fake.name(),
                        title=fake.job(),
                        decision_role=rng.choice(roles),
                        phone=fake.phone_number(),
                    )
                )
        for _ in range(rng.randint(0, 3)):
            when = utcnow() - timedelta(days=rng.randint(0, 120), hours=rng.randint(0, 8))
            db.session.add(
                Interaction(
                    customer_id=customer.id,
                    user_id=customer.owner_id,
                    kind=rng.choice(["call", "visit", "wechat", "meeting", "email"]),
                    occurred_at=when,
                    duration_minutes=rng.choice([5, 15, 30, 60]),
                    purpose=rng.choice(
                        ["产品介绍", "需求沟通", "合同跟进", "售后回访", "节日问候"]
                    ),
                    result=rng.choice(["客户有兴趣，约定下次演示", "已下单", "暂无需求", "需报价"]),
                    next_step=rng.choice([None, "发送报价单", "安排上门拜访"]),
                    next_step_due=when + timedelta(days=7),
                )
            )
    subjects = ["产品质量问题", "发票开具", "配送延迟", "服务态度投诉", "设备报修", "咨询优惠政策"]
    agent = users["service_agent"]
    for i in range(tickets_count):
        age = timedelta(hours=rng.randint(1, 24 * 10))
        ticket = open_ticket(
            at=utcnow() - age,
            customer_id=rng.choice(customers).id,
            type=rng.choice(["inquiry", "complaint", "repair", "suggestion"]),
            priority=rng.choice(list(SLA)),
            intake_channel=rng.choice(["phone", "wechat", "web", "email", "front_desk"]),
            subject=rng.choice(subjects),
            description=fake.sentence(),
            assignee_id=agent.id if i % 4 else None,
            team_id=service_team.id,
        )
        path = [
            [],
            ["assign"],
            ["assign", "start"],
            ["start", "resolve"],
            ["start", "resolve", "close"],
            ["start", "wait"],
        ][i % 6]
        moment = ticket.created_at
        for step in path:
            # steps at plausible past moments, so history and SLA clocks read as in real life
            moment += min(age / (len(path) + 1), timedelta(minutes=rng.randint(20, 600)))
            workflow.transition(ticket, step, user=agent, inputs={"comment": "处理完毕"}, at=moment)
    seed_followup_demo(users)  # service recovery and follow-ups (回访) on these tickets
    seed_channels_demo(channels, customers, rng)  # sub-dealers, claims, one channel conflict
    seed_activity_demo(users, customers, rng)  # next steps, comments with @mentions, bell
    seed_customers_demo(users, customers, rng, fake)  # second sales team, owners spread, tags
    # Keep LAST: revenues, duplicate customers, then classifies everything seeded above.
    seed_identify_demo(customers, rng, fake)
    # An integration's token (its secret is not kept: the page shows how tokens look).
    tokens.issue(users["admin"], company.id, "ERP 数据同步")
