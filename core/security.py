"""Roles of the core. Permissions and record rules grow here (see docs/access.md)."""

from __future__ import annotations

ROLES: dict[str, tuple[str, str]] = {
    "admin": ("Administrator", "管理员"),
    "manager": ("Manager", "经理"),
    "sales_rep": ("Sales rep", "销售代表"),
    "service_agent": ("Service agent", "客服专员"),
    "viewer": ("Viewer", "只读用户"),
}
