"""Generate a large company — customers, interactions, tickets, deadline clocks — set-based.

    .venv/bin/python bench/generate.py --database sqlite|postgresql [--customers N] [--quick]
        [--plugin NAME ...] [--keep PATH]

Fills one company of a scratch database (bench/scratch.py; every migration run through
``core.migrations.upgrade``) in a few minutes, for the list and report benchmarks
(bench/lists.py). No row goes through the ORM one at a time: each table is filled by
``INSERT … SELECT`` over a counter — ``generate_series`` on PostgreSQL, a ``WITH RECURSIVE``
counter on SQLite — in chunks of 250,000 rows, every value a function of the row number (so a
run is reproducible), then ``ANALYZE`` (PostgreSQL: ``VACUUM ANALYZE``).

What is made (``N`` = ``--customers``, default 1,000,000; ``--quick``: 2,000):

* the company ``bench`` through the real command, ``guanxi companies create`` (so the enabled
  ``--plugin`` s run their enable callbacks and the audit log has its rows); a sales manager,
  40 sales reps in 4 teams, 20 service agents in a service team (one password hash, as
  bench/load.py does), 12 channels — through the ORM, they are few;
* ``N`` customers: Chinese person names from weighted surname and given-name lists by modulo,
  organisations (``上海明辉科技有限公司``) for business and intermediary kinds, unique mobile
  numbers ``1[3-9]`` + 9 digits, e-mail for about a third, province and street address in 24
  Chinese cities, kind / status / tier / loyalty / lifecycle stage spread as a mature customer
  base is (value tier follows the revenue and the default tier thresholds), 95 % with an owner,
  55 % through a channel, ``created_at`` spread over 3 years and growing with the id (rows are
  inserted as time goes), ``last_contact_at`` = their latest interaction, as the core keeps it;
* ``3N`` interactions on randomly chosen customers (so some have none, some many), by the
  customer's owner, kinds weighted (calls, WeChat, visits, …), a next step for one in ten,
  follow-up scores on follow-ups, between the customer's creation and now;
* ``N`` service tickets on the core workflow: types, priorities, intake channels weighted; a
  backlog-heavy service desk (65 % open: new 30 %, assigned 10 %, in progress 15 %, waiting on
  the customer 10 %; resolved 15 %, closed 15 %, cancelled 5 %), closed ones spread over the 3
  years, open ones over the last 90 days, most of them recent;
* the deadline clocks (``obligation`` rows of ``ticket.first_response`` and
  ``ticket.resolution``, core/clocks.py) of every open ticket: about ``1.3 N`` rows of which
  ``0.95 N`` are not met (running, at risk, breached or paused). Their warn / due / escalate
  moments are the engine's own (``core.clocks`` on the company's business calendar), computed
  once per half-hour start slot and priority — open tickets start on those slots — and joined
  in; the escalation level is the one ``clocks.scan`` would have reached by now. Closed
  tickets get no clock rows.

``generate(url, customers=…, plugins=…)`` does this on any migrated-or-empty database and
returns the company's id and code, the row counts and the seconds per table; the command line
prints rows/s per table. ``--keep PATH`` writes the SQLite file to ``PATH`` (PostgreSQL: a
database named ``PATH`` on the bench server) and leaves it there for bench/lists.py ``--url``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CODE = "bench"
COMPANY_NAME = "基准测试有限公司"
PASSWORD = "bench-12345"
QUICK_CUSTOMERS = 2_000
CHUNK = 250_000
DAY = 86_400
SPAN = 3 * 365 * DAY  # customers and closed tickets spread over three years
SLOT = 1_800  # open tickets start on half-hour slots: the clock moments are computed per slot
OPEN_DAYS = 90
SLOTS = OPEN_DAYS * DAY // SLOT
P = 2_147_483_647  # 2**31 - 1, the modulus of the row hashes

# Weighted surnames (the most common ones repeated) and given-name characters.
SURNAMES = (
    "王王王王王李李李李李张张张张张刘刘刘刘陈陈陈陈杨杨杨黄黄黄赵赵赵吴吴周周徐徐孙孙马马朱朱"
    "胡胡郭郭何何高林林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜"
    "崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
    "莫孔向汤欧阳"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国文辉鹏飞斌宇浩凯健俊峰志婷"
    "雪琳晶欣怡佳子涵梓轩博思雨梦晨嘉晓丹颖慧淑珍海燕春秋立新德永福荣庆利清正成家鑫磊波宁"
)
BRANDS = "明辉华信恒达瑞丰鼎盛宏远新元锦程泰和嘉禾天润永安金桥汇通"
INDUSTRIES = ("贸易", "科技", "医药", "电子", "建材", "食品", "物流", "实业", "商贸", "信息技术")
#: (province, city, districts): regions and addresses of customers.
CITIES = (
    ("北京市", "北京市", ("朝阳区", "海淀区", "东城区", "丰台区")),
    ("上海市", "上海市", ("浦东新区", "徐汇区", "静安区", "闵行区")),
    ("广东省", "广州市", ("天河区", "越秀区", "海珠区", "白云区")),
    ("广东省", "深圳市", ("南山区", "福田区", "宝安区", "龙岗区")),
    ("天津市", "天津市", ("和平区", "南开区", "河西区")),
    ("重庆市", "重庆市", ("渝中区", "江北区", "南岸区")),
    ("浙江省", "杭州市", ("西湖区", "上城区", "滨江区")),
    ("浙江省", "宁波市", ("海曙区", "鄞州区")),
    ("江苏省", "南京市", ("玄武区", "鼓楼区", "建邺区")),
    ("江苏省", "苏州市", ("姑苏区", "工业园区", "吴中区")),
    ("四川省", "成都市", ("锦江区", "武侯区", "青羊区", "高新区")),
    ("湖北省", "武汉市", ("江汉区", "武昌区", "洪山区")),
    ("陕西省", "西安市", ("雁塔区", "碑林区", "未央区")),
    ("湖南省", "长沙市", ("岳麓区", "芙蓉区", "天心区")),
    ("山东省", "济南市", ("历下区", "市中区")),
    ("山东省", "青岛市", ("市南区", "崂山区", "黄岛区")),
    ("河南省", "郑州市", ("金水区", "二七区", "中原区")),
    ("福建省", "厦门市", ("思明区", "湖里区")),
    ("福建省", "福州市", ("鼓楼区", "台江区")),
    ("辽宁省", "沈阳市", ("和平区", "沈河区")),
    ("安徽省", "合肥市", ("蜀山区", "包河区")),
    ("云南省", "昆明市", ("五华区", "盘龙区")),
    ("黑龙江省", "哈尔滨市", ("南岗区", "道里区")),
    ("广西壮族自治区", "南宁市", ("青秀区", "兴宁区")),
)
ROADS = (
    "人民路", "中山路", "解放路", "建设路", "和平路", "长江路", "黄河路", "新华路", "文化路",
    "胜利路", "青年路", "南京路", "北京路", "友谊路", "科技路", "学府路", "工业大道", "滨江大道",
)  # fmt: skip
MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "outlook.com")

KINDS = (("consumer", 62), ("business", 22), ("intermediary", 10), ("public_interest", 4),
         ("internal", 2))  # fmt: skip
STATUSES = (("potential", 25), ("existing", 55), ("inactive", 12), ("lost", 8))
STAGES = (("growth", 30), ("maturity", 40), ("decline", 20), ("dissolution", 10))
INTERACTION_KINDS = (("call", 40), ("wechat", 25), ("visit", 10), ("email", 10),
                     ("meeting", 5), ("follow_up", 10))  # fmt: skip
PURPOSES = ("产品咨询", "报价跟进", "合同洽谈", "售后回访", "新品介绍", "续约沟通", "满意度调查",
            "催收货款", "需求确认", "节日问候")  # fmt: skip
RESULTS = ("客户有意向，待报价", "已发送资料", "客户暂无需求", "约定下周再联系", "已确认订单",
           "客户反馈良好", "需要经理出面", "未接通", "客户要求优惠", "问题已解答")  # fmt: skip
NEXT_STEPS = ("发送报价单", "回电确认", "安排上门拜访", "寄送样品", "准备合同")
TICKET_STATES = (("new", 30), ("assigned", 10), ("in_progress", 15), ("waiting_customer", 10),
                 ("resolved", 15), ("closed", 15), ("cancelled", 5))  # fmt: skip
OPEN_STATES = ("new", "assigned", "in_progress", "waiting_customer")
TICKET_TYPES = (("inquiry", 45), ("repair", 25), ("complaint", 20), ("suggestion", 10))
PRIORITIES = (("urgent", 5), ("high", 15), ("normal", 60), ("low", 20))
INTAKE = (("phone", 40), ("wechat", 25), ("web", 15), ("email", 10), ("front_desk", 5),
          ("field", 5))  # fmt: skip
TOPICS = ("产品质量问题", "配送延迟", "发票开具", "安装预约", "价格咨询", "退换货", "账户变更",
          "使用指导", "配件缺失", "服务态度", "保修范围", "功能建议")  # fmt: skip


# -- SQL building blocks ----------------------------------------------------------------------


def lit(value: Any) -> str:
    """A SQL literal (the generator embeds only its own constants)."""
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def h(var: str, a: int, b: int) -> str:
    """A pseudo-random whole number in ``[0, P)`` from the row number ``var``: a linear step
    then a square (a linear one alone repeats its low digits with a short period)."""
    x = f"(({var} * {a} + {b}) % {P})"
    return f"(({x} * {x} + {x}) % {P})"


def weighted(expr: str, choices: Sequence[tuple[Any, int]]) -> str:
    """``CASE`` picking a value of ``choices`` (value, weight) by ``expr`` (≥ 0)."""
    total = sum(w for _v, w in choices)
    parts, bound = [], 0
    for value, weight in choices[:-1]:
        bound += weight
        parts.append(f"WHEN {expr} % {total} < {bound} THEN {lit(value)}")
    return f"(CASE {' '.join(parts)} ELSE {lit(choices[-1][0])} END)"


def pick(expr: str, values: Sequence[Any]) -> str:
    """``CASE`` picking one of ``values`` (equally likely) by ``expr`` (≥ 0)."""
    whens = " ".join(f"WHEN {i} THEN {lit(v)}" for i, v in enumerate(values[1:], start=1))
    return f"(CASE {expr} % {len(values)} {whens} ELSE {lit(values[0])} END)"


def char(expr: str, text: str) -> str:
    """One character of ``text`` chosen by ``expr`` (≥ 0)."""
    return f"substr({lit(text)}, CAST(1 + {expr} % {len(text)} AS INTEGER), 1)"


class Dialect:
    """The few spellings in which SQLite and PostgreSQL differ, for the generator's SQL."""

    def __init__(self, name: str, start: int) -> None:
        self.name = name
        self.start = start  # epoch seconds of "three years ago", the origin of every moment

    @property
    def pg(self) -> bool:
        return self.name == "postgresql"

    def series(self, lo: int, hi: int) -> str:
        """A FROM item with one column ``n``: ``lo`` … ``hi - 1``."""
        if self.pg:
            return f"generate_series({lo}::bigint, {hi - 1}::bigint) AS s(n)"
        return (
            f"(WITH RECURSIVE c(n) AS (SELECT {lo} UNION ALL SELECT n + 1 FROM c "
            f"WHERE n < {hi - 1}) SELECT n FROM c) AS s"
        )

    def ts(self, seconds: str) -> str:
        """The timestamp ``seconds`` after the origin, as the app stores it (naive UTC)."""
        if self.pg:
            return f"(to_timestamp({self.start} + ({seconds})) AT TIME ZONE 'UTC')"
        return (
            f"(strftime('%Y-%m-%d %H:%M:%S', {self.start} + ({seconds}), 'unixepoch') || '.000000')"
        )

    def pad(self, expr: str, width: int) -> str:
        if self.pg:
            return f"lpad(({expr})::text, {width}, '0')"
        return f"printf('%0{width}d', {expr})"

    def text(self, expr: str) -> str:
        return f"({expr})::text" if self.pg else f"({expr})"

    def least(self, a: str, b: str) -> str:
        return f"least({a}, {b})" if self.pg else f"min({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"greatest({a}, {b})" if self.pg else f"max({a}, {b})"

    def money(self, cents: str) -> str:
        return f"(({cents})::numeric / 100)" if self.pg else f"(({cents}) / 100.0)"

    def moment(self, value: datetime) -> Any:
        """A moment as the DBAPI parameter the app's column type would send."""
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive if self.pg else naive.isoformat(" ", "microseconds")


