"""The effective permissions page (``/settings/permissions``): who may do what, and why.

Members holding ``access_review`` (by default admins) pick a member of the current company and
see, for every company that member belongs to **and in which the viewer also holds
``access_review``** (other tenants are not named), the member's role, the customer record rule of
that role and what it means, and each permission declared by the core and that company's
enabled plugins: held or not, and whether the declaration's default roles or the company's
setting ``permissions`` decided it. A refusal names the missing permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from core import access, permissions
from core.db import db
from core.i18n import pick
from core.models import Company, CompanySetting, Membership, User
from core.plugins import current as current_plugins
from core.security import ROLES
from core.tenancy import current_company_id, unscoped
from core.web.helpers import require_member

bp = Blueprint("permissions", __name__, url_prefix="/settings/permissions")

PERMISSION = "access_review"


@bp.app_template_global("private")
def _private(value: Any, kind: str = "id") -> Any:
    """``private(value, kind)`` in any template: personal data as the request may see it
    (:func:`core.access.private`)."""
    return access.private(value, kind)


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    permissions.abort_without(PERMISSION)


def rule_meaning(rule: str) -> str:
    """What record rule ``rule`` lets a member see, in the user's language."""
    return {
        "all": _("every customer of the company"),
        "own_or_team": _(
            "customers owned by the member or a member of the member's team "
            "(without a team: their own)"
        ),
        "own": _("customers owned by the member"),
    }.get(rule, rule)


def role_label(role: str) -> str:
    """A role's name in the user's language (its code when it is no core role)."""
    label = ROLES.get(role)
    return pick(*label) if label else role


@dataclass
class Row:
    """One permission as it applies to the member in one company."""

    permission: permissions.Permission
    held: bool
    source: str


@dataclass
class CompanyAccess:
    """What a member may do in one company."""

    company: Company
    role: str
    rule: str
    company_rules: bool
    rows: list[Row]


def _settings(company_id: int) -> dict[str, Any]:
    with unscoped():
        rows = db.session.execute(
            select(CompanySetting.key, CompanySetting.value).where(
                CompanySetting.company_id == company_id,
                CompanySetting.key.in_((access.SETTING_KEY, access.PERMISSIONS_KEY)),
            )
        ).all()
    return dict(rows)


def _memberships(user_id: int) -> list[Membership]:
    with unscoped():
        return list(
            db.session.scalars(
                select(Membership)
                .join(Company, Company.id == Membership.company_id)
                .where(Membership.user_id == user_id)
                .order_by(Company.name)
            )
        )


def effective(member: Membership) -> CompanyAccess:
    """The member's role, record rule and every permission of its company, with reasons."""
    settings = _settings(member.company_id)
    company_rules = settings.get(access.SETTING_KEY)
    overrides = permissions.overrides(settings.get(access.PERMISSIONS_KEY))
    enabled = current_plugins().enabled(member.company_id)
    rows = []
    for permission in permissions.declared().values():
        if permission.plugin and permission.plugin not in enabled:
            continue
        grant = permissions.grant(permission.name, member.role, overrides)
        rows.append(Row(permission, grant.held, grant.source))
    with unscoped():
        company = db.session.get(Company, member.company_id)
    return CompanyAccess(
        company=company,
        role=member.role,
        rule=access.rule_in(access.merged_rules(company_rules), member.role),
        company_rules=isinstance(company_rules, dict) and member.role in company_rules,
        rows=rows,
    )


def _reviewable(companies: list[int]) -> set[int]:
    """Of ``companies``, those in which the current user holds ``access_review``."""
    out = set()
    for member in _memberships(current_user.id):
        if member.company_id not in companies:
            continue
        overrides = permissions.overrides(_settings(member.company_id).get(access.PERMISSIONS_KEY))
        if permissions.grant(PERMISSION, member.role, overrides).held:
            out.add(member.company_id)
    return out


@bp.get("/")
def index() -> tuple[str, int]:
    """Pick a member of this company; see their effective permissions per company."""
    company_id = current_company_id()
    with unscoped():
        members = db.session.execute(
            select(User.id, User.name, User.email, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.company_id == company_id)
            .order_by(User.name, User.id)
        ).all()
    raw = request.args.get("user", "").strip()
    chosen, error, sections = None, None, []
    if raw:
        user_id = int(raw) if raw.isdigit() else None
        if user_id is None or user_id not in {m.id for m in members}:
            error = _("No member %(user)s in this company.", user=raw[:40])
        else:
            chosen = next(m for m in members if m.id == user_id)
            theirs = _memberships(user_id)
            visible = _reviewable([m.company_id for m in theirs])
            sections = [effective(m) for m in theirs if m.company_id in visible]
    html = render_template(
        "settings/permissions.html",
        members=members,
        chosen=chosen,
        error=error,
        sections=sections,
        rule_meaning=rule_meaning,
        role_label=role_label,
    )
    return html, 400 if error else 200
