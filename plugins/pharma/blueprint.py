"""The pharma plugin's one blueprint (``/pharma/…``); each part of the plugin adds its routes.

Every page needs a signed-in member of the current company (the core answers 404 for companies
that have not enabled the plugin before this guard runs).
"""

from __future__ import annotations

from flask import Blueprint, g
from flask_login import login_required

from core.web.helpers import require_member

bp = Blueprint("pharma", __name__, url_prefix="/pharma", template_folder="templates")

#: Roles that keep the company's pharma settings (tier schemes, quotas) and decide overrides.
MANAGERS = ("admin", "manager")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def is_manager() -> bool:
    """Whether the current member may change the company's pharma settings."""
    member = g.get("membership")
    return member is not None and member.role in MANAGERS
