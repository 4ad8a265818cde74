"""Template context: the current company, the user's companies, the menu, labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, request, session
from flask_login import current_user

from core import access, choices
from core.db import db
from core.i18n import pick
from core.tenancy import DEFAULT_ZONE, company_zone, current_company_id, unscoped


@dataclass(frozen=True)
class MenuItem:
    """A navigation entry: ``endpoint`` (Flask endpoint name), labels and a sort ``order``.

    Entries naming the same ``group`` (English label, ``group_zh`` its Chinese) are shown as
    one drop-down in the menu bar, at the place of the group's first entry, so that a company
    with several plugins keeps a menu bar that fits on one line. A group with one visible entry
    is shown as that entry.
    """

    endpoint: str
    label: str
    label_zh: str = ""
    order: int = 100
    #: Roles that see the entry (empty: everyone).
    roles: tuple[str, ...] = ()
    group: str = ""
    group_zh: str = ""

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


@dataclass(frozen=True)
class MenuGroup:
    """Menu entries shown together as one drop-down (see :class:`MenuItem`)."""

    label: str
    label_zh: str
    items: tuple[MenuItem, ...]

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(m.endpoint for m in self.items)


def menu_bar(items: list[MenuItem]) -> list[MenuItem | MenuGroup]:
    """``items`` (in menu order) as the menu bar shows them: grouped entries gathered into a
    :class:`MenuGroup` at the place of the group's first entry."""
    groups: dict[str, list[MenuItem]] = {}
    for item in items:
        if item.group:
            groups.setdefault(item.group, []).append(item)
    bar: list[MenuItem | MenuGroup] = []
    for item in items:
        members = groups.get(item.group) if item.group else None
        if not members or len(members) == 1:
            bar.append(item)
        elif members[0] is item:
            zh = next((m.group_zh for m in members if m.group_zh), "")
            bar.append(MenuGroup(item.group, zh, tuple(members)))
    return bar


CORE_MENU = [
    MenuItem("dashboard.index", "Dashboard", "工作台", 0),
    MenuItem("customers.index", "Customers", "客户", 10),
    MenuItem("channels.index", "Channels", "渠道", 30),
    MenuItem("tickets.index", "Tickets", "服务工单", 40),
    MenuItem("interactions.next_steps", "Next steps", "待办跟进", 50),
    MenuItem("reports.index", "Reports", "报表", 60),
    MenuItem("settings.index", "Settings", "设置", 90, roles=("admin", "manager")),
    MenuItem("audit.index", "Audit log", "审计日志", 95, roles=("admin", "manager")),
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


def csrf_checked_in_view(view: Any) -> Any:
    """Mark an upload view whose CSRF token the view itself checks (with :func:`check_csrf`,
    after setting the body limit it accepts): the app-wide check would read the whole body
    first, so an oversized upload would end in a bare 413 instead of a message at the field."""
    from core.app import csrf

    return csrf.exempt(view)


def check_csrf(token: str | None) -> None:
    """Refuse (Flask-WTF's ``CSRFError``, a 400) a form whose CSRF token is missing or wrong;
    for views marked with :func:`csrf_checked_in_view`."""
    from flask import current_app
    from flask_wtf.csrf import CSRFError, validate_csrf
    from wtforms import ValidationError

    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CSRFError(exc.args[0]) from exc


def local(moment: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Template filter ``{{ row.created_at|local }}``: a stored (UTC) moment in the time zone
    of the company in scope, formatted with ``fmt``; '' for none."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    if not isinstance(moment, datetime):
        return "" if moment is None else str(moment)
    company_id = current_company_id()
    zone = company_zone(company_id) if company_id else ZoneInfo(DEFAULT_ZONE)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime(fmt)


def init_app(app: Flask) -> None:
    app.add_template_filter(local, "local")

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
            "menu_bar": menu_bar,
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


def keep_personal_data(form: Any, stored: Mapping[str, tuple[Any, str]]) -> list[str]:
    """An edit form for a member without the ``pii`` permission: each input named in
    ``stored`` (``{name: (stored value, masked value)}``) is shown empty with the masked value
    as its placeholder; submitted empty it keeps the stored value, typed into it replaces it.
    Returns the inputs whose stored value a submitted form kept: clear them (``data = None``)
    before showing the form again, or the page would reveal them."""
    from flask_babel import gettext as _

    kept = []
    for name, (value, masked) in stored.items():
        if value in (None, ""):
            continue
        field = form[name]
        hint = _("%(masked)s (personal data: leave empty to keep)", masked=masked)
        field.render_kw = {**(field.render_kw or {}), "placeholder": hint}
        if request.method != "POST":
            field.data = None
        elif field.data in (None, ""):
            field.data, field.raw_data = value, [str(value)]
            kept.append(name)
    return kept
