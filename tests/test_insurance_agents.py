"""Insurance agents (DOMAIN §2, §6): producer profiles on selling channels, the licence gate
(:func:`plugins.insurance.agents.licence_problem`), the hierarchy of any depth (upline chain,
downline by recursive CTE, cycles refused), the pages, the channel's profile box, the licence
expiry clock with its notices at 60/30/7 days (a job test over simulated dates), the licence
expiry report and the ``insurance_agents`` API."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from core import clocks, tokens
from core.models import Channel, Notification, Obligation
from core.tenancy import company_scope, unscoped
from core.testing import QueryCounter, company_today
from plugins.insurance import agents
from plugins.insurance.models import Agent

SHANGHAI = ZoneInfo("Asia/Shanghai")
LIFE = ["life", "health"]


def make_agent(db, name, *, upline=None, number="LIC-1", classes=LIFE, expires=None, **kw):
    """A profile with a new insurance-agent channel (in the company in scope)."""
    data = agents.AgentInput(
        channel_name=name,
        channel_type=kw.pop("channel_type", "insurance_agent"),
        licence_number=number,
        licence_classes=list(classes),
        licence_expires_on=expires,
        upline_id=upline.id if upline is not None else None,
        **kw,
    )
    row = agents.create_agent(data)
    db.session.flush()
    return row


@pytest.fixture
def insurer(company):
    return company(plugins=["insurance"])


@pytest.fixture
def team(db, insurer):
    """A director, two managers under her, three agents under them (licence numbers L0…L5)."""
    with company_scope(insurer.id):
        far = company_today() + timedelta(days=400)
        d = make_agent(db, "林总监", number="L0", expires=far, team="营业部")
        m1 = make_agent(db, "赵经理", upline=d, number="L1", expires=far, team="一组")
        m2 = make_agent(db, "孙经理", upline=d, number="L2", expires=far, team="二组")
        a1 = make_agent(db, "钱代理", upline=m1, number="L3", expires=far, team="一组")
        a2 = make_agent(db, "周代理", upline=m1, number="L4", expires=far, team="一组")
        a3 = make_agent(db, "郑代理", upline=m2, number="L5", expires=far, team="二组")
        db.session.commit()
        return {n: r.id for n, r in zip(("d", "m1", "m2", "a1", "a2", "a3"),
                                        (d, m1, m2, a1, a2, a3), strict=True)}  # fmt: skip


# -- the licence gate -----------------------------------------------------------------------------


def test_licence_problem_allows_an_active_covering_licence_and_a_sale_without_agent(db, insurer):
    day = date(2026, 6, 30)
    with company_scope(insurer.id):
        agent = make_agent(db, "钱代理", number="02010001", expires=day)
        assert agents.licence_problem(None, "life", day) is None
        assert agents.licence_problem(agent, "life", day) is None  # the last valid day
        assert agents.licence_problem(agent, "health", day - timedelta(days=300)) is None


def test_licence_problem_names_the_licence_and_the_expiry_date(db, insurer):
    day = date(2026, 6, 30)
    with company_scope(insurer.id):
        agent = make_agent(db, "钱代理", number="02010001", expires=day)
        message = agents.licence_problem(agent, "life", day + timedelta(days=1))
        assert message is not None
        assert "02010001" in message and "2026-06-30" in message and "钱代理" in message
        assert "expired" in message or "到期" in message


def test_licence_problem_refuses_a_class_the_licence_does_not_cover(db, insurer):
    with company_scope(insurer.id):
        agent = make_agent(db, "钱代理", number="02010001", classes=["life"])
        message = agents.licence_problem(agent, "auto", date(2026, 6, 30))
        assert message is not None and "02010001" in message
        assert "Motor" in message or "车险" in message  # the class's label
        assert "Life" in message or "寿险" in message  # what it does cover
        # a licence without an expiry date never expires
        assert agents.licence_problem(agent, "life", date(2099, 1, 1)) is None


def test_licence_problem_refuses_suspended_terminated_and_unlicensed_agents(db, insurer):
    day = date(2026, 6, 30)
    with company_scope(insurer.id):
        suspended = make_agent(db, "孙代理", number="0201S", status="suspended")
        terminated = make_agent(db, "郑代理", number="0201T", status="terminated")
        unlicensed = make_agent(db, "吴代理", number=None, classes=[])
        message = agents.licence_problem(suspended, "life", day)
        assert "0201S" in message and ("suspended" in message or "暂停" in message)
        message = agents.licence_problem(terminated, "life", day)
        assert "0201T" in message and ("terminated" in message or "解约" in message)
        message = agents.licence_problem(unlicensed, "life", day)
        assert message is not None and "吴代理" in message
        # status is checked before the expiry: the clerk learns the first thing to fix
        suspended.licence_expires_on = day - timedelta(days=5)
        assert "suspended" in agents.licence_problem(suspended, "life", day) or "暂停" in (
            agents.licence_problem(suspended, "life", day)
        )


# -- the hierarchy --------------------------------------------------------------------------------


def test_upline_chain_and_downline_at_any_depth(db, insurer, team):
    with company_scope(insurer.id):
        a1 = db.session.get(Agent, team["a1"])
        assert [a.id for a in agents.upline_chain(a1)] == [team["m1"], team["d"]]
        assert agents.upline_chain(db.session.get(Agent, team["d"])) == []
        assert agents.downline_ids(team["d"]) == sorted(
            team[k] for k in ("m1", "m2", "a1", "a2", "a3")
        )
        assert agents.downline_ids(team["m1"]) == sorted([team["a1"], team["a2"]])
        assert agents.downline_ids(team["a3"]) == []
        tree, below = agents.downline_tree(db.session.get(Agent, team["d"]))
        assert below == 5
        assert [n.name for n in tree] == sorted(["赵经理", "孙经理"])
        m1 = next(n for n in tree if n.agent.id == team["m1"])
        assert sorted(n.name for n in m1.children) == sorted(["钱代理", "周代理"])


def test_a_cycle_written_around_the_forms_ends_the_walks(db, insurer, team):
    with company_scope(insurer.id):
        # the director "reports to" an agent below her, written directly in SQL
        db.session.execute(update(Agent).where(Agent.id == team["d"]).values(upline_id=team["a1"]))
        db.session.expire_all()
        chain = agents.upline_chain(db.session.get(Agent, team["a1"]))
        assert [a.id for a in chain] == [team["m1"], team["d"]]  # stops before a1 again
        # everyone is now "below" a1 -- but the walk ends, and a1 is not her own downline
        assert set(agents.downline_ids(team["a1"])) == {
            team[k] for k in ("d", "m1", "m2", "a2", "a3")
        }
        assert set(agents.downline_ids(team["d"])) == {
            team[k] for k in ("m1", "m2", "a1", "a2", "a3")
        }


def test_upline_problem_refuses_self_downline_and_strangers(db, insurer, team, company):
    with company_scope(insurer.id):
        assert agents.upline_problem(team["d"], team["a1"])  # below her: a circle
        assert agents.upline_problem(team["a1"], team["a1"])  # herself
        assert agents.upline_problem(None, 999_999)  # no such agent
        assert agents.upline_problem(team["a1"], team["m2"]) is None  # a move across teams
        assert agents.upline_problem(None, team["a3"]) is None
    other = company(plugins=["insurance"])
    with company_scope(other.id):
        assert agents.upline_problem(None, team["d"])  # another company's agent


def test_agent_for_user_and_names(db, insurer, team, make_user):
    rep = make_user("sales_rep", insurer)
    with company_scope(insurer.id):
        assert agents.agent_for_user(rep.id) is None
        db.session.get(Agent, team["a2"]).user_id = rep.id
        db.session.commit()
        assert agents.agent_for_user(rep.id).id == team["a2"]
        assert agents.agent_names([team["d"], team["a3"]]) == {
            team["d"]: "林总监",
            team["a3"]: "郑代理",
        }
        assert agents.agent_label(team["m2"]) == "孙经理"
        assert agents.agent_names([]) == {}


# -- saving profiles ------------------------------------------------------------------------------


def test_create_with_a_new_channel_or_on_an_existing_one(db, insurer):
    with company_scope(insurer.id):
        bank = Channel(name="中国工商银行", type="bancassurance")
        branch = Channel(name="工行浦东支行", type="bancassurance")
        db.session.add_all([bank, branch])
        db.session.flush()
        branch.parent_id = bank.id
        on_branch = agents.create_agent(
            agents.AgentInput(channel_id=branch.id, licence_number="B1", licence_classes=["life"])
        )
        assert on_branch.channel_id == branch.id
        broker = make_agent(db, "明亚经纪", channel_type="broker", number="BR1")
        channel = db.session.get(Channel, broker.channel_id)
        assert (channel.name, channel.type, channel.status) == ("明亚经纪", "broker", "active")
        with pytest.raises(agents.AgentRefused) as refused:
            agents.create_agent(agents.AgentInput(channel_id=branch.id))
        assert "channel_id" in refused.value.errors  # has a profile already
        with pytest.raises(agents.AgentRefused) as refused:
            agents.create_agent(agents.AgentInput(channel_name="网店", channel_type="internet"))
        assert "channel_type" in refused.value.errors  # internet sells without agents
        with pytest.raises(agents.AgentRefused) as refused:
            agents.create_agent(
                agents.AgentInput(
                    channel_name="新人",
                    channel_type="insurance_agent",
                    licence_number="BR1",
                    licence_classes=[],
                    joined_on=company_today() + timedelta(days=1),
                    status="retired",
                )
            )
        assert set(refused.value.errors) >= {"licence_number", "joined_on", "status"}
        with pytest.raises(agents.AgentRefused) as refused:
            agents.create_agent(
                agents.AgentInput(
                    channel_name="新人", channel_type="insurance_agent", licence_number="N9"
                )
            )
        assert "licence_classes" in refused.value.errors  # a licence covers some class
        assert db.session.scalar(select(func.count()).select_from(Agent)) == 2


# -- pages ----------------------------------------------------------------------------------------


def test_list_filters(client, db, insurer, team, login_as):
    login_as("manager", insurer)
    day = company_today()
    with company_scope(insurer.id):
        db.session.get(Agent, team["a1"]).licence_expires_on = day + timedelta(days=20)
        db.session.get(Agent, team["a2"]).licence_expires_on = day - timedelta(days=3)
        db.session.get(Agent, team["a3"]).status = "suspended"
        broker = make_agent(db, "明亚经纪", channel_type="broker", number="BR1")
        db.session.commit()

    def shown(**args):
        response = client.get("/insurance/agents", query_string=args)
        assert response.status_code == 200, response.get_data(as_text=True)
        html = response.get_data(as_text=True)
        return {i for i in team.values() if f'data-agent="{i}"' in html} | (
            {broker.id} if f'data-agent="{broker.id}"' in html else set()
        )

    assert shown() == {*team.values(), broker.id}
    assert shown(type="broker") == {broker.id}
    assert shown(status="suspended") == {team["a3"]}
    assert shown(team="一组") == {team["m1"], team["a1"], team["a2"]}
    assert shown(expiring=30) == {team["a1"]}
    assert shown(expired=1) == {team["a2"]}
    assert shown(q="L5") == {team["a3"]}
    assert shown(q="周") == {team["a2"]}
    assert shown(upline=team["m1"]) == {team["a1"], team["a2"]}
    assert client.get("/insurance/agents?expiring=abc").status_code == 400
    assert client.get("/insurance/agents?after=garbage").status_code == 400


def test_list_pages_by_keyset_with_constant_queries(app, client, db, insurer, team, login_as):
    login_as("manager", insurer)
    app.config["LIST_PAGE_SIZE"] = 4
    first = client.get("/insurance/agents?sort=expiry").get_data(as_text=True)
    assert first.count("data-agent=") == 4
    import re

    after = re.search(r"after=([A-Za-z0-9_-]+)", first).group(1)
    second = client.get(f"/insurance/agents?sort=expiry&after={after}").get_data(as_text=True)
    assert second.count("data-agent=") == 2
    ids = set(re.findall(r'data-agent="(\d+)"', first + second))
    assert ids == {str(i) for i in team.values()}
    with company_scope(insurer.id):
        for n in range(12):
            make_agent(db, f"新人{n:02d}", number=f"N{n}", upline=db.session.get(Agent, team["d"]))
        db.session.commit()
    client.get("/insurance/agents")
    with QueryCounter(db.engine) as small:
        assert client.get("/insurance/agents").get_data(as_text=True).count("data-agent=") == 4
    app.config["LIST_PAGE_SIZE"] = 50
    with QueryCounter(db.engine) as large:
        html = client.get("/insurance/agents").get_data(as_text=True)
    assert html.count("data-agent=") == 18
    assert large.count == small.count


def test_detail_shows_licence_chain_and_downline(client, db, insurer, team, login_as):
    login_as("manager", insurer)
    html = client.get(f"/insurance/agents/{team['m1']}").get_data(as_text=True)
    assert 'data-licence="L1"' in html
    assert f'data-upline="{team["d"]}"' in html
    assert f'data-downline="{team["a1"]}"' in html and f'data-downline="{team["a2"]}"' in html
    assert f'data-downline="{team["a3"]}"' not in html
    assert 'data-downline-count="2"' in html
    assert client.get("/insurance/agents/999999").status_code == 404


def test_manager_creates_a_profile_with_its_channel(client, db, insurer, team, login_as):
    login_as("manager", insurer)
    assert client.get("/insurance/agents/new").status_code == 200
    day = company_today() + timedelta(days=365)
    response = client.post(
        "/insurance/agents/new",
        data={
            "mode": "new",
            "channel_name": "吴新人",
            "channel_type": "insurance_agent",
            "channel_code": "AG900",
            "licence_number": "0201999",
            "licence_classes": ["life", "accident"],
            "licence_region": "上海",
            "licence_expires_on": day.isoformat(),
            "status": "active",
            "team": "一组",
            "upline_id": str(team["m1"]),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with company_scope(insurer.id):
        agent = db.session.scalar(select(Agent).where(Agent.licence_number == "0201999"))
        assert agent.licence_classes == ["life", "accident"]
        assert agent.upline_id == team["m1"]
        channel = db.session.get(Channel, agent.channel_id)
        assert (channel.name, channel.code, channel.type) == ("吴新人", "AG900", "insurance_agent")
        assert response.headers["Location"].endswith(f"/insurance/agents/{agent.id}")


def test_form_errors_are_shown_and_nothing_is_written(client, db, insurer, team, login_as):
    login_as("manager", insurer)

    def channels():
        with company_scope(insurer.id):
            return db.session.scalar(select(func.count()).select_from(Channel))

    before = channels()
    response = client.post(
        "/insurance/agents/new",
        data={
            "mode": "new",
            "channel_name": "",
            "channel_type": "insurance_agent",
            "licence_number": "L1",
            "licence_classes": ["life"],
            "licence_expires_on": "2026-02-30",
            "upline_id": "abc",
        },
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-field="licence_expires_on"' in html
    assert 'data-field="upline_id"' in html
    response = client.post(
        "/insurance/agents/new",
        data={"mode": "new", "channel_name": "", "channel_type": "insurance_agent",
              "licence_number": "L1", "licence_classes": ["life"]},
    )  # fmt: skip
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'data-field="channel_name"' in html and 'data-field="licence_number"' in html
    assert channels() == before


def test_edit_refuses_a_cycle_and_a_stale_version(client, db, insurer, team, login_as):
    login_as("manager", insurer)
    with company_scope(insurer.id):
        version = db.session.get(Agent, team["d"]).version
    base = {"licence_number": "L0", "licence_classes": ["life"], "status": "active"}
    response = client.post(
        f"/insurance/agents/{team['d']}/edit",
        data={**base, "upline_id": str(team["a3"]), "version": str(version)},
    )
    assert response.status_code == 422
    assert 'data-field="upline_id"' in response.get_data(as_text=True)
    response = client.post(
        f"/insurance/agents/{team['d']}/edit",
        data={**base, "version": str(version - 1 if version > 1 else version + 7)},
    )
    assert response.status_code == 409
    response = client.post(
        f"/insurance/agents/{team['d']}/edit",
        data={**base, "team": "总部", "version": str(version)},
    )
    assert response.status_code == 302
    with company_scope(insurer.id):
        db.session.expire_all()
        row = db.session.get(Agent, team["d"])
        assert (row.team, row.licence_classes, row.version) == ("总部", ["life"], version + 1)


def test_only_managers_change_profiles(client, insurer, team, login_as):
    login_as("sales_rep", insurer)
    assert client.get("/insurance/agents/new").status_code == 403
    assert client.post(f"/insurance/agents/{team['a1']}/edit", data={}).status_code == 403
    assert client.get("/insurance/agents").status_code == 200  # not an agent: reads all


def test_an_agent_sees_themselves_and_their_downline(client, db, insurer, team, login_as):
    rep = login_as("sales_rep", insurer)
    with company_scope(insurer.id):
        db.session.get(Agent, team["m1"]).user_id = rep.id
        db.session.commit()
    html = client.get("/insurance/agents").get_data(as_text=True)
    shown = {i for i in team.values() if f'data-agent="{i}"' in html}
    assert shown == {team["m1"], team["a1"], team["a2"]}
    assert client.get(f"/insurance/agents/{team['a1']}").status_code == 200
    assert client.get(f"/insurance/agents/{team['a3']}").status_code == 403
    assert client.get(f"/insurance/agents/{team['d']}").status_code == 403


def test_the_channel_page_has_the_profile_box(client, db, insurer, team, login_as):
    login_as("manager", insurer)
    with company_scope(insurer.id):
        channel_id = db.session.get(Agent, team["a1"]).channel_id
        bare = Channel(name="待建档经纪", type="broker")
        shop = Channel(name="官网", type="internet")
        db.session.add_all([bare, shop])
        db.session.commit()
        bare_id, shop_id = bare.id, shop.id
    html = client.get(f"/channels/{channel_id}").get_data(as_text=True)
    assert 'data-licence="L3"' in html and f"/insurance/agents/{team['a1']}" in html
    html = client.get(f"/channels/{bare_id}").get_data(as_text=True)
    assert f"/insurance/agents/new?channel_id={bare_id}" in html
    assert "agent-profile-panel" not in client.get(f"/channels/{shop_id}").get_data(as_text=True)
    with company_scope(insurer.id):
        bank = Channel(name="中国工商银行", type="bancassurance")
        db.session.add(bank)
        db.session.flush()
        branch = make_agent(db, "工行浦东支行", channel_type="bancassurance", number="B1",
                            channel_parent_id=bank.id)  # fmt: skip
        db.session.commit()
        bank_id, branch_id = bank.id, branch.id
    html = client.get(f"/channels/{bank_id}").get_data(as_text=True)
    assert f'data-branch-agent="{branch_id}"' in html  # the bank lists its selling branches
    html = client.get(f"/insurance/agents/new?channel_id={bare_id}").get_data(as_text=True)
    assert f'<option value="{bare_id}" selected>' in html


# -- the licence clock ----------------------------------------------------------------------------


def _clock(db, agent_id):
    return db.session.scalar(
        select(Obligation).where(
            Obligation.kind == agents.CLOCK,
            Obligation.subject_type == "insurance_agent",
            Obligation.subject_id == agent_id,
        )
    )


def test_the_clock_follows_the_expiry_and_the_status(db, insurer):
    with company_scope(insurer.id):
        agent = make_agent(db, "钱代理", expires=date(2027, 3, 31))
        db.session.commit()
        row = _clock(db, agent.id)
        # the end of the last valid day, Shanghai time
        assert row.due_at == datetime(2027, 4, 1, tzinfo=SHANGHAI).astimezone(UTC)
        assert row.warn_at == row.due_at - timedelta(days=60)
        agents.update_agent(agent, _input(agent, licence_expires_on=date(2028, 3, 31)))
        db.session.commit()
        assert _clock(db, agent.id).due_at == datetime(2028, 4, 1, tzinfo=SHANGHAI).astimezone(UTC)
        agents.update_agent(agent, _input(agent, status="terminated"))
        db.session.commit()
        assert _clock(db, agent.id) is None
        agents.update_agent(agent, _input(agent, status="active", licence_expires_on=None))
        db.session.commit()
        assert _clock(db, agent.id) is None  # no expiry: no clock
        agents.update_agent(agent, _input(agent, licence_expires_on=date(2027, 1, 1)))
        db.session.commit()
        assert _clock(db, agent.id) is not None


def _input(agent, **changes):
    values = {k: getattr(agent, k) for k in agents._PROFILE_FIELDS}
    values.update(changes)
    return agents.AgentInput(**values)


def _notices(db, company_id):
    with company_scope(company_id):
        return db.session.execute(
            select(Notification.user_id, Notification.link, Notification.created_at).order_by(
                Notification.id
            )
        ).all()


def _simulate(db, start: date, days: int, hour: int = 9) -> dict[date, int]:
    """Run the clock scan once a day at ``hour`` Shanghai time; scans per day → notices."""
    sent: dict[date, int] = {}
    for n in range(days):
        day = start + timedelta(days=n)
        now = datetime.combine(day, time(hour), SHANGHAI).astimezone(UTC)
        with unscoped():
            before = db.session.scalar(select(func.count()).select_from(Notification))
        clocks.scan(now=now)
        with unscoped():
            after = db.session.scalar(select(func.count()).select_from(Notification))
        if after > before:
            sent[day] = after - before
    return sent


requires_dated_clocks = pytest.mark.skipif(
    not hasattr(clocks, "deadline_of"), reason="the core's date-bound clocks are not there yet"
)


@requires_dated_clocks
def test_licence_notices_once_each_at_60_30_7_days_and_at_expiry(db, insurer, make_user):
    """Scans every morning from 70 days before the expiry to 5 days after: the agent's login
    gets exactly four notices -- on the mornings 59, 29 and 6 days before the last valid day
    (the thresholds count back from the end of that day) and the morning after it."""
    user = make_user("sales_rep", insurer)
    expiry = date(2027, 3, 31)
    with company_scope(insurer.id):
        agent = make_agent(db, "钱代理", number="02010001", expires=expiry, user_id=user.id)
        # started long before the simulation (a clock never notifies before its start)
        _clock(db, agent.id).started_at = datetime(2026, 1, 1, tzinfo=UTC)
        db.session.commit()
        agent_id = agent.id
    sent = _simulate(db, expiry - timedelta(days=70), 76)
    assert sent == {
        expiry - timedelta(days=59): 1,
        expiry - timedelta(days=29): 1,
        expiry - timedelta(days=6): 1,
        expiry + timedelta(days=1): 1,
    }
    rows = _notices(db, insurer.id)
    assert {r.user_id for r in rows} == {user.id}
    assert {r.link for r in rows} == {f"/insurance/agents/{agent_id}"}
    with company_scope(insurer.id):
        assert _clock(db, agent_id).escalation_level == 4


@requires_dated_clocks
def test_notices_go_to_managers_without_a_login_and_start_over_after_renewal(
    db, insurer, make_user
):
    manager = make_user("manager", insurer)
    expiry = date(2027, 3, 31)
    with company_scope(insurer.id):
        agent = make_agent(db, "钱代理", number="02010001", expires=expiry)
        _clock(db, agent.id).started_at = datetime(2026, 1, 1, tzinfo=UTC)
        db.session.commit()
    # the 60- and 30-day notices, to the manager
    first = _simulate(db, expiry - timedelta(days=65), 40)
    assert sorted(first) == [expiry - timedelta(days=59), expiry - timedelta(days=29)]
    assert {r.user_id for r in _notices(db, insurer.id)} == {manager.id}
    # renewed for a year: nothing until the new thresholds
    with company_scope(insurer.id):
        agent = db.session.get(Agent, agent.id)
        renewed = expiry + timedelta(days=365)
        agents.update_agent(agent, _input(agent, licence_expires_on=renewed))
        db.session.commit()
        assert _clock(db, agent.id).escalation_level == 0
    later = _simulate(db, expiry - timedelta(days=25), 40)
    assert later == {}


# -- the report -----------------------------------------------------------------------------------


def test_licence_expiry_report_by_month_with_drill_down(client, db, insurer, login_as):
    login_as("manager", insurer)
    day = company_today()
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    with company_scope(insurer.id):
        make_agent(db, "甲", number="A1", expires=month)  # this month (expired unless the 1st)
        make_agent(db, "乙", number="A2", expires=next_month + timedelta(days=3))
        make_agent(db, "丙", number="A3", expires=next_month + timedelta(days=9))
        make_agent(db, "丁", number="A4", expires=next_month, status="terminated")  # left out
        make_agent(db, "戊", number="A5", expires=None)  # no expiry: left out
        db.session.commit()
    from core import reports

    with company_scope(insurer.id):
        report = reports.get("insurance_licence_expiry")
        params, errors = reports.parse(report, {})
        assert not errors
        rows = {r["month"]: r for r in reports.run(report, params).rows}
    this, nxt = month.strftime("%Y-%m"), next_month.strftime("%Y-%m")
    expired_now = 1 if month < day else 0
    assert (rows[this]["expired"], rows[this]["expiring"]) == (expired_now, 1 - expired_now)
    assert (rows[nxt]["expired"], rows[nxt]["expiring"], rows[nxt]["total"]) == (0, 2, 2)
    html = client.get("/reports/insurance_licence_expiry").get_data(as_text=True)
    assert "/insurance/agents?expires_from=" in html
    drill = client.get(
        f"/insurance/agents?expires_from={next_month.isoformat()}"
        f"&expires_to={(next_month + timedelta(days=27)).isoformat()}&status=current"
    ).get_data(as_text=True)
    assert drill.count("data-agent=") == 2


# -- API ------------------------------------------------------------------------------------------


def _bearer(user, company):
    _row, secret = tokens.issue(user, company.id, "api")
    return {"Authorization": f"Bearer {secret}"}


def test_api_lists_creates_and_refuses(client, db, insurer, team, make_user):
    manager = make_user("manager", insurer)
    rep = make_user("sales_rep", insurer)
    head = _bearer(manager, insurer)
    response = client.get("/api/v1/insurance_agents?status=active&limit=3", headers=head)
    assert response.status_code == 200
    body = response.get_json()
    assert body["count"] == 6 and len(body["data"]) == 3 and body["next_after"]
    item = client.get(f"/api/v1/insurance_agents/{team['a1']}", headers=head).get_json()
    assert (item["name"], item["channel_type"], item["licence_number"]) == (
        "钱代理",
        "insurance_agent",
        "L3",
    )
    with company_scope(insurer.id):
        branch = Channel(name="工行支行", type="bancassurance")
        db.session.add(branch)
        db.session.commit()
        branch_id = branch.id
    created = client.post(
        "/api/v1/insurance_agents",
        json={"channel_id": branch_id, "licence_number": "B77", "licence_classes": ["life"],
              "licence_expires_on": "2028-01-31", "upline_id": team["d"]},
        headers=head,
    )  # fmt: skip
    assert created.status_code == 201, created.get_json()
    new_id = created.get_json()["id"]
    with company_scope(insurer.id):
        assert _clock(db, new_id) is not None
    bad = client.patch(
        f"/api/v1/insurance_agents/{team['d']}", json={"upline_id": team["a3"]}, headers=head
    )
    assert bad.status_code == 422 and "upline_id" in bad.get_json()["error"]["fields"]
    bad = client.post(
        "/api/v1/insurance_agents",
        json={"channel_id": branch_id, "licence_classes": ["yacht"]},
        headers=head,
    )
    assert bad.status_code == 422
    refused = client.patch(
        f"/api/v1/insurance_agents/{team['a1']}", json={"team": "x"}, headers=_bearer(rep, insurer)
    )
    assert refused.status_code == 403
    with company_scope(insurer.id):
        db.session.get(Agent, team["m2"]).user_id = rep.id
        db.session.commit()
    listed = client.get("/api/v1/insurance_agents", headers=_bearer(rep, insurer)).get_json()
    assert {a["id"] for a in listed["data"]} == {team["m2"], team["a3"]}  # self and downline


def test_nothing_for_a_company_without_insurance(client, db, company, login_as, make_user):
    plain = company(plugins=["sales"])
    login_as("admin", plain)
    with company_scope(plain.id):
        channel = Channel(name="代理", type="agent")
        db.session.add(channel)
        db.session.commit()
    for url in ("/insurance/agents", "/insurance/agents/new", "/insurance/agents/1",
                "/reports/insurance_licence_expiry"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert "agent-profile-panel" not in client.get(f"/channels/{channel.id}").get_data(as_text=True)
    admin = make_user("admin", plain)
    assert client.get("/api/v1/insurance_agents", headers=_bearer(admin, plain)).status_code == 404
