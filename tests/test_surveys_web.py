"""Survey pages: 404 without the plugin, the public one-time answer page (used, unknown and
invalid answers), staff phone entry, the campaign and questionnaire forms with their errors, the
campaign page and reports, an invitation list whose query count does not grow with its size."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from core import consent
from core.models import Customer
from core.tenancy import company_scope
from core.testing import QueryCounter
from plugins.surveys import campaigns
from plugins.surveys.models import Campaign, Invitation, Question, Questionnaire, Response
from tests.test_surveys import build, customers


@pytest.fixture
def surveyed(company):
    return company(plugins=["surveys"])


def running(db, company, n=1):
    """A launched campaign with ``n`` invited customers; returns (campaign id, question ids,
    invitation ids)."""
    with company_scope(company.id):
        q, ids = build(db)
        campaign = campaigns.create_campaign(q, "回访")
        campaigns.launch_campaign(campaign)
        campaigns.invite(campaign, customers(db, n))
        db.session.commit()
        invitations = db.session.scalars(select(Invitation.id).order_by(Invitation.id)).all()
        return campaign.id, ids, invitations


def link(company, invitation_id):
    with company_scope(company.id):
        return f"/p/{company.code}/surveys/{campaigns.token_for(invitation_id)}"


def good(ids):
    return {f"q{ids['a1']}": "5", f"q{ids['a2']}": "4", f"q{ids['b']}": "3",
            f"q{ids['r']}": "9", f"q{ids['c']}": "微信", f"q{ids['m']}": ["x", "y"]}  # fmt: skip


def test_pages_exist_only_for_companies_with_the_plugin(client, db, company, login_as):
    plain = company()
    with_plugin = company(plugins=["surveys"])
    _cid, _ids, invitations = running(db, with_plugin)
    login_as("manager", plain)
    for url in ("/surveys/campaigns", "/surveys/questionnaires", "/reports/surveys_scores"):
        assert client.get(url).status_code == 404, url
    assert client.get(f"/p/{plain.code}/surveys/{'x' * 43}").status_code == 404
    assert client.get(f"/p/nosuchcompany/surveys/{'x' * 43}").status_code == 404
    # a company's token under another company's code is unknown there
    token = link(with_plugin, invitations[0]).rsplit("/", 1)[1]
    third = company(plugins=["surveys"])
    assert client.get(f"/p/{third.code}/surveys/{token}").status_code == 404
    login_as("manager", with_plugin)
    for url in ("/surveys/campaigns", "/surveys/questionnaires", "/reports/surveys_scores"):
        assert client.get(url).status_code == 200, url


def test_the_public_link_answers_once(client, db, surveyed):
    campaign_id, ids, invitations = running(db, surveyed)
    url = link(surveyed, invitations[0])
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "a1" in html and f'name="q{ids["m"]}"' in html
    assert client.get(url[:-2] + "zz").status_code == 404
    bad = client.post(url, data={**good(ids), f"q{ids['a1']}": "7", f"q{ids['c']}": ""})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert f'data-field="q{ids["a1"]}"' in html and f'data-field="q{ids["c"]}"' in html
    assert f'data-field="q{ids["b"]}"' not in html
    assert 'value="4" checked' in html  # what was given is kept
    done = client.post(url, data=good(ids))
    assert done.status_code == 200 and "survey-done thanks" in done.get_data(as_text=True)
    again = client.get(url)
    assert again.status_code == 410
    assert re.search("already answered|已经填写|已填写|已答", again.get_data(as_text=True))
    assert client.post(url, data=good(ids)).status_code == 410
    with company_scope(surveyed.id):
        response = db.session.scalar(select(Response))
        assert (response.mode, response.user_id) == ("link", None)


def test_a_finished_campaign_link_says_closed(client, db, surveyed):
    campaign_id, ids, invitations = running(db, surveyed)
    with company_scope(surveyed.id):
        campaigns.finish_campaign(db.session.get(Campaign, campaign_id))
        db.session.commit()
    assert client.get(link(surveyed, invitations[0])).status_code == 410


def test_staff_enter_answers_taken_on_the_phone(client, db, surveyed, login_as):
    campaign_id, ids, invitations = running(db, surveyed)
    agent = login_as("service_agent", surveyed)
    url = f"/surveys/invitations/{invitations[0]}/phone"
    assert client.get(url).status_code == 200
    bad = client.post(url, data={f"q{ids['a1']}": "5"})
    assert bad.status_code == 422 and f'data-field="q{ids["a2"]}"' in bad.get_data(as_text=True)
    assert client.post(url, data=good(ids)).status_code == 302
    with company_scope(surveyed.id):
        response = db.session.scalar(select(Response))
        assert (response.mode, response.user_id) == ("phone", agent.id)
    assert client.post(url, data=good(ids)).status_code == 409
    login_as("viewer", surveyed)
    assert client.get(url).status_code == 403


def test_new_campaign_form_launches_a_segment_and_shows_errors(client, db, surveyed, login_as):
    login_as("manager", surveyed)
    with company_scope(surveyed.id):
        q, _ids = build(db)
        customers(db, 3, kind="consumer")
        customers(db, 2, kind="business")
        db.session.commit()
        q_id = q.id
    assert client.get(f"/surveys/campaigns/new?questionnaire_id={q_id}").status_code == 200
    bad = client.post(
        "/surveys/campaigns/new",
        data={"questionnaire_id": "", "name": "", "trigger": "segment", "channel": "sms",
              "starts_on": "2026-13-01", "kind": ["alien"]},
    )  # fmt: skip
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    for field in ("questionnaire_id", "starts_on"):
        assert f'data-field="{field}"' in html, field
    bad = client.post(
        "/surveys/campaigns/new",
        data={"questionnaire_id": str(q_id), "name": "", "trigger": "segment",
              "channel": "sms", "kind": ["alien"]},
    )  # fmt: skip
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert 'data-field="name"' in html and 'data-field="audience.kind"' in html
    made = client.post(
        "/surveys/campaigns/new",
        data={"questionnaire_id": str(q_id), "name": "消费客户调查", "trigger": "segment",
              "channel": "sms", "kind": ["consumer"], "launch": "1"},
    )  # fmt: skip
    assert made.status_code == 302
    with company_scope(surveyed.id):
        campaign = db.session.scalar(select(Campaign))
        assert (campaign.state, campaign.audience) == ("running", {"kind": ["consumer"]})
        assert db.session.scalar(select(func.count(Invitation.id))) == 3
    login_as("viewer", surveyed)
    assert client.get("/surveys/campaigns/new").status_code == 403


def test_campaign_page_and_reports_show_the_results(client, db, surveyed, login_as):
    campaign_id, ids, invitations = running(db, surveyed, n=2)
    with company_scope(surveyed.id):
        for invitation_id, (a1, r) in zip(invitations, ((5, 10), (2, 3)), strict=True):
            campaigns.record_response(
                db.session.get(Invitation, invitation_id),
                {ids["a1"]: a1, ids["a2"]: 4, ids["b"]: 4, ids["r"]: r, ids["c"]: "电话"},
            )
        db.session.commit()
        q_id = db.session.scalar(select(Questionnaire.id))
    login_as("manager", surveyed)
    html = client.get(f"/surveys/campaigns/{campaign_id}").get_data(as_text=True)
    assert 'data-kpi="rate">100.0%' in html
    assert 'data-kpi="csat">83.3%' in html  # 5 4 4 / 2 4 4: five of six
    assert 'data-kpi="nps">0.0' in html  # one promoter, one detractor
    assert "<svg" in html and 'data-dimension="speed"' in html
    quarter = client.get(f"/surveys/campaigns/{campaign_id}?period=quarter")
    assert quarter.status_code == 200
    report = client.get(f"/reports/surveys_dimensions?questionnaire={q_id}&period=quarter")
    assert report.status_code == 200 and "<svg" in report.get_data(as_text=True)
    scores = client.get("/reports/surveys_scores").get_data(as_text=True)
    assert "回访" in scores and "83.3%" in scores
    assert client.get("/reports/surveys_dimensions?period=year").status_code == 400


def test_invitation_list_queries_do_not_grow_with_its_size(client, db, company, login_as):
    counts = []
    for n in (2, 40):
        target = company(plugins=["surveys"])
        campaign_id, _ids, invitations = running(db, target, n=n)
        login_as("manager", target)
        client.get(f"/surveys/campaigns/{campaign_id}/invitations")  # warm caches
        with QueryCounter(db.engine) as counter:
            page = client.get(f"/surveys/campaigns/{campaign_id}/invitations")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and html.count("data-invitation=") == n
        assert link(target, invitations[-1]) in html
        counts.append(counter.count)
    assert counts[0] == counts[1]


def test_invitation_list_pages_and_filters(client, db, surveyed, login_as, app):
    app.config["LIST_PAGE_SIZE"] = 3
    campaign_id, ids, invitations = running(db, surveyed, n=5)
    login_as("manager", surveyed)
    first = client.get(f"/surveys/campaigns/{campaign_id}/invitations").get_data(as_text=True)
    assert first.count("data-invitation=") == 3
    after = re.search(r"after=(\d+)", first).group(1)
    rest = client.get(f"/surveys/campaigns/{campaign_id}/invitations?after={after}")
    assert rest.get_data(as_text=True).count("data-invitation=") == 2
    assert client.get(f"/surveys/campaigns/{campaign_id}/invitations?state=x").status_code == 400
    answered = client.get(f"/surveys/campaigns/{campaign_id}/invitations?state=answered")
    assert answered.get_data(as_text=True).count("data-invitation=") == 0


def test_questionnaire_editor(client, db, surveyed, login_as):
    login_as("manager", surveyed)
    made = client.post("/surveys/questionnaires/new", data={"name": "物业满意度"})
    assert made.status_code == 302
    assert client.post("/surveys/questionnaires/new", data={"name": ""}).status_code == 422
    with company_scope(surveyed.id):
        q_id = db.session.scalar(select(Questionnaire.id))
    base = f"/surveys/questionnaires/{q_id}"
    dimension = {"code": "clean", "label": "Cleaning", "label_zh": "保洁"}
    assert client.post(f"{base}/dimensions", data=dimension).status_code == 302
    dup = client.post(f"{base}/dimensions", data={"code": "clean", "label": "x"})
    assert dup.status_code == 422 and 'data-field="code"' in dup.get_data(as_text=True)
    assert client.post(f"{base}/sections", data={"title": "服务"}).status_code == 302
    with company_scope(surveyed.id):
        section_id = db.session.get(Questionnaire, q_id).sections[0].id
    question = {"section_id": str(section_id), "kind": "rating", "text": "保洁满意吗？",
                "dimension": "clean", "required": "1"}  # fmt: skip
    assert client.post(f"{base}/questions", data=question).status_code == 302
    bad = client.post(f"{base}/questions", data={**question, "kind": "single", "options": "一"})
    assert bad.status_code == 422 and 'data-field="options"' in bad.get_data(as_text=True)
    html = client.get(base).get_data(as_text=True)
    assert "保洁满意吗？" in html and 'data-dimension="clean"' in html
    with company_scope(surveyed.id):
        question_id = db.session.scalar(select(Question.id))
    assert client.post(f"/surveys/questions/{question_id}/delete").status_code == 302
    login_as("viewer", surveyed)
    assert client.get(base).status_code == 200
    assert client.post(f"{base}/sections", data={"title": "x"}).status_code == 403


def test_a_question_with_answers_cannot_be_removed(client, db, surveyed, login_as):
    campaign_id, ids, invitations = running(db, surveyed)
    with company_scope(surveyed.id):
        campaigns.record_response(
            db.session.get(Invitation, invitations[0]),
            {ids["a1"]: 5, ids["a2"]: 4, ids["b"]: 4, ids["r"]: 9, ids["c"]: "电话"},
        )
        db.session.commit()
    login_as("manager", surveyed)
    refused = client.post(f"/surveys/questions/{ids['a1']}/delete")
    assert refused.status_code == 409 and 'data-field="delete"' in refused.get_data(as_text=True)


def test_menu_groups_the_survey_pages(client, db, surveyed, login_as):
    login_as("manager", surveyed)
    html = client.get("/surveys/campaigns").get_data(as_text=True)
    assert "调查" in html and "/surveys/questionnaires" in html
    with company_scope(surveyed.id):
        assert db.session.scalar(select(func.count(Customer.id))) == 0


def test_demo_rows_fill_the_pages(client, db, surveyed, make_user, login_as):
    from plugins.surveys import demo, results

    agent = make_user("service_agent", surveyed)
    with company_scope(surveyed.id):
        people = customers(db, 30)
        from core import workflow
        from core.tickets import open_ticket

        ticket = open_ticket(customer_id=people[0], subject="报修", type="repair")
        for step in ("start", "resolve", "close"):
            workflow.transition(ticket, step, user=agent, inputs={"comment": "好"})
        demo.seed(surveyed, None)
        db.session.commit()
        campaign = db.session.scalar(select(Campaign))
        assert (campaign.trigger, campaign.state) == ("ticket_closed", "running")
        assert (
            db.session.scalar(
                select(func.count(Invitation.id)).where(Invitation.ticket_id == ticket.id)
            )
            == 1
        )
        modes = set(db.session.scalars(select(Response.mode)))
        assert modes == {"link", "phone"}
        months = {r.period for r in results.results_by_dimension(campaign, "month")}
        assert len(months) >= 4
        assert results.nps(campaign).answers > 10
    login_as("manager", surveyed)
    assert client.get(f"/surveys/campaigns/{campaign.id}").status_code == 200


def test_answer_submissions_are_rate_limited(client, db, surveyed, monkeypatch):
    from plugins.surveys import public

    monkeypatch.setattr(public, "LIMIT", "2/hour")
    _cid, ids, invitations = running(db, surveyed)
    url = link(surveyed, invitations[0])
    assert client.post(url, data={}).status_code == 422
    assert client.post(url, data={}).status_code == 422
    assert client.post(url, data=good(ids)).status_code == 429


def test_the_link_stops_surveys_by_its_channel(client, db, surveyed):
    campaign_id, ids, invitations = running(db, surveyed, n=2)
    url = link(surveyed, invitations[0])
    assert f'href="{url}/stop"' in client.get(url).get_data(as_text=True)
    assert client.get(url + "/stop").status_code == 200
    assert client.get(url[:-2] + "zz/stop").status_code == 404
    done = client.post(url + "/stop")
    assert done.status_code == 200 and "survey-stop-form" not in done.get_data(as_text=True)
    assert client.post(url + "/stop").status_code == 200  # twice says the same
    with company_scope(surveyed.id):
        refused, other = (db.session.get(Invitation, i) for i in invitations)
        answers = consent.of_customer(refused.customer_id)
        assert [(k, a.granted) for k, a in answers.items()] == [
            ((refused.channel, "survey"), False)
        ]
        assert answers[(refused.channel, "survey")].source.startswith("survey link")
        # a new campaign by the same channel invites the other customer only
        first = db.session.get(Campaign, campaign_id)
        again = campaigns.create_campaign(
            db.session.get(Questionnaire, first.questionnaire_id), "再次回访"
        )
        campaigns.launch_campaign(again)
        invited = db.session.scalars(
            select(Invitation.customer_id).where(Invitation.campaign_id == again.id)
        ).all()
        assert invited == [other.customer_id]
