"""Surveys (DOMAIN §3 satisfaction surveys): questionnaires built in code, results by dimension
against a hand-computed fixture, CSAT and NPS, segment invitations (one INSERT … SELECT, opted-out
customers skipped), one-time tokens, phone entry, answer validation, the ticket_closed trigger."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm.attributes import set_committed_value

from core import consent, workflow
from core.fields import side_table
from core.models import Customer, ServiceTicket
from core.tenancy import company_scope
from core.testing import QueryCounter
from core.tickets import open_ticket
from plugins.surveys import campaigns, questionnaires, results
from plugins.surveys.models import Answer, Invitation, Response

DIMS = [("speed", "Speed", "速度"), ("quality", "Quality", "质量")]


def build(db, name="满意度"):
    """Questionnaire: a1, a2 (speed), b (quality), r (NPS), c (single), m (multiple), t (text)."""
    q = questionnaires.create_questionnaire(
        name,
        dimensions=DIMS,
        sections=[
            {
                "title": "评分",
                "questions": [
                    {"text": "a1", "kind": "rating", "dimension": "speed"},
                    {"text": "a2", "kind": "rating", "dimension": "speed"},
                    {"text": "b", "kind": "rating", "dimension": "quality"},
                ],
            },
            {
                "title": "其他",
                "questions": [
                    {"text": "r", "kind": "nps"},
                    {"text": "c", "kind": "single", "options": ["电话", "微信"]},
                    {"text": "m", "kind": "multiple", "options": ["x", "y", "z"],
                     "required": False},
                    {"text": "t", "kind": "text", "required": False},
                ],
            },
        ],
    )  # fmt: skip
    db.session.flush()
    return q, {x.text: x.id for x in questionnaires.questions_of(q.id)}


def customers(db, n, **values):
    rows = [Customer(name=f"客户{i}", status="existing", **values) for i in range(n)]
    db.session.add_all(rows)
    db.session.flush()
    return [c.id for c in rows]


def opt_out(db, customer_id, value=True, channels=("phone", "sms", "email", "wechat")):
    """The customer refuses surveys (``value``) or agrees to them on ``channels``."""
    for channel in channels:
        consent.record(customer_id, channel, "survey", not value, "电话")


@pytest.fixture
def surveyed(company):
    return company(plugins=["surveys"])


# -- questionnaires --------------------------------------------------------------------------------


def test_questionnaire_is_built_in_one_call_in_order(db, surveyed):
    with company_scope(surveyed.id):
        q, ids = build(db)
        found = questionnaires.questions_of(q.id)
        assert [x.text for x in found] == ["a1", "a2", "b", "r", "c", "m", "t"]
        assert [d.code for d in q.dimensions] == ["speed", "quality"]
        assert found[4].options == ["电话", "微信"] and found[5].required is False


def test_questionnaire_refusals_name_the_place(db, surveyed):
    with company_scope(surveyed.id):
        with pytest.raises(questionnaires.QuestionnaireRefused) as refused:
            questionnaires.create_questionnaire(
                " ",
                dimensions=[("Bad Code", "x", "x"), ("ok", "", "")],
                sections=[
                    {
                        "title": "s",
                        "questions": [
                            {"text": "q", "kind": "slider"},
                            {"text": "q", "kind": "single", "options": ["only one"]},
                            {"text": "q", "kind": "rating", "dimension": "nope"},
                        ],
                    }
                ],
            )
        assert set(refused.value.errors) == {
            "name",
            "dimensions.0",
            "dimensions.1",
            "sections.0.questions.0.kind",
            "sections.0.questions.1.options",
            "sections.0.questions.2.dimension",
        }


# -- results: the hand-computed fixture ------------------------------------------------------------

#: (answered at UTC, a1, a2, b, nps). The third is 1 Feb 04:00 in Shanghai (the company's zone).
FIXTURE = [
    (datetime(2026, 1, 10, 3, 0, tzinfo=UTC), 5, 3, 4, 10),
    (datetime(2026, 1, 20, 3, 0, tzinfo=UTC), 4, 2, 1, 6),
    (datetime(2026, 1, 31, 20, 0, tzinfo=UTC), 1, 5, 5, 8),
    (datetime(2026, 4, 2, 3, 0, tzinfo=UTC), 4, 4, 2, 9),
]


@pytest.fixture
def answered(db, surveyed):
    with company_scope(surveyed.id):
        q, ids = build(db)
        campaign = campaigns.create_campaign(q, "一季度", starts_on=date(2026, 1, 1))
        campaigns.launch_campaign(campaign)
        people = customers(db, len(FIXTURE))
        campaigns.invite(campaign, people)
        invitations = db.session.scalars(select(Invitation).order_by(Invitation.customer_id)).all()
        for invitation, (at, a1, a2, b, r) in zip(invitations, FIXTURE, strict=True):
            campaigns.record_response(
                invitation,
                {ids["a1"]: a1, ids["a2"]: str(a2), ids["b"]: b, ids["r"]: r, ids["c"]: "微信"},
                at=at,
            )
        db.session.commit()
        return q, campaign


def rows(found):
    return [(r.period, r.code, r.answers, r.average, r.csat) for r in found]


def test_results_by_dimension_match_the_hand_computed_fixture(db, surveyed, answered):
    q, campaign = answered
    with company_scope(surveyed.id):
        assert rows(results.results_by_dimension(campaign, "month")) == [
            ("2026-01", "speed", 4, 3.5, 50.0),  # 5 3 4 2
            ("2026-01", "quality", 2, 2.5, 50.0),  # 4 1
            ("2026-02", "speed", 2, 3.0, 50.0),  # 1 5 (31 Jan 20:00 UTC is February in Shanghai)
            ("2026-02", "quality", 1, 5.0, 100.0),  # 5
            ("2026-04", "speed", 2, 4.0, 100.0),  # 4 4
            ("2026-04", "quality", 1, 2.0, 0.0),  # 2
        ]
        assert rows(results.results_by_dimension(q, "quarter")) == [
            ("2026-Q1", "speed", 6, 3.33, 50.0),  # 20 / 6; 5 4 5 of six
            ("2026-Q1", "quality", 3, 3.33, 66.7),  # 10 / 3; 4 5 of three
            ("2026-Q2", "speed", 2, 4.0, 100.0),
            ("2026-Q2", "quality", 1, 2.0, 0.0),
        ]
        assert rows(results.results_by_dimension(campaign, None)) == [
            (None, "speed", 8, 3.5, 62.5),  # 28 / 8; five of eight are 4-5
            (None, "quality", 4, 3.0, 50.0),
        ]
        assert rows(results.results_by_dimension(campaign, "month", start=date(2026, 2, 1))) == [
            ("2026-02", "speed", 2, 3.0, 50.0),
            ("2026-02", "quality", 1, 5.0, 100.0),
            ("2026-04", "speed", 2, 4.0, 100.0),
            ("2026-04", "quality", 1, 2.0, 0.0),
        ]


def test_csat_and_nps(db, surveyed, answered):
    q, campaign = answered
    with company_scope(surveyed.id):
        score = results.csat(campaign)
        assert (score.answers, score.satisfied, score.value) == (12, 7, 58.3)
        promoters = results.nps(q)  # 10 6 8 9: two promoters, one passive, one detractor
        assert (promoters.answers, promoters.promoters, promoters.passives) == (4, 2, 1)
        assert (promoters.detractors, promoters.value) == (1, 25.0)
        january = results.nps(campaign, end=date(2026, 1, 31))  # 10 and 6
        assert (january.answers, january.value) == (2, 0.0)
        assert results.csat(campaign, start=date(2027, 1, 1)).value is None


def test_scores_by_campaign_in_one_statement(db, surveyed, answered):
    q, campaign = answered
    with company_scope(surveyed.id):
        other = campaigns.create_campaign(q, "空的")
        row = {r["value"]: r for r in db.session.execute(results.scores_statement([])).mappings()}
        assert row[campaign.id]["invited"] == 4 and row[campaign.id]["responses"] == 4
        assert round(row[campaign.id]["csat"], 4) == round(7 / 12, 4)
        assert round(row[campaign.id]["nps"], 1) == 25.0
        assert row[other.id]["responses"] == 0 and row[other.id]["nps"] is None


# -- invitations -----------------------------------------------------------------------------------


def test_a_refusal_on_one_channel_stops_invitations_by_that_channel_only(db, surveyed):
    with company_scope(surveyed.id):
        q, _ids = build(db)
        by_phone, by_sms, agreed = customers(db, 3)
        db.session.execute(
            insert(side_table("surveys", "customer")),
            [
                {"id": by_phone, "preferred_channel": "phone"},
                {"id": by_sms, "preferred_channel": "sms"},
                {"id": agreed, "preferred_channel": "phone"},
            ],
        )
        for customer_id in (by_phone, by_sms):
            opt_out(db, customer_id, channels=("phone",))
        opt_out(db, agreed, False, channels=("phone",))  # an explicit yes changes nothing
        campaign = campaigns.create_campaign(q, "回访", channel="sms")
        assert campaigns.launch_campaign(campaign) == 2
        invited = db.session.scalars(select(Invitation.customer_id)).all()
        assert sorted(invited) == sorted([by_sms, agreed])
        # the customer changes their mind: the next invitation by id goes out
        opt_out(db, by_phone, False, channels=("phone",))
        assert campaigns.invite(campaign, [by_phone]) == 1


def test_segment_launch_invites_the_audience_but_not_the_opted_out(db, surveyed, company):
    with company_scope(surveyed.id):
        q, _ids = build(db)
        consumers = customers(db, 5, kind="consumer")
        businesses = customers(db, 3, kind="business")
        opt_out(db, consumers[0])
        opt_out(db, consumers[1], False)
        db.session.execute(
            insert(side_table("surveys", "customer")).values(
                id=consumers[2], preferred_channel="wechat"
            )
        )
        campaign = campaigns.create_campaign(
            q, "消费客户", audience={"kind": ["consumer"]}, channel="sms"
        )
        assert campaigns.launch_campaign(campaign) == 4
        invited = dict(db.session.execute(select(Invitation.customer_id, Invitation.channel)).all())
        assert set(invited) == set(consumers[1:])
        assert invited[consumers[2]] == "wechat" and invited[consumers[3]] == "sms"
        assert not set(invited) & set(businesses)
        # inviting again adds no one twice; the opted-out stays out even by id
        assert campaigns.invite(campaign, consumers + businesses[:1]) == 1
        assert db.session.scalar(select(func.count(Invitation.id))) == 5
        tokens = db.session.scalars(select(Invitation.token_hash)).all()
        assert all(t and len(t) == 64 for t in tokens) and len(set(tokens)) == 5
    other = company(plugins=["surveys"])
    with company_scope(other.id):  # another company's customers are never invited
        assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_inviting_many_takes_as_many_statements_as_inviting_few(db, surveyed):
    counts = []
    with company_scope(surveyed.id):
        q, _ids = build(db)
        for n in (3, 60):
            campaign = campaigns.create_campaign(q, f"批量{n}")
            people = customers(db, n)
            db.session.flush()
            with QueryCounter(db.engine) as counter:
                assert campaigns.invite(campaign, people) == n
            counts.append(counter.count)
    assert counts[0] == counts[1]


def test_a_campaign_refuses_bad_settings(db, surveyed):
    with company_scope(surveyed.id):
        q, _ids = build(db)
        with pytest.raises(campaigns.CampaignRefused) as refused:
            campaigns.create_campaign(
                q,
                "",
                trigger="whenever",
                audience={"kind": ["alien"], "shoe_size": ["42"]},
                channel="pigeon",
                starts_on=date(2026, 5, 1),
                ends_on=date(2026, 4, 1),
            )
        assert set(refused.value.errors) == {
            "name",
            "trigger",
            "audience",
            "audience.kind",
            "channel",
            "ends_on",
        }


# -- tokens and responses --------------------------------------------------------------------------


def test_token_is_one_time_and_stored_only_as_its_hash(db, surveyed, app):
    with company_scope(surveyed.id):
        q, ids = build(db)
        campaign = campaigns.create_campaign(q, "令牌")
        campaigns.launch_campaign(campaign)
        (person,) = customers(db, 1)
        campaigns.invite(campaign, [person])
        invitation = db.session.scalar(select(Invitation))
        token = campaigns.token_for(invitation.id)
        assert token not in invitation.token_hash and invitation.token_hash == campaigns.digest(
            token
        )
        assert campaigns.invitation_for_token(token).id == invitation.id
        assert campaigns.invitation_for_token(token[:-1] + "A") is None
        good = {ids["a1"]: 5, ids["a2"]: 4, ids["b"]: 3, ids["r"]: 9, ids["c"]: "电话"}
        campaigns.record_response(invitation, good)
        with pytest.raises(campaigns.AlreadyAnswered):
            campaigns.record_response(invitation, good)
        db.session.commit()
        assert db.session.scalar(select(func.count(Response.id))) == 1
        assert invitation.answered_at is not None


def test_a_stale_copy_of_an_invitation_cannot_answer_twice(db, surveyed):
    """Two submissions racing: the second sees answered_at empty in memory, but the conditional
    UPDATE refuses it."""
    with company_scope(surveyed.id):
        q, ids = build(db)
        campaign = campaigns.create_campaign(q, "并发")
        campaigns.launch_campaign(campaign)
        campaigns.invite(campaign, customers(db, 1))
        invitation = db.session.scalar(select(Invitation))
        good = {ids["a1"]: 5, ids["a2"]: 4, ids["b"]: 3, ids["r"]: 9, ids["c"]: "电话"}
        campaigns.record_response(invitation, good)
        set_committed_value(invitation, "answered_at", None)  # as a second request read it
        with pytest.raises(campaigns.AlreadyAnswered):
            campaigns.record_response(invitation, good)
        assert db.session.scalar(select(func.count(Response.id))) == 1


def test_phone_entry_keeps_who_entered_it_and_every_kind_of_answer(db, surveyed, make_user):
    agent = make_user("service_agent", surveyed)
    with company_scope(surveyed.id):
        q, ids = build(db)
        campaign = campaigns.create_campaign(q, "电话")
        campaigns.launch_campaign(campaign)
        campaigns.invite(campaign, customers(db, 1))
        invitation = db.session.scalar(select(Invitation))
        response = campaigns.record_response(
            invitation,
            {
                ids["a1"]: 2, ids["a2"]: 3, ids["b"]: 4, ids["r"]: 0, ids["c"]: "微信",
                ids["m"]: ["z", "x"], ids["t"]: "  太慢了 ",
            },
            user=agent,
        )  # fmt: skip
        assert (response.mode, response.user_id) == ("phone", agent.id)
        got = db.session.execute(
            select(Answer.question_id, Answer.score, Answer.choice, Answer.text).order_by(Answer.id)
        ).all()
        assert (ids["m"], None, "x", None) in got and (ids["m"], None, "z", None) in got
        assert (ids["t"], None, None, "太慢了") in got and (ids["r"], 0, None, None) in got


def test_bad_answers_are_refused_by_question(db, surveyed):
    with company_scope(surveyed.id):
        q, ids = build(db)
        campaign = campaigns.create_campaign(q, "校验")
        campaigns.launch_campaign(campaign)
        campaigns.invite(campaign, customers(db, 1))
        invitation = db.session.scalar(select(Invitation))
        with pytest.raises(campaigns.AnswersRefused) as refused:
            campaigns.record_response(
                invitation,
                {
                    ids["a1"]: 6, ids["a2"]: "x", ids["b"]: "", ids["r"]: 11, ids["c"]: "信鸽",
                    ids["m"]: ["w"], ids["t"]: "长" * 2001, 999999: 1,
                },
            )  # fmt: skip
        assert set(refused.value.errors) == {
            ids["a1"], ids["a2"], ids["b"], ids["r"], ids["c"], ids["m"], ids["t"], 0,
        }  # fmt: skip
        assert invitation.answered_at is None
        assert db.session.scalar(select(func.count(Response.id))) == 0


def test_a_finished_campaign_takes_no_answers(db, surveyed):
    with company_scope(surveyed.id):
        q, ids = build(db)
        campaign = campaigns.create_campaign(q, "结束")
        campaigns.launch_campaign(campaign)
        campaigns.invite(campaign, customers(db, 1))
        campaigns.finish_campaign(campaign)
        with pytest.raises(campaigns.CampaignClosed):
            campaigns.record_response(db.session.scalar(select(Invitation)), {})
        with pytest.raises(campaigns.CampaignRefused):
            campaigns.launch_campaign(campaign)


# -- after a ticket closes -------------------------------------------------------------------------


def close(ticket, user):
    steps = ("resolve", "close") if ticket.state == "in_progress" else ("start", "resolve", "close")
    for step in steps:
        workflow.transition(ticket, step, user=user, inputs={"comment": "好了"})


def test_closing_a_ticket_invites_its_customer(db, company, make_user):
    surveyed = company(plugins=["surveys"])
    plain = company()
    for target in (surveyed, plain):
        agent = make_user("service_agent", target)
        with company_scope(target.id):
            if target is surveyed:
                q, _ids = build(db)
                repairs = campaigns.create_campaign(
                    q, "报修回访", trigger="ticket_closed", ticket_types=["repair"]
                )
                anything = campaigns.create_campaign(q, "全部回访", trigger="ticket_closed")
                draft = campaigns.create_campaign(q, "草稿", trigger="ticket_closed")
                campaigns.launch_campaign(repairs)
                campaigns.launch_campaign(anything)
            happy, shy = customers(db, 2)
            if target is surveyed:
                opt_out(db, shy)
            repair = open_ticket(customer_id=happy, subject="漏水", type="repair")
            question = open_ticket(customer_id=happy, subject="咨询", type="inquiry")
            refused = open_ticket(customer_id=shy, subject="漏水", type="repair")
            for ticket in (repair, question, refused):
                close(ticket, agent)
            db.session.commit()
            found = db.session.execute(
                select(Invitation.campaign_id, Invitation.ticket_id, Invitation.customer_id)
            ).all()
            if target is plain:
                assert found == []
                continue
            assert sorted(found) == sorted(
                [
                    (repairs.id, repair.id, happy),
                    (anything.id, repair.id, happy),
                    (anything.id, question.id, happy),
                ]
            )
            assert not any(c == draft.id for c, _t, _u in found)
            # reopened and closed again: still one invitation per ticket and campaign
            workflow.transition(repair, "reopen", user=agent, inputs={"comment": "又漏了"})
            close(repair, agent)
            assert (
                db.session.scalar(
                    select(func.count(Invitation.id)).where(Invitation.ticket_id == repair.id)
                )
                == 2
            )
            assert db.session.get(ServiceTicket, repair.id).state == "closed"


def test_a_campaign_outside_its_period_invites_nobody(db, surveyed, make_user):
    agent = make_user("service_agent", surveyed)
    with company_scope(surveyed.id):
        q, _ids = build(db)
        old = campaigns.create_campaign(
            q,
            "去年",
            trigger="ticket_closed",
            starts_on=date(2020, 1, 1),
            ends_on=date(2020, 12, 31),
        )
        campaigns.launch_campaign(old)
        (person,) = customers(db, 1)
        close(open_ticket(customer_id=person, subject="x", type="repair"), agent)
        assert db.session.scalar(select(func.count(Invitation.id))) == 0
