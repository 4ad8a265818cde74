"""Marketing: segments, campaigns with consent, membership levels and points, care moments.

Parts, each documented in its module:

- :mod:`plugins.marketing.models` -- the tables;
- :mod:`plugins.marketing.segments` -- saved dynamic filters over customers (the customer
  list's own filter machinery, plus RFM segment, last purchase, points) and static lists;
- :mod:`plugins.marketing.campaigns` -- campaigns to a segment, written to the outbox in one
  ``INSERT … SELECT`` (consent through :mod:`core.consent`, once per customer), triggers
  (birthday, anniversary, after a purchase, decline), unsubscribe and open tracking;
- :mod:`plugins.marketing.senders` -- e-mail, SMS and WeChat senders (outbox without gateway);
- :mod:`plugins.marketing.loyalty` -- levels, the points ledger, rewards, expiry, level moves;
- :mod:`plugins.marketing.reports` -- the reports; pages in ``web_*.py`` and ``public.py``;
  demo rows in :mod:`plugins.marketing.demo`.

The customer fields ``marketing__birthday`` and ``marketing__member_level`` (declared since the
first version) keep their meaning: the birthday read by birthday campaigns, and the member's
current level (set by :func:`plugins.marketing.loyalty.enrol` and the levels job). The consent
purposes ``marketing``, ``care`` and ``loyalty`` are declared here; the answers live in the
core (:mod:`core.consent`), shown and recorded on the customer's page.
See docs/marketing.md.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from core.extend import (
    ConsentPurpose,
    Field,
    Job,
    Manifest,
    MenuItem,
    Panel,
    daily,
    every,
    hookimpl,
)

manifest = Manifest(
    name="marketing",
    label="Marketing & loyalty",
    label_zh="营销与会员",
    version="0.2.0",
    depends=("sales",),
    description="Segments, campaigns, loyalty tiers and points, birthday care.",
    description_zh="客户分群、营销活动、会员等级与积分、生日关怀。",
)

LEVELS = (
    ("regular", "Regular", "普通会员"),
    ("silver", "Silver", "银卡会员"),
    ("gold", "Gold", "金卡会员"),
    ("platinum", "Platinum", "白金会员"),
)

from plugins.marketing import (  # noqa: E402
    campaigns,
    loyalty,
    models,
    public,
    reports,
    senders,
    web_campaigns,
    web_loyalty,
    web_segments,
)
from plugins.marketing.blueprint import bp, public_bp  # noqa: E402

#: Modules imported for their tables and routes.
PARTS = (models, public, web_campaigns, web_segments)

GROUP, GROUP_ZH = "Marketing", "营销"


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field("customer", "birthday", "date", "Birthday", "生日", min=date(1900, 1, 1)),
        Field(
            "customer",
            "member_level",
            "choice",
            "Membership level",
            "会员等级",
            choices=LEVELS,
            indexed=True,
        ),
    ]


def _dispatch(company: Any) -> str:
    n = campaigns.run_scheduled()
    sent = senders.deliver(company)
    return f"scheduled {n}, delivered {sent}"


def _care(company: Any) -> str:
    return f"care messages {campaigns.run_triggers()}"


def _loyalty(company: Any) -> str:
    done = loyalty.run_daily(company)
    return ", ".join(f"{k} {v}" for k, v in done.items())


@hookimpl
def guanxi_jobs() -> list[Job]:
    return [
        Job("marketing.dispatch", _dispatch, every(5), "Send campaign messages", "发送营销消息"),
        Job("marketing.care", _care, daily(at="08:00"), "Care moments", "关怀触发"),
        Job(
            "marketing.loyalty",
            _loyalty,
            daily(at="02:30"),
            "Points and member levels",
            "积分与会员等级",
        ),
    ]


@hookimpl
def guanxi_blueprints() -> list[Any]:
    return [bp, public_bp]


@hookimpl
def guanxi_reports() -> list[Any]:
    return reports.reports()


@hookimpl
def guanxi_menu_items(company: Any) -> list[MenuItem]:
    roles = ("admin", "manager")
    return [
        MenuItem("marketing.segments", "Segments", "客户分群", 80, roles, GROUP, GROUP_ZH),
        MenuItem("marketing.campaigns", "Campaigns", "营销活动", 81, roles, GROUP, GROUP_ZH),
        MenuItem("marketing.outbox", "Outbox", "发件箱", 82, roles, GROUP, GROUP_ZH),
        MenuItem("marketing.loyalty_page", "Membership", "会员积分", 83, roles, GROUP, GROUP_ZH),
    ]


@hookimpl
def guanxi_record_panels(subject_type: str, subject: Any) -> list[Any]:
    if subject_type != "customer":
        return []
    return [Panel("Membership", lambda: web_loyalty.customer_panel(subject), "会员积分", 60)]


@hookimpl
def guanxi_consent_purposes() -> list[ConsentPurpose]:
    """Campaign purposes; each needs the customer's consent first (PIPL art. 13-14)."""
    from plugins.marketing.models import PURPOSES

    return [ConsentPurpose(key, label, zh, needs_consent=True) for key, label, zh in PURPOSES]


@hookimpl
def guanxi_plugin_enabled(company: Any) -> None:
    loyalty.seed(company)


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    from plugins.marketing import demo

    demo.seed(company, fake)
