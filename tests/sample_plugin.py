"""A plugin used by the core's tests: one of everything a plugin can declare."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, url_for
from sqlalchemy import String, func, select
from sqlalchemy.orm import Mapped, mapped_column

from core.extend import (
    Choice,
    Field,
    Job,
    Manifest,
    MenuItem,
    Panel,
    PublicBlueprint,
    Report,
    ReportColumn,
    Resource,
    State,
    TenantMixin,
    TimelineEntry,
    Transition,
    Workflow,
    current_company_id,
    db,
    every,
    hookimpl,
)
from core.models import ServiceTicket

manifest = Manifest(
    name="sample",
    label="Sample",
    label_zh="示例",
    version="1.2.3",
    description="Test plugin.",
)

#: ``(hook, company_id)`` of every event hook call, for tests to inspect.
calls: list[tuple[str, int]] = []


class SampleNote(TenantMixin, db.Model):
    """A record owned by the plugin (table ``sample_note``)."""

    __tablename__ = "sample_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="draft")
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "customer",
            "hospital_beds",
            "integer",
            "Hospital beds",
            "床位数",
            min=0,
            max=5000,
            indexed=True,
            list_column=True,
        ),
        Field(
            "customer",
            "grade",
            "choice",
            "Grade",
            "等级",
            choices=(("a", "Grade A", "甲等"), ("b", "Grade B", "乙等")),
        ),
        Field("channel", "licence", "string", "Licence", "执照号", max_length=40, indexed=True),
        Field("channel", "licence_until", "date", "Licence valid until", "执照有效期至"),
    ]


@hookimpl
def guanxi_workflows() -> list[Workflow]:
    return [
        Workflow(
            name="sample_note",
            model=SampleNote,
            initial="draft",
            states=(
                State("draft", "Draft", "草稿"),
                State("published", "Published", "已发布", category="done"),
            ),
            transitions=(Transition("publish", ("draft",), "published", "Publish", "发布"),),
        ),
        Workflow(
            name="sample_issue",
            model=ServiceTicket,
            initial="logged",
            selects=lambda ticket: ticket.type == "sample_issue",
            states=(
                State("logged", "Logged", "已登记"),
                State("fixed", "Fixed", "已修复", category="done"),
            ),
            transitions=(Transition("fix", ("logged",), "fixed", "Fix", "修复"),),
        ),
    ]


def _count(company: Any) -> str:
    db.session.add(SampleNote(text="job ran"))
    return "ok"


@hookimpl
def guanxi_jobs() -> list[Job]:
    return [Job("sample.count", _count, every(60), "Count", "计数")]


bp = Blueprint("sample", __name__, url_prefix="/sample")


@bp.get("/")
def index() -> str:
    return "sample page"


public_bp = PublicBlueprint("sample_public", __name__, url_prefix="/sample")


@public_bp.route("/hello", methods=["GET", "POST"])
def hello() -> str:
    """A public page: which company it answers for, and a rate-limited post."""
    from flask import abort, request

    from core.extend import rate_allow

    if request.method == "POST" and not rate_allow("sample.hello", "2/minute"):
        abort(429)
    return f"hello {current_company_id()} {url_for('sample_public.hello')}"


@hookimpl
def guanxi_blueprints() -> list[Blueprint]:
    return [bp, public_bp]


@hookimpl
def guanxi_menu_items(company: Any) -> list[MenuItem]:
    calls.append(("menu", company.id))
    return [MenuItem("sample.index", "Sample", "示例", order=90)]


@hookimpl
def guanxi_after_transition(subject: Any, to_state: str) -> None:
    calls.append(("after_transition", subject.company_id))


@hookimpl
def guanxi_plugin_enabled(company: Any) -> None:
    calls.append(("enabled", company.id))


@hookimpl
def guanxi_plugin_disabled(company: Any) -> None:
    calls.append(("disabled", company.id))


@hookimpl
def guanxi_choices() -> list[Choice]:
    return [Choice("ticket_type", "warranty_claim", "Warranty claim", "保修索赔")]


@hookimpl
def guanxi_record_panels(subject_type: str, subject: Any) -> list[Panel]:
    if subject_type == "service_ticket":
        return [Panel("Sample ticket panel", lambda: f"sample panel for #{subject.id}", "示例面板")]
    if subject_type == "customer":
        return [Panel("Sample customer panel", lambda: f"sample customer panel #{subject.id}")]
    return []


@hookimpl
def guanxi_timeline(customer: Any) -> list[TimelineEntry]:
    from datetime import UTC, datetime

    moment = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    return [TimelineEntry(moment, "sample", f"Sample record of {customer.name}", link="/sample/")]


@hookimpl
def guanxi_dashboard_widgets(company: Any, user: Any) -> list[Panel]:
    calls.append(("dashboard", company.id))
    text = f"sample widget for {company.code}, {user.email}"
    return [Panel("Sample widget", lambda: text, "示例小部件", order=15)]


class SampleNotes(Resource):
    """The plugin's notes in the JSON API (``/api/v1/sample_notes``)."""

    name = "sample_notes"
    model = SampleNote
    label, label_zh = "Sample notes", "示例笔记"
    filters = ("state",)


@hookimpl
def guanxi_api_resources() -> list[Resource]:
    return [SampleNotes()]


@hookimpl
def guanxi_reports() -> list[Report]:
    return [
        Report(
            name="sample_notes",
            label="Sample notes by state",
            label_zh="示例笔记状态",
            query=lambda params: select(
                SampleNote.state.label("label"), func.count(SampleNote.id).label("notes")
            ).group_by(SampleNote.state),
            columns=(
                ReportColumn("label", "State", "状态", "text"),
                ReportColumn("notes", "Notes", "笔记数"),
            ),
            chart="pie",
            drill=lambda row, params, series: f"/sample/?state={row['label']}",
        )
    ]
