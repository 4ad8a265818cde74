"""Report pages: the list of reports, one report (parameters, chart, table), its download, and
the report widgets of the dashboard.

``/reports/`` lists the reports the member may open (their company's enabled plugins', their
role allowed). ``/reports/<name>`` takes its parameters from the query string (a GET form, so a
report with its parameters is a link to share or bookmark): bad values are form messages on a
400 page, never an error page. ``/reports/<name>/export.csv`` and ``.xlsx`` download the table
(permission ``export``, audited).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from core import audit, exporter, reports
from core.db import db
from core.i18n import pick
from core.permissions import abort_without
from core.plugins import current as current_plugins
from core.web.helpers import require_member, role
from core.web.panels import Panel

bp = Blueprint("reports", __name__, url_prefix="/reports")

#: Sections of the reports page, in order; a report whose ``group`` is not here is "Other".
#: The core's sections of the reports page, in order. A report whose ``group`` names a plugin
#: (``sales``, ``pharma``) gets a section titled with that plugin's label, after these; any
#: other group goes to "Other reports".
GROUPS = ("customers", "activity", "service", "channels")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def _group_titles() -> dict[str, str]:
    return {
        "customers": _("Customers"),
        "activity": _("Activity"),
        "service": _("Service"),
        "channels": _("Channels"),
        "": _("Other reports"),
    }


def find(name: str) -> reports.Report:
    """The report ``name`` for the current member: 404 when the company does not have it, 403
    (naming the roles) when the member's role may not open it."""
    report = reports.get(name)
    if report is None:
        abort(404)
    if not reports.allowed(report, role()):
        abort(
            403,
            _(
                "This report is for %(roles)s; your role is %(role)s.",
                roles=", ".join(report.roles),
                role=role(),
            ),
        )
    return report


@bp.route("/")
def index() -> str:
    titles = _group_titles()
    manager = current_plugins()
    for name in manager.order:
        manifest = manager.manifests.get(name)
        if manifest is not None:
            titles.setdefault(name, pick(manifest.label, manifest.label_zh))
    sections: dict[str, list[reports.Report]] = {}
    for report in reports.available(role()):
        sections.setdefault(report.group if report.group in titles else "", []).append(report)
    plugin_groups = [g for g in manager.order if g in sections and g not in GROUPS]
    ordered = [(titles[g], sections[g]) for g in (*GROUPS, *plugin_groups, "") if g in sections]
    return render_template("reports/index.html", sections=ordered)


def _form_values(report: reports.Report, values: Mapping[str, Any]) -> dict[str, str]:
    """What each input shows: the value sent (even a bad one), else the default."""
    out = {}
    for param in report.params:
        if param.name in request.args:
            out[param.name] = request.args.get(param.name, "")[:100]
        else:
            value = values.get(param.name)
            out[param.name] = value.isoformat() if isinstance(value, date) else str(value or "")
    return out


@bp.route("/<name>")
def detail(name: str) -> tuple[str, int]:
    report = find(name)
    values, errors = reports.parse(report, request.args)
    result = None if errors else reports.run(report, values)
    html = render_template(
        "reports/detail.html",
        report=report,
        params=[(p, p.options()) for p in report.params],
        form=_form_values(report, values),
        errors=errors,
        result=result,
        query=reports.query_string(values),
    )
    return html, 400 if errors else 200


@bp.route("/<name>/export.<any(csv, xlsx):fmt>")
def export(name: str, fmt: str) -> Response:
    """The report's table as CSV (UTF-8 with BOM) or XLSX; needs ``export``; audited."""
    report = find(name)
    abort_without("export")
    values, errors = reports.parse(report, request.args)
    if errors:
        return Response(
            "\n".join(f"{k}: {v}" for k, v in errors.items()), status=400, mimetype="text/plain"
        )
    result = reports.run(report, values)
    audit.record(
        "export",
        "report",
        None,
        {"report": report.name, "params": reports.query_string(values), "format": fmt},
    )
    db.session.commit()
    return exporter.download(
        fmt, f"report-{report.name}", result.header(), list(result.export_rows()), title=report.text
    )


# -- dashboard ------------------------------------------------------------------------------------


def widget(
    name: str,
    title: str,
    title_zh: str,
    order: int,
    changes: Mapping[str, Any],
    series: tuple[str, ...] | None = None,
) -> Panel | None:
    """A dashboard box drawing report ``name`` small, with the parameters ``changes`` over its
    defaults, linking to the full report; ``None`` when the member may not open the report."""
    report = reports.get(name)
    if report is None or not reports.allowed(report, role()):
        return None

    def render() -> str:
        values, _errors = reports.parse(report, MultiDict())
        values.update(changes)
        result = reports.run(report, values)
        link = url_for("reports.detail", name=name, **reports.query_string(values))
        svg = result.svg(width=420, height=230, series=series, title=title)
        more = Markup('<p><a href="%s">%s →</a></p>') % (link, _("Full report"))
        return Markup('<div class="report-widget">%s</div>') % svg + more

    return Panel(title, render, title_zh, order=order)


def dashboard_widgets(user: Any) -> list[Panel]:
    """Report widgets for the member's role: managers and admins see SLA compliance and tickets
    by priority, sales reps their customers by value tier, service agents their open tickets by
    priority."""
    mine = role()
    found: list[Panel | None] = []
    if mine in ("admin", "manager"):
        found += [
            widget("sla", "SLA compliance", "服务时限达标率", 50, {"dimension": "kind"}),
            widget("tickets", "Tickets by priority", "工单优先级", 55, {"dimension": "priority"}),
        ]
    elif mine == "sales_rep":
        found.append(
            widget(
                "customers",
                "My customers by value tier",
                "我的客户价值等级",
                50,
                {"dimension": "value_tier", "owner": user.id},
            )
        )
    elif mine == "service_agent":
        found.append(
            widget(
                "tickets",
                "My open tickets by priority",
                "我的待办工单优先级",
                50,
                {"dimension": "priority", "assignee": user.id, "start": None, "end": None},
                series=("open",),
            )
        )
    return [w for w in found if w is not None]
