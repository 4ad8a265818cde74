"""Template context: the current company, the user's companies, the menu, labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, g, session
from flask_login import current_user

from core import access, choices
from core.db import db
from core.i18n import pick
from core.tenancy import current_company_id, unscoped


@dataclass(frozen=True)
class MenuItem:
    """A navigation entry: ``endpoint`` (Flask endpoint name), labels and a sort ``order``."""

    endpoint: str
    label: str
    label_zh: str = ""
    order: int = 100
    #: Roles that see the entry (empty: everyone).
    roles: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


CORE_MENU = [
    MenuItem("dashboard.index", "Dashboard", "工作台", 0),
    MenuItem("customers.index", "Customers", "客户", 10),
    MenuItem("channels.index", "Channels", "渠道", 30),
    MenuItem("tickets.index", "Tickets", "服务工单", 40),
    MenuItem("interactions.next_steps", "Next steps", "待办跟进", 50),
    MenuItem("reports.index", "Reports", "报表", 60),
    MenuItem("settings.index", "Settings", "设置", 90, roles=("admin", "manager")),
]


def menu() -> list[MenuItem]:
    """The core's entries plus those of the company's enabled plugins, by ``order``."""
    from core.models import Company
    from core.plugins import current
    from core.web.context import enabled_plugins

    company_id = current_company_id()
    if company_id is None:
        return []
    company = db.session.get(Company, company_id)
    items = list(CORE_MENU)
    for found in current().hooks(enabled_plugins()).guanxi_menu_items(company=company):
        items.extend(found or [])
    member = g.get("membership")
    role = member.role if member is not None else None
    items = [m for m in items if not m.roles or role in m.roles]
    return sorted(items, key=lambda m: m.order)


def active_entry(items: list[MenuItem]) -> str | None:
    """The endpoint of the menu entry the current page belongs to: the entry whose address is
    the longest prefix of the page's path (``/sales/orders/12`` belongs to 订单, not to 销售机会),
    else the only entry of the page's blueprint; ``None`` when neither tells."""
    from flask import request, url_for

    path = request.path.rstrip("/") + "/"
    best, best_len = None, 0
    for item in items:
        prefix = url_for(item.endpoint).rstrip("/") + "/"
        if path.startswith(prefix) and len(prefix) > best_len:
            best, best_len = item.endpoint, len(prefix)
    if best is not None:
        return best
    blueprint = (request.endpoint or "").split(".")[0]
    same = [m.endpoint for m in items if m.endpoint.split(".")[0] == blueprint]
    return same[0] if len(same) == 1 else None


def memberships() -> list[Any]:
    from core.models import Company, Membership

    if not current_user.is_authenticated:
        return []
    with unscoped():
        return db.session.execute(
            db.select(Company, Membership.role)
            .join(Membership, Membership.company_id == Company.id)
            .where(Membership.user_id == current_user.id)
            .order_by(Company.name)
        ).all()


def init_app(app: Flask) -> None:
    @app.context_processor
    def _context() -> dict[str, Any]:
        from core.models import Company

        company_id = current_company_id()
        company = db.session.get(Company, company_id) if company_id else None
        return {
            "current_company": company,
            "membership": g.get("membership"),
            "memberships": memberships,
            "menu": menu,
            "active_entry": active_entry,
            "choice_label": choices.label,
            "pick": pick,
            "has_permission": access.has_permission,
            "locale": session.get("locale") or getattr(current_user, "locale", None) or "zh_CN",
        }


def role() -> str | None:
    """The current user's role in the current company (``None`` when not a member)."""
    member = g.get("membership")
    return member.role if member is not None else None


def require_member() -> None:
    """Refuse (403) a page of the company's data when no company is chosen."""
    from flask import abort
    from flask_babel import gettext as _

    if current_company_id() is None:
        abort(403, _("Choose a company first."))
