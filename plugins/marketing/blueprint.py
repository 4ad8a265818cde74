"""The marketing plugin's blueprints: staff pages under ``/marketing`` (admins and managers;
viewers read) and the public unsubscribe / open-tracking pages under
``/p/<company code>/marketing/…``."""

from __future__ import annotations

from flask import Blueprint, abort, g
from flask_babel import gettext as _
from flask_login import login_required

from core.extend import PublicBlueprint
from core.web.helpers import require_member

bp = Blueprint(
    "marketing",
    __name__,
    url_prefix="/marketing",
    template_folder="templates",
    static_folder="static",
)
public_bp = PublicBlueprint(
    "marketing_public", __name__, url_prefix="/marketing", template_folder="templates"
)

#: Roles that build segments, run campaigns and manage the loyalty program.
MANAGERS = ("admin", "manager")
#: Roles that may read the marketing pages.
READERS = (*MANAGERS, "viewer")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    member = g.get("membership")
    if member is None or member.role not in READERS:
        abort(403, _("Marketing pages are for admins and managers."))


def is_manager() -> bool:
    """Whether the current member runs campaigns and the loyalty program."""
    member = g.get("membership")
    return member is not None and member.role in MANAGERS


def require_manager() -> None:
    if not is_manager():
        abort(403, _("Only admins and managers change segments, campaigns and points."))
