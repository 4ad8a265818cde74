"""``guanxi plugin new NAME``: write a new plugin package that works and passes its tests.

The package lives outside the core's repository and holds everything a plugin has: a
``pyproject.toml`` (entry point in ``guanxi.plugins``, its test fixtures under ``pytest11``), a
manifest with one typed setting, one extension field, one model with a workflow, one report,
one page with a menu entry, its own Alembic history, a Chinese catalogue and a test.
``pip install -e . && pytest`` passes straight away.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from core.plugins.manifest import NAME_RE

FILES: dict[str, str] = {}

FILES["pyproject.toml"] = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "guanxi-$name"
version = "0.1.0"
description = "$title: a Guanxi plugin"
requires-python = ">=3.11"
dependencies = ["guanxi>=0.1"]

# Guanxi finds the plugin through this entry point once the package is installed.
[project.entry-points."guanxi.plugins"]
$name = "$pkg"

# The plugin's test fixtures, for its own tests and for plugins that depend on it.
[project.entry-points.pytest11]
$pkg = "$pkg.testing"

[tool.setuptools.packages.find]
include = ["$pkg*"]

[tool.setuptools.package-data]
"*" = ["templates/**/*", "translations/**/*", "migrations/versions/*.py"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = "-p no:cacheprovider"
"""

FILES["README.md"] = """\
# guanxi-$name

A [Guanxi](https://github.com/guanxi-crm/guanxi) plugin.

    pip install -e . && pytest                       # its tests, against the installed core
    guanxi db upgrade                                # creates the plugin's tables
    guanxi plugins enable $name --company CODE       # or Settings -> Plugins in the web UI

- `$pkg/__init__.py`: the manifest and the hooks (field, workflow, report, page, menu)
- `$pkg/models.py`: the plugin's table `${name}_case`
- `$pkg/views.py`, `templates/$name/`: the page `/$name/`
- `$pkg/migrations/versions/`: the plugin's Alembic history
  (next revision: `guanxi db revision --plugin $name -m "..."`)
- `$pkg/translations/zh/`: Chinese for the page's texts
  (after editing the .po: `pybabel compile -d $pkg/translations`)
- `tests/`: tests with the plugin enabled and disabled
"""

FILES["$pkg/__init__.py"] = '''\
"""$title: a Guanxi plugin. Import only from ``core.extend``, the core's stable surface."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from core.extend import (
    Field,
    Manifest,
    MenuItem,
    Report,
    ReportColumn,
    Setting,
    State,
    Transition,
    Workflow,
    hookimpl,
)
from $pkg.models import ${cls}Case

manifest = Manifest(
    name="$name",  # prefix of tables (${name}_*) and field keys (${name}__*)
    label="$title",
    label_zh="$title",
    version="0.1.0",
    core=">=0.1,<1",
    description="$title for Guanxi.",
    settings=(Setting("case_limit", "integer", "Cases shown", "显示的案例数", default=50, min=1),),
)


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [Field("customer", "segment", "string", "Segment", "细分市场", max_length=40)]


@hookimpl
def guanxi_workflows() -> list[Workflow]:
    return [
        Workflow(
            name="${name}_case",
            model=${cls}Case,
            initial="open",
            states=(
                State("open", "Open", "处理中"),
                State("done", "Done", "已完成", category="done"),
            ),
            transitions=(Transition("finish", ("open",), "done", "Finish", "完成"),),
        )
    ]


@hookimpl
def guanxi_reports() -> list[Report]:
    return [
        Report(
            name="${name}_cases",
            label="$title cases by state",
            label_zh="$title 案例状态",
            query=lambda params: select(
                ${cls}Case.state.label("label"), func.count(${cls}Case.id).label("cases")
            ).group_by(${cls}Case.state),
            columns=(
                ReportColumn("label", "State", "状态", "text"),
                ReportColumn("cases", "Cases", "案例数"),
            ),
        )
    ]


@hookimpl
def guanxi_blueprints() -> list[Any]:
    from $pkg.views import bp

    return [bp]


@hookimpl
def guanxi_menu_items(company: Any) -> list[MenuItem]:
    return [MenuItem("${name}.index", "$title", "$title", order=80)]
'''

