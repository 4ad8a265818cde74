"""The property plugin's staff blueprint (``/property/…``); each part adds its routes.

Every page needs a signed-in member of the current company (the core answers 404 for companies
that have not enabled the plugin before this guard runs). The pages residents use without an
account live on :data:`plugins.property.public.bp` (``/p/<company>/property/…``).
"""

from __future__ import annotations

from flask import Blueprint, g
from flask_login import login_required

from core.web.helpers import require_member

bp = Blueprint("property", __name__, url_prefix="/property", template_folder="templates")

#: Roles that keep the company's property settings (estates, classifier, rules, SLAs).
MANAGERS = ("admin", "manager")
#: Roles that take complaints and dispatch them.
SERVICE_ROLES = ("admin", "manager", "service_agent")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def is_manager() -> bool:
    """Whether the current member may change the company's property settings."""
    member = g.get("membership")
    return member is not None and member.role in MANAGERS