# -- the generator ----------------------------------------------------------------------------


def _created(n: str, customers: int) -> str:
    """Seconds after the origin at which customer number ``n`` was created (grows with n)."""
    return f"(({n}) * {SPAN} / {customers} + ({n}) * 37 % 60)"


def _people(db: Any) -> dict[str, Any]:
    """Teams, users and channels of the company in scope (few rows: the ORM)."""
    from core.models import Channel, Membership, Team, User

    first = User(email="bench-manager@bench.test", name="周经理")
    first.set_password(PASSWORD)
    db.session.add(first)
    db.session.flush()
    db.session.add(Membership(user_id=first.id, role="manager"))

    def member(email: str, name: str, role: str, team: Any) -> int:
        user = User(email=email, name=name, password_hash=first.password_hash)
        db.session.add(user)
        db.session.flush()
        db.session.add(Membership(user_id=user.id, role=role, team_id=team.id))
        return user.id

    reps, agents = [], []
    for t in range(4):
        team = Team(name=f"销售{'一二三四'[t]}部", manager_id=first.id)
        db.session.add(team)
        db.session.flush()
        for i in range(10):
            n = t * 10 + i
            name = SURNAMES[n * 7 % len(SURNAMES)] + GIVEN[n * 11 % len(GIVEN)]
            reps.append(member(f"bench-rep{n:02d}@bench.test", name, "sales_rep", team))
    service = Team(name="客服中心", manager_id=first.id)
    db.session.add(service)
    db.session.flush()
    for i in range(20):
        name = SURNAMES[i * 13 % len(SURNAMES)] + GIVEN[i * 17 % len(GIVEN)] + GIVEN[i]
        agents.append(member(f"bench-agent{i:02d}@bench.test", name, "service_agent", service))
    kinds = ("agent", "distributor", "ecommerce", "distributor", "agent", "oem")
    channels = []
    for i in range(12):
        city = CITIES[i * 2 % len(CITIES)][1]
        row = Channel(code=f"QD{i + 1:03d}", name=f"{city}{BRANDS[i]}{kinds[i % 6]}渠道",
                      type=kinds[i % 6])  # fmt: skip
        db.session.add(row)
        db.session.flush()
        channels.append(row.id)
    return {
        "manager": first.id,
        "reps": reps,
        "agents": agents,
        "service_team": service.id,
        "channels": channels,
    }