FILES["$pkg/models.py"] = '''\
"""The plugin's own records: ordinary SQLAlchemy models named ``${name}_…``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from core.extend import TenantMixin, UTCDateTime, db, utcnow


class ${cls}Case(TenantMixin, db.Model):
    """A case, moved along the ``${name}_case`` workflow (``state`` and ``version`` columns)."""

    __tablename__ = "${name}_case"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20), default="open")
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = {"version_id_col": version}
'''

FILES["$pkg/views.py"] = '''\
"""The plugin's page, ``/$name/``: its cases, a form to add one, and the workflow's steps."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from core.extend import (
    WorkflowError,
    available_transitions,
    db,
    plugin_settings,
    require_member,
    transition,
)
from $pkg.models import ${cls}Case

bp = Blueprint("$name", __name__, url_prefix="/$name", template_folder="templates")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


@bp.get("/")
def index() -> str:
    limit = plugin_settings("$name")["case_limit"]
    cases = db.session.scalars(select(${cls}Case).order_by(${cls}Case.id.desc()).limit(limit))
    rows = [(case, available_transitions(case, current_user)) for case in cases]
    return render_template("$name/index.html", rows=rows)


@bp.post("/")
def create() -> object:
    title = request.form.get("title", "").strip()
    if not 0 < len(title) <= 200:
        flash(_("Give the case a title of at most 200 characters."), "error")
    else:
        db.session.add(${cls}Case(title=title))
        db.session.commit()
        flash(_("Case added."))
    return redirect(url_for("$name.index"))


@bp.post("/<int:case_id>/<step>")
def move(case_id: int, step: str) -> object:
    case = db.session.scalar(select(${cls}Case).where(${cls}Case.id == case_id)) or abort(404)
    try:
        transition(case, step, user=current_user)
        db.session.commit()
    except WorkflowError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("$name.index"))
'''

FILES["$pkg/templates/$name/index.html"] = """\
{% extends "base.html" %}
{% block title %}{{ _("Cases") }}{% endblock %}
{% block content %}
<div class="bar"><h1>{{ _("Cases") }}</h1></div>
<section class="card">
  <form method="post" action="{{ url_for('$name.create') }}" class="inline">
    <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
    <input name="title" maxlength="200" required placeholder="{{ _('New case') }}">
    <button type="submit" class="primary">{{ _("Add") }}</button>
  </form>
  <table class="list">
    <thead><tr><th>{{ _("Case") }}</th><th>{{ _("State") }}</th><th></th></tr></thead>
    <tbody>
    {% for case, steps in rows %}
      <tr data-case="{{ case.id }}"><td>{{ case.title }}</td><td>{{ case.state }}</td><td>
      {% for step in steps %}
        <form method="post" class="inline"
              action="{{ url_for('$name.move', case_id=case.id, step=step.name) }}">
          <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
          <button type="submit">{{ pick(step.label, step.label_zh) }}</button>
        </form>
      {% endfor %}
      </td></tr>
    {% else %}
      <tr><td colspan="3" class="help">{{ _("No cases yet.") }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
</section>
{% endblock %}
"""

FILES["$pkg/testing.py"] = '''\
"""Fixtures of this plugin for pytest (entry point ``pytest11``), on top of Guanxi's own
(``app``, ``client``, ``company``, ``login_as`` …)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def ${name}_company(company: Callable[..., Any]) -> Any:
    """A new company with the $name plugin enabled."""
    return company(plugins=["$name"])
'''

