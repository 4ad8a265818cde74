"""The sales plugin's one blueprint (``/sales/…``); each part of the plugin adds its routes.

Every page needs a signed-in member of the current company (the core answers 404 for companies
that have not enabled the plugin before this guard runs).
"""

from __future__ import annotations

from flask import Blueprint, g
from flask_login import login_required

from core.web.helpers import require_member

bp = Blueprint(
    "sales",
    __name__,
    url_prefix="/sales",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

#: Roles that keep the company's sales settings (stages, targets, value rules).
MANAGERS = ("admin", "manager")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def is_manager() -> bool:
    """Whether the current member may change the company's sales settings."""
    member = g.get("membership")
    return member is not None and member.role in MANAGERS