def _slots(d: Dialect, company_id: int) -> list[tuple[Any, ...]]:
    """Per half-hour start slot of the open-ticket window, per priority and clock kind: the
    target and moments the clock engine computes, and the level ``clocks.scan`` reaches."""
    from core import clocks
    from core.models import ServiceTicket
    from core.plugins import current

    kinds = current().registry.obligation_kinds
    first, resolution = kinds["ticket.first_response"], kinds["ticket.resolution"]
    now = datetime.fromtimestamp(d.start + SPAN, UTC)
    rows = []
    for priority, _w in PRIORITIES:
        probe = ServiceTicket(priority=priority, company_id=company_id)
        for kind in (first, resolution):
            target = kind.target(probe)
            cal = clocks.calendar_of(kind, company_id)
            for slot in range(SLOTS):
                start = datetime.fromtimestamp(d.start + SPAN - OPEN_DAYS * DAY + slot * SLOT, UTC)
                m = clocks._moments(cal, kind, start, target, 0.0)
                level = (
                    3
                    if m["escalate_at"] <= now
                    else 2
                    if m["due_at"] <= now
                    else (1 if m["warn_at"] <= now else 0)
                )
                rows.append(
                    (slot, priority, kind.name, target, d.moment(start),
                     d.moment(m["warn_at"]), d.moment(m["due_at"]), d.moment(m["escalate_at"]),
                     level)
                )  # fmt: skip
    return rows


