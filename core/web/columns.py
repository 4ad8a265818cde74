"""The list columns page (``/settings/columns``): which extension fields the customer list shows.

Admins of the current company tick the fields of its enabled plugins that are columns of the
customer list (:mod:`core.columns`); "Restore the defaults" goes back to what each plugin
declared. Other roles are refused. Saving is audited.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from core import columns
from core.customers import extension_fields
from core.db import db
from core.i18n import pick
from core.plugins import current
from core.web.helpers import require_member, role

bp = Blueprint("columns", __name__, url_prefix="/settings/columns")

MODEL = "customer"


class ColumnsForm(FlaskForm):
    """Carries the CSRF token; the ticked fields arrive as ``shown`` (one per field key)."""


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    if role() != "admin":
        abort(
            403,
            _(
                "Only administrators choose the columns of the customer list; you are %(role)s.",
                role=role(),
            ),
        )


def _groups(fields: list[Any]) -> list[tuple[str, list[Any]]]:
    """``fields`` by plugin (its label in the user's language), in declaration order."""
    manifests = current().manifests
    groups: dict[str, list[Any]] = {}
    for f in fields:
        groups.setdefault(f.plugin, []).append(f)
    out = []
    for plugin, group in groups.items():
        manifest = manifests.get(plugin)
        out.append((pick(manifest.label, manifest.label_zh) if manifest else plugin, group))
    return out


@bp.route("/", methods=["GET", "POST"])
def index() -> Any:
    """The customer list's extension fields, ticked where the list shows them."""
    fields = extension_fields(MODEL)
    form = ColumnsForm()
    error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, _("The form expired; reload the page and try again."))
        if request.form.get("action") == "defaults":
            keys = [f.key for f in fields if f.list_column]
        else:
            keys = request.form.getlist("shown")
        try:
            shown = columns.save(MODEL, fields, keys, user_id=current_user.id)
        except columns.ColumnsError:
            db.session.rollback()
            error = _("Choose among the fields listed here.")
        else:
            db.session.commit()
            flash(_("The customer list shows %(count)d plugin fields.", count=len(shown)))
            return redirect(url_for(".index"))
    shown_keys = {f.key for f in columns.shown(fields, MODEL)}
    html = render_template(
        "settings/columns.html",
        form=form,
        groups=_groups(fields),
        shown=shown_keys,
        error=error,
    )
    return html, 422 if error else 200
