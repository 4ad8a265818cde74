"""The dashboard (工作台): the core's widgets for the user, then the enabled plugins' widgets.

Every widget is a :class:`core.web.panels.Panel`; a plugin adds its own through the
``guanxi_dashboard_widgets(company, user)`` hook. Each core widget is one or two queries, so the
page's query count does not grow with the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, g, render_template
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core import choices, clocks
from core.db import db, utcnow
from core.models import Company, Customer, Interaction, ServiceTicket
from core.tenancy import current_company_id
from core.web.panels import Panel

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

NEXT_STEPS_SHOWN = 6


@bp.before_request
@login_required
def _guard() -> None:
    if current_company_id() is None:
        abort(403, _("You are not a member of any company yet; ask an administrator to add you."))


@dataclass
class Bar:
    label: str
    count: int
    share: float
    link: str | None = None


def _bars(pairs: list[tuple[str, int, str | None]]) -> list[Bar]:
    top = max((n for _label, n, _link in pairs), default=0) or 1
    return [Bar(label, n, n / top, link) for label, n, link in pairs]


def _open_states() -> list[str]:
    from core.workflow import workflow_for

    wf = workflow_for(ServiceTicket(workflow="ticket"))
    return [s.name for s in wf.states if s.category == "open"]


def my_tickets() -> Panel:
    """The user's open tickets by state."""

    def render() -> str:
        from core.workflow import workflow_for

        wf = workflow_for(ServiceTicket(workflow="ticket"))
        rows = db.session.execute(
            select(ServiceTicket.state, func.count())
            .where(
                ServiceTicket.assignee_id == current_user.id,
                ServiceTicket.state.in_(_open_states()),
            )
            .group_by(ServiceTicket.state)
        ).all()
        counts = dict(rows)
        bars = _bars(
            [
                (s.text, counts.get(s.name, 0), f"/tickets/?mine=1&state={s.name}")
                for s in wf.states
                if s.category == "open"
            ]
        )
        return render_template(
            "dashboard/_bars.html",
            bars=bars,
            total=sum(counts.values()),
            empty=_("No open tickets assigned to you."),
            more=("/tickets/?mine=1", _("My tickets")),
        )

    return Panel("My open tickets", render, "我的待办工单", order=10)


def sla_health() -> Panel:
    """Open SLA clocks of the company: on track, at risk, breached, paused."""

    def render() -> str:
        counts = clocks.status_counts()
        labels = [
            ("running", _("On track"), None),
            ("at_risk", _("At risk"), "/tickets/?sla=at_risk"),
            ("breached", _("Breached"), "/tickets/?sla=breached"),
            ("paused", _("Paused"), None),
        ]
        return render_template(
            "dashboard/_sla.html",
            items=[(key, label, counts.get(key, 0), link) for key, label, link in labels],
        )

    return Panel("Service deadlines", render, "服务时限", order=20)


def next_steps() -> Panel:
    """The user's open next steps, overdue first."""

    def render() -> str:
        now = utcnow()
        base = select(Interaction).where(
            Interaction.user_id == current_user.id,
            Interaction.next_step.is_not(None),
            Interaction.next_step_done_at.is_(None),
        )
        overdue = db.session.scalar(
            select(func.count()).select_from(base.where(Interaction.next_step_due < now).subquery())
        )
        rows = db.session.execute(
            select(Interaction, Customer.name)
            .join(Customer, Customer.id == Interaction.customer_id)
            .where(
                Interaction.user_id == current_user.id,
                Interaction.next_step.is_not(None),
                Interaction.next_step_done_at.is_(None),
                Interaction.next_step_due < now + timedelta(days=7),
            )
            .order_by(Interaction.next_step_due)
            .limit(NEXT_STEPS_SHOWN)
        ).all()
        return render_template(
            "dashboard/_next_steps.html",
            rows=rows,
            overdue=overdue,
            now=now,
            zone=_zone(),
        )

    return Panel("My next steps", render, "我的待办跟进", order=30)


def customers_overview() -> Panel:
    """New customers this month and the customers by value tier."""

    def render() -> str:
        zone = _zone()
        local_now = utcnow().astimezone(zone)
        month_start = local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        new = db.session.scalar(
            select(func.count(Customer.id)).where(Customer.created_at >= month_start)
        )
        rows = db.session.execute(
            select(Customer.value_tier, func.count()).group_by(Customer.value_tier)
        ).all()
        counts = {tier: n for tier, n in rows}
        tiers = [v for v, _label in choices.options("value_tier")]
        pairs = [
            (
                choices.label("value_tier", tier),
                counts.pop(tier, 0),
                f"/customers/?value_tier={tier}",
            )
            for tier in tiers
        ]
        unrated = sum(counts.values())
        if unrated:
            pairs.append((_("Not rated yet"), unrated, None))
        return render_template(
            "dashboard/_customers.html", new=new, bars=_bars(pairs), total=sum(dict(rows).values())
        )

    return Panel("Customers", render, "客户概况", order=40)


def _zone() -> ZoneInfo:
    name = db.session.scalar(select(Company.timezone).where(Company.id == current_company_id()))
    return ZoneInfo(name or "Asia/Shanghai")


def widgets() -> list[Panel]:
    """The core's widgets and those of the company's enabled plugins, by order."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    found: list[Panel] = [my_tickets(), sla_health(), next_steps(), customers_overview()]
    company = db.session.get(Company, current_company_id())
    for extra in (
        current()
        .hooks(enabled_plugins())
        .guanxi_dashboard_widgets(company=company, user=current_user._get_current_object())
    ):
        found.extend(extra or [])
    return sorted(found, key=lambda p: (p.order, p.text))


@bp.route("/")
def index() -> str:
    member = g.get("membership")
    return render_template(
        "dashboard/index.html", widgets=widgets(), role=member.role if member else None
    )


def local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%m-%d %H:%M") if moment else ""


@bp.app_template_filter("local_short")
def _local_short(moment: Any, zone: ZoneInfo) -> str:
    return local(moment, zone)