def _customer_sql(d: Dialect, lo: int, hi: int, n_all: int, base: int, ctx: dict) -> str:
    owner = _owner("k", ctx["reps"])
    channel = (
        f"(CASE WHEN {h('k', 69069, 1)} % 100 < 45 THEN NULL ELSE "
        + pick(h("k", 22695477, 7), ctx["channels"])
        + " END)"
    )
    city_rows = [(prov, city, dist) for prov, city, dists in CITIES for dist in dists]
    person = (
        char(h("k", 1103515245, 12345), SURNAMES)
        + " || "
        + char(h("k", 134775813, 1), GIVEN)
        + f" || (CASE WHEN {h('k', 214013, 2531011)} % 3 = 0 THEN '' ELSE "
        + char(h("k", 16807, 0), GIVEN)
        + " END)"
    )
    organisation = (
        pick("g.city", [c for _p, c, _d in city_rows]).replace("市'", "'")
        + " || "
        + char(h("k", 48271, 11), BRANDS)
        + " || "
        + char(h("k", 69621, 5), BRANDS)
        + " || "
        + pick(h("k", 40692, 3), INDUSTRIES)
        + " || '有限公司'"
    )
    revenue_cents = (
        "(CASE WHEN g.r < 30 THEN 100000000 + g.r2 % 400000000 "
        "WHEN g.r < 150 THEN 20000000 + g.r2 % 80000000 "
        "WHEN g.r < 450 THEN 2000000 + g.r2 % 18000000 ELSE g.r2 % 2000000 END)"
    )
    tier = (
        "(CASE WHEN g.r < 30 THEN 'A' WHEN g.r < 150 THEN 'B' WHEN g.r < 450 THEN 'C' ELSE 'D' END)"
    )
    new_after = SPAN - 180 * DAY
    acquisition_after = SPAN - 90 * DAY
    qq = d.text("100000000 + " + h("k", 22695477, 1) + " % 899999999")
    mail = (
        f"(CASE WHEN {h('k', 1664525, 1013904223)} % 100 < 35 THEN {qq} || '@' || "
        + pick(h("k", 1140671485, 128201163), MAIL_DOMAINS)
        + " ELSE NULL END)"
    )
    number = d.text("1 + " + h("k", 279470273, 0) + " % 899")
    building = d.text("1 + " + h("k", 7, 3) + " % 30")
    room = d.text("101 + " + h("k", 13, 5) + " % 2400")
    address = (
        pick("g.city", [c + dist for _p, c, dist in city_rows])
        + " || "
        + pick(h("k", 65539, 0), ROADS)
        + f" || {number} || '号'"
        + f" || (CASE WHEN g.kind = 'consumer' THEN {building} || '栋' || {room} || '室'"
        + " ELSE '' END)"
    )
    phone = (
        "'1' || " + d.text("3 + g.k % 7") + " || " + d.pad("(g.k * 7919 + 104729) % 1000000000", 9)
    )
    return f"""
INSERT INTO customer (id, company_id, code, name, kind, is_organization, phone, email, region,
    address, status, value_tier, loyalty, lifecycle_stage, revenue, owner_id, channel_id,
    created_at, updated_at, version)
SELECT {base} + g.k + 1, {ctx["company_id"]}, 'KH' || {d.pad("g.k + 1", 7)},
    CASE WHEN g.kind IN ('business', 'intermediary') THEN {organisation} ELSE {person} END,
    g.kind, g.kind IN ('business', 'intermediary', 'public_interest'),
    {phone},
    {mail},
    {pick("g.city", [p for p, _c, _d in city_rows])},
    {address},
    g.status,
    CASE WHEN g.status = 'potential' THEN 'D' ELSE {tier} END,
    CASE WHEN g.status = 'potential' THEN NULL WHEN g.cs >= {new_after} THEN 'new'
         WHEN g.r3 % 10 < 3 THEN 'loyal' ELSE 'old' END,
    CASE WHEN g.cs >= {acquisition_after} THEN 'acquisition'
         WHEN g.status = 'lost' THEN 'dissolution' ELSE {weighted("g.r3", STAGES)} END,
    CASE WHEN g.status = 'potential' THEN NULL ELSE {d.money(revenue_cents)} END,
    {owner}, {channel},
    {d.ts("g.cs")}, {d.ts("g.cs")}, 1
FROM (
    SELECT n AS k, {_created("n", n_all)} AS cs,
        {weighted(h("n", 40014, 1), KINDS)} AS kind,
        {weighted(h("n", 40692, 7), STATUSES)} AS status,
        {h("n", 1103515245, 99)} % {len(city_rows)} AS city,
        {h("n", 630360016, 3)} % 1000 AS r,
        {h("n", 742938285, 5)} AS r2,
        {h("n", 950706376, 9)} AS r3
    FROM {d.series(lo, hi)}
) AS g
"""


