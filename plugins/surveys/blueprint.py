"""The surveys plugin's blueprints: staff pages under ``/surveys`` and the public answer page
under ``/p/<company code>/surveys/<token>``.

Staff pages need a signed-in member of the current company (the core answers 404 for companies
that have not enabled the plugin before this guard runs). The public blueprint needs no login:
the core resolves the company from the URL (404 when unknown or without the plugin).
"""

from __future__ import annotations

from flask import Blueprint, abort, g
from flask_babel import gettext as _
from flask_login import login_required

from core.extend import PublicBlueprint
from core.web.helpers import require_member, role

bp = Blueprint("surveys", __name__, url_prefix="/surveys", template_folder="templates")
public_bp = PublicBlueprint(
    "surveys_public", __name__, url_prefix="/surveys", template_folder="templates"
)

#: Roles that design questionnaires and run campaigns.
MANAGERS = ("admin", "manager")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def is_manager() -> bool:
    """Whether the current member designs questionnaires and runs campaigns."""
    member = g.get("membership")
    return member is not None and member.role in MANAGERS


def require_manager() -> None:
    if not is_manager():
        abort(403, _("Only admins and managers design surveys and run campaigns."))


def can_enter() -> bool:
    """Every role but ``viewer`` enters answers taken on the phone."""
    return role() not in (None, "viewer")
