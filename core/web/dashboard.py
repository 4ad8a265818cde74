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

from flask import Blueprint, current_app, g, render_template
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import func, or_, select

from core import choices, clocks, tenancy
from core.db import db, utcnow
from core.models import Company, Customer, Interaction, Obligation, ServiceTicket, Team
from core.tenancy import current_company_id
from core.web.panels import Panel

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

NEXT_STEPS_SHOWN = 6


@bp.before_request
@login_required
def _guard() -> Any:
    if current_company_id() is None:  # no membership (yet): a page that says so, not an error
        return render_template("dashboard/no_company.html")
    return None


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


def my_team_ids() -> list[int]:
    """The user's team in the company and the teams they manage."""
    member = g.get("membership")
    ids = set(db.session.scalars(select(Team.id).where(Team.manager_id == current_user.id)))
    if member is not None and member.team_id:
        ids.add(member.team_id)
    return sorted(ids)


def team_sla_counts(team_ids: list[int]) -> dict[str, int]:
    """Open ticket clocks per status (``running``, ``at_risk``, ``breached``, ``paused``) of the
    tickets of ``team_ids`` or assigned to the user: one GROUP BY over the obligation rows, with
    the engine's own status rule (:meth:`Obligation.status_expr`)."""
    status = Obligation.status_expr(utcnow())
    mine = ServiceTicket.assignee_id == current_user.id
    rows = db.session.execute(
        select(status, func.count())
        .join(
            ServiceTicket,
            (Obligation.subject_type == "service_ticket")
            & (Obligation.subject_id == ServiceTicket.id),
        )
        .where(
            Obligation.met_at.is_(None),
            or_(ServiceTicket.team_id.in_(team_ids), mine) if team_ids else mine,
        )
        .group_by(status)
    ).all()
    return {key: n for key, n in rows}


def sla_health() -> Panel:
    """Open SLA clocks of the user's team (or their own tickets without a team); managers and
    admins also see the whole company's (from :func:`core.clocks.status_counts`)."""

    def render() -> str:
        teams = my_team_ids()
        counts = team_sla_counts(teams)
        scope = "&".join(f"team={t}" for t in teams) if teams else "mine=1"
        labels = [
            ("running", _("On track"), None),
            ("at_risk", _("At risk"), f"/tickets/?sla=at_risk&{scope}"),
            ("breached", _("Breached"), f"/tickets/?sla=breached&{scope}"),
            ("paused", _("Paused"), None),
        ]
        member = g.get("membership")
        company = None
        if member is not None and member.role in ("admin", "manager"):
            company = clocks.status_counts()
        return render_template(
            "dashboard/_sla.html",
            items=[(key, label, counts.get(key, 0), link) for key, label, link in labels],
            has_team=bool(teams),
            company=company,
        )

    return Panel("Service deadlines: my team", render, "服务时限：我的团队", order=20)


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
    return tenancy.company_zone()


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


def draw(panel: Panel) -> Markup:
    """A widget's HTML; a widget that fails says so in its box instead of failing the page."""
    try:
        return panel.html()
    except Exception:  # a plugin's bug must not take the whole dashboard down
        current_app.logger.exception("dashboard widget %r failed", panel.title)
        db.session.rollback()
        return Markup('<p class="error">%s</p>') % _("This widget could not be drawn.")


@bp.route("/")
def index() -> str:
    member = g.get("membership")
    boxes = [(panel, draw(panel)) for panel in widgets()]
    return render_template(
        "dashboard/index.html", widgets=boxes, role=member.role if member else None
    )


def local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%m-%d %H:%M") if moment else ""


@bp.app_template_filter("local_short")
def _local_short(moment: Any, zone: ZoneInfo) -> str:
    return local(moment, zone)