def _owner(k: str, reps: list[int]) -> str:
    """The owner of customer number ``k`` (5 % have none): the same in every table."""
    return (
        f"(CASE WHEN {h(k, 397204094, 1)} % 100 < 5 THEN NULL ELSE "
        + pick(h(k, 764261123, 17), reps)
        + " END)"
    )


def _interaction_sql(d: Dialect, lo: int, hi: int, n_all: int, base: int, ctx: dict) -> str:
    now = SPAN
    occurred = "(g.cs + g.r % (" + str(now) + " - g.cs))"
    due = f"({occurred} + {3 * DAY})"
    return f"""
INSERT INTO interaction (company_id, customer_id, user_id, kind, occurred_at, duration_minutes,
    purpose, result, next_step, next_step_due, next_step_done_at, customer_score, quality_score,
    version)
SELECT {ctx["company_id"]}, {base} + g.k + 1, {_owner("g.k", ctx["reps"])}, g.kind,
    {d.ts(occurred)},
    CASE g.kind WHEN 'call' THEN 1 + g.r2 % 30 WHEN 'visit' THEN 30 + g.r2 % 90
        WHEN 'meeting' THEN 30 + g.r2 % 60 ELSE NULL END,
    {pick("g.r2", PURPOSES)}, {pick("g.r3", RESULTS)},
    CASE WHEN g.r3 % 10 = 0 THEN {pick("g.r", NEXT_STEPS)} ELSE NULL END,
    CASE WHEN g.r3 % 10 = 0 THEN {d.ts(due)} ELSE NULL END,
    CASE WHEN g.r3 % 10 = 0 AND {due} < {now - 7 * DAY} THEN {d.ts(f"{due} - {DAY}")} ELSE NULL END,
    CASE WHEN g.kind = 'follow_up' THEN
        (CASE WHEN g.r2 % 10 < 5 THEN 5 WHEN g.r2 % 10 < 8 THEN 4 ELSE 1 + g.r2 % 3 END) END,
    CASE WHEN g.kind = 'follow_up' THEN 60 + g.r3 % 41 END,
    1
FROM (
    SELECT c.k, {_created("c.k", n_all)} AS cs, c.kind, c.r, c.r2, c.r3
    FROM (
        SELECT {h("n", 1103515245, 12345)} % {n_all} AS k,
            {weighted(h("n", 69069, 3), INTERACTION_KINDS)} AS kind,
            {h("n", 16807, 11)} AS r, {h("n", 48271, 7)} AS r2, {h("n", 69621, 1)} AS r3
        FROM {d.series(lo, hi)}
    ) AS c
) AS g
"""


