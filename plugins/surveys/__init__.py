"""Surveys: questionnaires, campaigns, CSAT and NPS (generic; reused by other plugins).

Parts, each documented in its module:

- :mod:`plugins.surveys.models` -- the tables;
- :mod:`plugins.surveys.questionnaires` -- building questionnaires (dimensions, sections,
  questions) and checking answers: ``create_questionnaire(...)``;
- :mod:`plugins.surveys.campaigns` -- campaigns to a customer segment or after a ticket closes,
  one-time invitations, responses by link or phone: ``create_campaign``, ``launch_campaign``,
  ``invite``, ``record_response``; the ``guanxi_after_transition`` trigger;
- :mod:`plugins.surveys.results` -- results by dimension over time, CSAT, NPS and the reports;
- pages: :mod:`plugins.surveys.web_questionnaires`, :mod:`plugins.surveys.web_campaigns` and the
  public answer page :mod:`plugins.surveys.public`; demo rows: :mod:`plugins.surveys.demo`.

The customer field ``surveys__preferred_channel`` (the channel of their invitations) and the
consent purpose ``survey`` are declared here: every customer may be invited unless they refused
surveys on the invitation's channel (:mod:`core.consent`; the former field ``surveys__opt_out``
became such refusals, migration ``surveys_0003``).
See docs/surveys.md.
"""

from __future__ import annotations

from typing import Any

from core.extend import ConsentPurpose, Field, Manifest, MenuItem, hookimpl

manifest = Manifest(
    name="surveys",
    label="Surveys",
    label_zh="满意度调查",
    version="0.2.0",
    description="Questionnaires, survey campaigns, CSAT and NPS.",
    description_zh="问卷、满意度调查活动、CSAT 与 NPS。",
)

CHANNELS = (
    ("phone", "Phone", "电话"),
    ("sms", "SMS", "短信"),
    ("wechat", "WeChat", "微信"),
    ("email", "E-mail", "邮件"),
)

from plugins.surveys import campaigns, models, public, results, web_campaigns, web_questionnaires  # noqa: E402,F401  # noqa: E402,F401
from plugins.surveys.blueprint import bp, public_bp  # noqa: E402


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "customer",
            "preferred_channel",
            "choice",
            "Preferred survey channel",
            "首选调查方式",
            choices=CHANNELS,
        ),
    ]


@hookimpl
def guanxi_consent_purposes() -> list[ConsentPurpose]:
    """Satisfaction surveys follow a service the customer asked for: they are sent unless the
    customer refused them (``needs_consent=False``)."""
    return [ConsentPurpose("survey", "Satisfaction surveys", "满意度调查", needs_consent=False)]


@hookimpl
def guanxi_blueprints() -> list[Any]:
    return [bp, public_bp]


@hookimpl
def guanxi_reports() -> list[Any]:
    return results.reports()


@hookimpl
def guanxi_menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem(
            "surveys.campaigns", "Campaigns", "调查活动", 70, group="Surveys", group_zh="调查"
        ),
        MenuItem(
            "surveys.questionnaires", "Questionnaires", "问卷", 71, group="Surveys", group_zh="调查"
        ),
    ]


@hookimpl
def guanxi_after_transition(subject: Any, from_state: str, to_state: str, at: Any) -> None:
    """A service ticket closed: invite its customer to the running ticket_closed campaigns."""
    campaigns.after_transition(subject, from_state, to_state, at)


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    """Survey preferences on the demo customers; an after-service questionnaire with a
    ticket_closed campaign and six months of answers (:mod:`plugins.surveys.demo`)."""
    from plugins import demo_values
    from plugins.surveys import demo

    demo_values(
        "customer",
        {
            "surveys__preferred_channel": lambda rng: rng.choice([c[0] for c in CHANNELS]),
        },
    )
    demo.seed(company, fake)
