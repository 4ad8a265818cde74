"""The plugins admin page (``/settings/plugins``): what is installed and what this company uses.

Admins of the current company see every installed plugin with its version, dependencies, the
hooks it implements and the companies that enabled it (among those the admin belongs to, plus
a total count, so no other tenant is named), enable or disable it for the current company with
the manager's dependency checks, and edit its per-company settings from its typed schema
(``Manifest.settings``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core.db import db
from core.models import Company, CompanyPlugin, Membership
from core.plugins import CORE, PluginError, current
from core.plugins.settings import plugin_settings, save_settings
from core.tenancy import current_company_id, unscoped
from core.web.context import enabled_plugins, forget_enabled
from core.web.helpers import require_member, role

bp = Blueprint("plugins_admin", __name__, url_prefix="/settings/plugins")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    if role() != "admin":
        abort(403, _("Only administrators manage plugins."))


def _company() -> Company:
    company = db.session.get(Company, current_company_id())
    if company is None:
        abort(403)
    return company


def hooks_of(name: str) -> list[str]:
    """The hooks plugin ``name`` implements, by name."""
    manager = current()
    plugin = manager.pm.get_plugin(name)
    return sorted(c.name for c in manager.pm.get_hookcallers(plugin) or [])


def _enabled_where() -> tuple[dict[str, list[str]], dict[str, int]]:
    """Per plugin: the names of the user's companies that enabled it, and how many companies
    in all did."""
    with unscoped():
        mine = db.session.execute(
            select(CompanyPlugin.plugin, Company.name)
            .join(Company, Company.id == CompanyPlugin.company_id)
            .join(Membership, Membership.company_id == Company.id)
            .where(CompanyPlugin.enabled.is_(True), Membership.user_id == current_user.id)
            .order_by(Company.name)
        ).all()
        counts = db.session.execute(
            select(CompanyPlugin.plugin, func.count())
            .where(CompanyPlugin.enabled.is_(True))
            .group_by(CompanyPlugin.plugin)
        ).all()
    names: dict[str, list[str]] = {}
    for plugin, company in mine:
        names.setdefault(plugin, []).append(company)
    return names, {plugin: n for plugin, n in counts}


@bp.get("/")
def index() -> str:
    manager = current()
    on = enabled_plugins()
    names, counts = _enabled_where()
    rows: list[dict[str, Any]] = []
    for name in manager.order:
        manifest = manager.manifests[name]
        rows.append(
            {
                "name": name,
                "manifest": manifest,
                "enabled": name in on,
                "hooks": hooks_of(name),
                "companies": names.get(name, []),
                "count": counts.get(name, 0),
                "pulls_in": [d for d in manager.requirements(name) if d not in on],
                "blocked_by": [d for d in manager.dependents(name) if d in on],
            }
        )
    return render_template(
        "settings/plugins.html", rows=rows, incompatible=manager.incompatible, core=CORE
    )


@bp.post("/<name>/enable")
def enable(name: str) -> Any:
    try:
        switched = current().enable(_company(), name, user_id=current_user.id)
    except PluginError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        forget_enabled()
        flash(_("Enabled: %(names)s.", names=", ".join(switched) or name))
    return redirect(url_for("plugins_admin.index"))


@bp.post("/<name>/disable")
def disable(name: str) -> Any:
    try:
        current().disable(_company(), name, user_id=current_user.id)
    except PluginError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        forget_enabled()
        flash(_("Disabled: %(name)s. Its data stays.", name=name))
    return redirect(url_for("plugins_admin.index"))


@bp.route("/<name>/settings", methods=["GET", "POST"])
def settings(name: str) -> Any:
    manager = current()
    if name not in manager.manifests or not manager.manifests[name].settings:
        abort(404)
    manifest = manager.manifests[name]
    values: dict[str, Any] = plugin_settings(name)
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        raw = {s.name: (request.form.getlist(s.name) or [None])[-1] for s in manifest.settings}
        errors = save_settings(_company(), name, raw)
        if not errors:
            db.session.commit()
            flash(_("Settings saved."))
            return redirect(url_for("plugins_admin.settings", name=name))
        values, status = {**values, **raw}, 422
    return (
        render_template(
            "settings/plugin_settings.html", manifest=manifest, values=values, errors=errors
        ),
        status,
    )