def _ticket_sql(d: Dialect, lo: int, hi: int, n_all: int, base: int, ctx: dict) -> str:
    window = SPAN - OPEN_DAYS * DAY
    # Open tickets start on a slot after their customer's creation; closed ones any time
    # between the customer's creation and two days ago.
    smin = d.least(d.greatest(f"(t.cs - {window} + {SLOT - 1}) / {SLOT}", "0"), str(SLOTS - 1))
    spread = d.greatest(f"{SPAN - 2 * DAY} - t.cs", "1")
    # Most of the backlog is recent: the age in slots is the product of two uniform numbers
    # over the slots since the customer's creation, scaled back (dense near now, thin later).
    slots = f"({SLOTS} - {smin})"
    age = f"((t.r % {slots}) * (t.r2 / 64 % {slots}) / {slots})"
    created = (
        f"(CASE WHEN t.state IN {tuple(OPEN_STATES)} "
        f"THEN {window} + ({SLOTS - 1} - {age}) * {SLOT} "
        f"ELSE t.cs + t.r % {spread} END)"
    )
    agent = pick("g.r2", ctx["agents"])
    resolved = f"(g.created + 3600 + g.r3 % {3 * DAY})"
    type_labels = {"inquiry": "咨询", "repair": "报修", "complaint": "投诉", "suggestion": "建议"}
    return f"""
INSERT INTO service_ticket (company_id, customer_id, type, priority, intake_channel, subject,
    description, workflow, state, assignee_id, team_id, created_at, resolved_at, closed_at,
    apology, version)
SELECT {ctx["company_id"]}, {base} + g.k + 1, g.type, g.priority, g.intake,
    {pick_map("g.type", type_labels)} || '：' || {pick("g.r3", TOPICS)},
    CASE WHEN g.r2 % 3 = 0 THEN '客户来电反映' || {pick("g.r3", TOPICS)} || '，请尽快处理。' END,
    'ticket', g.state,
    CASE WHEN g.state = 'new' AND g.r % 2 = 0 THEN NULL ELSE {agent} END,
    {ctx["service_team"]},
    {d.ts("g.created")},
    CASE WHEN g.state IN ('resolved', 'closed') THEN {d.ts(resolved)} END,
    CASE WHEN g.state = 'closed' THEN {d.ts(f"{resolved} + {DAY}")} END,
    g.type = 'complaint' AND g.state = 'closed' AND g.r3 % 3 = 0,
    1
FROM (
    SELECT t.*, {created} AS created
    FROM (
        SELECT c.k, {_created("c.k", n_all)} AS cs, c.state, c.type, c.priority, c.intake,
            c.r, c.r2, c.r3
        FROM (
            SELECT {h("n", 134775813, 7)} % {n_all} AS k,
                {weighted(h("n", 22695477, 1), TICKET_STATES)} AS state,
                {weighted(h("n", 1664525, 5), TICKET_TYPES)} AS type,
                {weighted(h("n", 214013, 9), PRIORITIES)} AS priority,
                {weighted(h("n", 16807, 3), INTAKE)} AS intake,
                {h("n", 48271, 13)} AS r, {h("n", 69621, 17)} AS r2, {h("n", 40692, 19)} AS r3
            FROM {d.series(lo, hi)}
        ) AS c
    ) AS t
) AS g
"""


def pick_map(expr: str, mapping: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in mapping.items())
    return f"(CASE {expr} {whens} END)"


