"""Permissions: named rights that core and plugins declare, and roles bundle per company.

A :class:`Permission` is a declaration like an extension field: a name, a label in English and
Chinese, a description and the roles that hold it **by default**. The core declares its own
(:data:`CORE_PERMISSIONS`, through the core's ``guanxi_permissions`` hook in
:mod:`core.defaults`); a plugin returns more from ``guanxi_permissions()``. Names are unique
across the product (a duplicate stops the start-up) and a plugin's should start with its own name
(``insurance.commission_approve``).

A company changes who holds a permission with its setting ``permissions``, a JSON object
``{permission: [roles without it]}``: a permission named there is withheld from the roles
listed and held by every other role (``{"export": ["viewer"]}`` lets sales reps export).
Permissions it does not name keep their defaults.

:func:`core.access.has_permission` answers for the member of the request; a name that nobody
declared is held by nobody (fail closed). :func:`abort_without` refuses with a 403 that names
the missing permission, on a page or in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.i18n import pick
from core.security import ROLES

#: Every core role, in the order pages list them.
ALL_ROLES: tuple[str, ...] = tuple(ROLES)


@dataclass(frozen=True)
class Permission:
    """A named right. ``roles`` are the core roles holding it unless a company says otherwise;
    ``others`` whether a role the core does not know (a plugin's) holds it too."""

    name: str
    label: str
    label_zh: str = ""
    description: str = ""
    description_zh: str = ""
    roles: tuple[str, ...] = ()
    others: bool = False
    plugin: str = ""

    @property
    def text(self) -> str:
        """The label in the current user's language."""
        return pick(self.label, self.label_zh)

    @property
    def explanation(self) -> str:
        """The description in the current user's language."""
        return pick(self.description, self.description_zh)


#: The permissions the core checks. Each keeps the behaviour of the role list it replaced.
CORE_PERMISSIONS: tuple[Permission, ...] = (
    Permission(
        "pii",
        "Personal data",
        "个人信息",
        "See phone numbers, ID numbers and addresses whole; without it they are masked on "
        "pages, in the API, exports and reports.",
        "查看完整的电话号码、证件号码和地址；没有此权限时，页面、API、导出和报表中均打码显示。",
        roles=("admin", "manager", "sales_rep", "service_agent"),
        others=True,
    ),
    Permission(
        "export",
        "Export",
        "导出",
        "Download lists and reports as CSV or XLSX (every download is audited).",
        "以 CSV 或 XLSX 下载列表和报表（每次下载均记入审计日志）。",
        roles=("admin", "manager", "service_agent"),
        others=True,
    ),
    Permission(
        "import",
        "Import",
        "导入",
        "Import customers, contacts, channels and interactions from CSV or XLSX files, and "
        "resume a stopped import (every import is audited).",
        "从 CSV 或 XLSX 文件导入客户、联系人、渠道和互动记录，并可继续已中断的导入"
        "（每次导入均记入审计日志）。",
        roles=("admin", "manager"),
    ),
    Permission(
        "merge",
        "Merge duplicates",
        "合并重复客户",
        "Find duplicate customers and merge one into another (its contacts, interactions, "
        "tickets and plugin records move; the merge is audited).",
        "查找重复客户并将其合并（联系人、互动、工单和插件记录一并转移；合并记入审计日志）。",
        roles=("admin", "manager"),
    ),
    Permission(
        "access_review",
        "Review access",
        "查看访问权限",
        "See any member's effective permissions in the companies they belong to.",
        "查看任一成员在其所属公司中的实际权限。",
        roles=("admin",),
    ),
)


@dataclass(frozen=True)
class Grant:
    """Whether a role holds a permission in a company, and why."""

    held: bool
    #: ``default`` (the declaration's roles) or ``company`` (the company setting decided).
    source: str


def declared() -> dict[str, Permission]:
    """Every permission declared by the core and the installed plugins, by name."""
    from flask import current_app, has_app_context

    if not has_app_context() or "guanxi.plugins" not in current_app.extensions:
        return {p.name: p for p in CORE_PERMISSIONS}
    return current_app.extensions["guanxi.plugins"].registry.permissions


def overrides(value: Any) -> dict[str, tuple[str, ...]]:
    """The company setting ``permissions`` as ``{permission: roles without it}``, ignoring
    entries that are not a list of role names."""
    if not isinstance(value, dict):
        return {}
    return {
        name: tuple(r for r in roles if isinstance(r, str))
        for name, roles in value.items()
        if isinstance(name, str) and isinstance(roles, list)
    }


def grant(name: str, role: str | None, company: dict[str, tuple[str, ...]]) -> Grant:
    """Whether ``role`` holds permission ``name`` given a company's :func:`overrides`.
    An undeclared permission is held by nobody."""
    permission = declared().get(name)
    if permission is None or role is None:
        return Grant(False, "default")
    if name in company:
        return Grant(role not in company[name], "company")
    if role not in ALL_ROLES:
        return Grant(permission.others, "default")
    return Grant(role in permission.roles, "default")


class PermissionDenied(Exception):
    """Raised by :func:`abort_without` outside a request (CLI, jobs)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"permission {name!r} is needed")
        self.permission = name


def refusal(name: str) -> str:
    """The sentence a refusal shows: which permission is missing, and for which role."""
    from flask import g
    from flask_babel import gettext as _

    permission = declared().get(name)
    member = g.get("membership")
    role = member.role if member is not None else None
    label = permission.text if permission is not None else name
    return _(
        "This needs the permission “%(label)s” (%(name)s), which your role %(role)s does not "
        "hold in this company; ask an administrator.",
        label=label,
        name=name,
        role=role or "—",
    )


def abort_without(name: str) -> None:
    """Refuse the request with 403 naming permission ``name`` unless the member holds it.

    Pages show the sentence of :func:`refusal`; the API answers
    ``403 {"error": {"code": "permission", "message": …}}`` with the same sentence."""
    from flask import abort, has_request_context, request

    from core import access

    if access.has_permission(name):
        return
    if not has_request_context():
        raise PermissionDenied(name)
    if request.path.startswith("/api/"):
        from core.api.errors import ApiError

        raise ApiError(403, "permission", refusal(name))
    abort(403, refusal(name))