FILES["$pkg/migrations/versions/${name}_0001_initial.py"] = '''\
"""$name: cases and the customer extension field

Revision ID: ${name}_0001
Revises:
Create Date: 2026-01-01 00:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.extend import UTCDateTime

revision = "${name}_0001"
down_revision = None
branch_labels = ("$name",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "${name}_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["company.id"],
            name=op.f("fk_${name}_case_company_id_company"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_${name}_case")),
    )
    op.create_index(op.f("ix_${name}_case_company_id"), "${name}_case", ["company_id"])
    op.create_table(
        "${name}_customer_ext",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["id"],
            ["customer.id"],
            name=op.f("fk_${name}_customer_ext_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_${name}_customer_ext")),
    )


def downgrade() -> None:
    op.drop_table("${name}_customer_ext")
    op.drop_index(op.f("ix_${name}_case_company_id"), table_name="${name}_case")
    op.drop_table("${name}_case")
'''

#: Chinese for the texts of the plugin's page (labels of fields, states and reports carry
#: their Chinese in the declarations themselves).
CATALOGUE = {
    "Cases": "案例",
    "Case": "案例",
    "State": "状态",
    "New case": "新案例",
    "Add": "添加",
    "No cases yet.": "还没有案例。",
    "Case added.": "案例已添加。",
    "Give the case a title of at most 200 characters.": "请填写案例标题（最多 200 个字符）。",
}

FILES["tests/test_$name.py"] = '''\
"""The plugin with Guanxi's test kit: enabled for one company, absent for another."""

from __future__ import annotations

from sqlalchemy import select

from core.extend import company_scope
from $pkg.models import ${cls}Case


def test_field_page_workflow_and_report_where_enabled(client, db, ${name}_company, login_as):
    login_as("admin", ${name}_company)
    assert 'name="${name}__segment"' in client.get("/customers/new").get_data(as_text=True)
    assert "还没有案例。" in client.get("/$name/").get_data(as_text=True)  # translations/zh

    client.post("/$name/", data={"title": "First case"})
    assert "First case" in client.get("/$name/").get_data(as_text=True)
    with company_scope(${name}_company.id):
        case = db.session.scalars(select(${cls}Case)).one()
    client.post(f"/$name/{case.id}/finish")
    with company_scope(${name}_company.id):
        db.session.refresh(case)
        assert case.state == "done"

    report = client.get("/reports/${name}_cases")
    assert report.status_code == 200


def test_nothing_of_the_plugin_where_disabled(client, company, login_as):
    login_as("admin", company())
    assert 'name="${name}__segment"' not in client.get("/customers/new").get_data(as_text=True)
    assert client.get("/$name/").status_code == 404
    assert client.get("/reports/${name}_cases").status_code == 404
'''


def write_catalogue(folder: Path, catalogue: dict[str, str], project: str) -> None:
    """Write ``folder/zh/LC_MESSAGES/messages.po`` and its compiled ``.mo``."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import write_po

    catalog = Catalog(locale="zh", project=project, charset="utf-8", fuzzy=False)
    for msgid, msgstr in catalogue.items():
        catalog.add(msgid, msgstr)
    target = folder / "zh" / "LC_MESSAGES"
    target.mkdir(parents=True, exist_ok=True)
    with open(target / "messages.po", "wb") as po:
        write_po(po, catalog, omit_header=False)
    with open(target / "messages.mo", "wb") as mo:
        write_mo(mo, catalog)


def create(name: str, directory: Path) -> Path:
    """Write the plugin ``name`` into ``directory/name`` and return that folder.

    Refuses a name that is not a valid plugin name and a folder that exists already.
    """
    if not NAME_RE.match(name) or "__" in name or name == "core":
        raise ValueError(
            f"plugin name {name!r}: use lowercase letters, digits and single underscores"
        )
    root = directory / name
    if root.exists():
        raise FileExistsError(f"{root} exists already")
    values = {
        "name": name,
        "pkg": f"guanxi_{name}",
        "title": name.replace("_", " ").title(),
        "cls": name.replace("_", " ").title().replace(" ", ""),
    }
    for path, text in FILES.items():
        target = root / Template(path).substitute(values)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(text).substitute(values), encoding="utf-8")
    write_catalogue(root / values["pkg"] / "translations", CATALOGUE, f"guanxi-{name}")
    return root