def _obligation_sql(d: Dialect, ctx: dict, kind: str) -> str:
    """Clock rows of kind ``kind`` for the open tickets, moments joined from the slot table."""
    fr = kind == "ticket.first_response"
    start = "s.start_s"
    met = (
        f"CASE WHEN t.state <> 'new' THEN {d.ts(f'{start} + 60 * (5 + t.id % 120)')} END"
        if fr
        else "NULL"
    )
    paused = (
        "NULL"
        if fr
        else (
            f"CASE WHEN t.state = 'waiting_customer' THEN "
            f"{d.ts(d.least(f'{start} + 3600 * (1 + t.id % 48)', str(SPAN)))} END"
        )
    )
    remaining = "NULL" if fr else "CASE WHEN t.state = 'waiting_customer' THEN s.target * 0.5 END"
    level = (
        "CASE WHEN t.state = 'new' THEN s.level ELSE 0 END"
        if fr
        else "CASE WHEN t.state = 'waiting_customer' THEN 0 ELSE s.level END"
    )
    return f"""
INSERT INTO obligation (company_id, kind, subject_type, subject_id, started_at, target_minutes,
    warn_at, due_at, escalate_at, paused_at, remaining_minutes, met_at, escalation_level)
SELECT {ctx["company_id"]}, {lit(kind)}, 'service_ticket', t.id, t.created_at, s.target,
    s.warn_at, s.due_at, s.escalate_at, {paused}, {remaining}, {met}, {level}
FROM service_ticket AS t
JOIN bench_slot AS s ON s.started_at = t.created_at AND s.priority = t.priority
    AND s.kind = {lit(kind)}
WHERE t.company_id = {ctx["company_id"]} AND t.state IN {tuple(OPEN_STATES)}
"""


def generate(
    url: str,
    *,
    customers: int,
    plugins: Sequence[str] = (),
    code: str = CODE,
    instance: str | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fill company ``code`` (created here) of the database at ``url`` with ``customers``
    customers, three times as many interactions, as many tickets and the open tickets' clocks.

    Returns ``{"company_id", "code", "url", "rows": {table: n}, "seconds": {table: s}}``.
    """
    from sqlalchemy import select

    from core import search
    from core.app import create_app
    from core.cli import main as cli
    from core.db import db
    from core.migrations import upgrade
    from core.models import Company
    from core.tenancy import company_scope

    say = echo or (lambda _line: None)
    folder = instance or tempfile.mkdtemp(prefix="guanxi-generate-")
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": folder, "SECRET_KEY": "bench"}
    )
    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    with app.app_context():
        started = time.perf_counter()
        upgrade()
        seconds["migrations"] = time.perf_counter() - started
        args = ["companies", "create", code, COMPANY_NAME]
        for name in plugins:
            args += ["--plugin", name]
        result = app.test_cli_runner().invoke(cli, args)
        if result.exit_code != 0:
            raise RuntimeError(f"guanxi {' '.join(args)}: {result.output}{result.exception or ''}")
        company_id = db.session.scalar(select(Company.id).where(Company.code == code))
        with company_scope(company_id):
            ctx = _people(db)
            ctx["company_id"] = company_id
            db.session.commit()
            kind = db.engine.dialect.name
            now = int(time.time()) // SLOT * SLOT
            d = Dialect(kind, now - SPAN)
            slots = _slots(d, company_id)
        db.session.remove()
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            if not d.pg:
                cur.execute("PRAGMA cache_size=-524288")  # 512 MB: indexes stay in memory
            else:
                cur.execute("SET synchronous_commit = off")
                cur.execute("SET work_mem = '256MB'")
            raw.commit()

            def base_of(table: str) -> int:
                cur.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
                return int(cur.fetchone()[0])

            def fill(table: str, total: int, build: Callable[..., str], base: int) -> None:
                began = time.perf_counter()
                for lo in range(0, total, CHUNK):
                    hi = min(total, lo + CHUNK)
                    cur.execute(build(d, lo, hi, customers, base, ctx))
                    raw.commit()
                    say(f"  {table}: {hi:,} of {total:,} ({time.perf_counter() - began:.1f} s)")
                seconds[table] = time.perf_counter() - began
                rows[table] = total

            customer_base = base_of("customer")
            fill("customer", customers, _customer_sql, customer_base)
            fill("interaction", 3 * customers, _interaction_sql, customer_base)
            fill("service_ticket", customers, _ticket_sql, customer_base)

            began = time.perf_counter()
            cur.execute(
                "CREATE TEMP TABLE bench_slot (slot INTEGER, priority VARCHAR(20), "
                "kind VARCHAR(60), target INTEGER, started_at TIMESTAMP, warn_at TIMESTAMP, "
                "due_at TIMESTAMP, escalate_at TIMESTAMP, level INTEGER, start_s BIGINT)"
            )
            mark = "%s" if d.pg else "?"
            window = SPAN - OPEN_DAYS * DAY
            cur.executemany(
                f"INSERT INTO bench_slot VALUES ({', '.join([mark] * 10)})",
                [(*row, window + row[0] * SLOT) for row in slots],
            )
            cur.execute("CREATE INDEX bench_slot_start ON bench_slot (started_at, priority, kind)")
            before = base_of("obligation")
            for name in ("ticket.first_response", "ticket.resolution"):
                cur.execute(_obligation_sql(d, ctx, name))
            cur.execute("DROP TABLE bench_slot")
            raw.commit()
            rows["obligation"] = base_of("obligation") - before
            seconds["obligation"] = time.perf_counter() - began

            began = time.perf_counter()
            # The core keeps last_contact_at when an interaction is logged: same value here.
            cur.execute(
                "UPDATE customer SET last_contact_at = x.latest FROM (SELECT customer_id, "
                "max(occurred_at) AS latest FROM interaction WHERE company_id = "
                f"{company_id} GROUP BY customer_id) AS x WHERE customer.id = x.customer_id"
            )
            raw.commit()
            seconds["last_contact_at"] = time.perf_counter() - began

            began = time.perf_counter()
            # SQLite's search index is filled in sets by its job (core.search); run it now.
            with db.engine.begin() as conn:
                search.refresh(conn)
            seconds["search_index"] = time.perf_counter() - began

            began = time.perf_counter()
            if d.pg:
                for table in ("customer", "interaction", "service_ticket", "obligation"):
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                raw.commit()
                raw.driver_connection.autocommit = True
                cur.execute("VACUUM ANALYZE")
                raw.driver_connection.autocommit = False
            else:
                cur.execute("ANALYZE")
                raw.commit()
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            seconds["analyze"] = time.perf_counter() - began
            cur.execute(
                f"SELECT count(*) FROM obligation WHERE company_id = {company_id} "
                "AND met_at IS NULL"
            )
            rows["obligation_open"] = int(cur.fetchone()[0])
            raw.commit()
        finally:
            raw.close()
        db.engine.dispose()
    return {"company_id": company_id, "code": code, "url": url, "rows": rows, "seconds": seconds}


def _keep_url(kind: str, path: str) -> str:
    from scratch import PG_SERVER, _pg_admin

    if kind == "sqlite":
        target = Path(path).resolve()
        if target.exists():
            sys.exit(f"{target} exists; give a new path")
        target.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{target}"
    _pg_admin(f'CREATE DATABASE "{path}"')
    return f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{path}"


def report(outcome: dict[str, Any]) -> None:
    """Rows and rows/s per table."""
    rows, seconds = outcome["rows"], outcome["seconds"]
    total_rows = sum(v for k, v in rows.items() if k != "obligation_open")
    print(f"{'table':<16} {'rows':>12} {'seconds':>9} {'rows/s':>10}")
    for table in ("customer", "interaction", "service_ticket", "obligation"):
        print(
            f"{table:<16} {rows[table]:>12,} {seconds[table]:>9.1f} "
            f"{rows[table] / seconds[table]:>10,.0f}"
        )
    for step in ("last_contact_at", "search_index", "analyze", "migrations"):
        print(f"{step:<16} {'':>12} {seconds[step]:>9.1f}")
    spent = sum(seconds.values())
    print(
        f"{'total':<16} {total_rows:>12,} {spent:>9.1f} {total_rows / spent:>10,.0f}"
        f"   (open obligations: {rows['obligation_open']:,}; cpus {os.cpu_count()})"
    )


def main() -> None:
    from scratch import interruptible, scratch_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CUSTOMERS:,} customers")
    parser.add_argument("--plugin", action="append", default=[], help="enable (repeatable)")
    parser.add_argument("--keep", metavar="PATH", help="keep the database (file / PG name)")
    args = parser.parse_args()
    customers = QUICK_CUSTOMERS if args.quick else args.customers
    interruptible()
    print(f"# {customers:,} customers on {args.database}", file=sys.stderr)
    with scratch_database(args.database) as scratch:
        url = _keep_url(args.database, args.keep) if args.keep else scratch.url
        outcome = generate(
            url,
            customers=customers,
            plugins=args.plugin,
            instance=str(scratch.folder),
            echo=lambda line: print(line, file=sys.stderr),
        )
        report(outcome)
        if args.keep:
            print(f"# kept {url} (company {outcome['code']}, id {outcome['company_id']})")


if __name__ == "__main__":
    main()
