"""Record rules and the PII permission: which customers a member sees, and how.

A **record rule** narrows what a role sees of the company's customers. The rule of each role is
data (:data:`DEFAULT_RULES`, a role → rule-name mapping that a company may override with its
setting ``record_rules``), and the rules themselves are named SQL conditions
(:data:`RULE_NAMES`):

``all``
    every customer of the company;
``own_or_team``
    customers whose owner is the member or a member of the member's team (``Membership.team_id``
    in the current company); a member without a team sees their own;
``own``
    customers whose owner is the member.

Like :mod:`core.tenancy`, the rule is applied once, to every ORM statement of a web request that
reads, updates or deletes customers (list, detail, search, export, API, dashboard, the ticket
list's customer join, pickers), through ``with_loader_criteria``. Relationship loads
(``ticket.customer``) are not narrowed: a ticket or interaction page reached directly follows its
own page's rules and still names its customer. CLI commands, jobs and tests outside a request are
not narrowed; code that must see every customer inside a request says so with
:func:`all_customers`.

**Permissions** are declared in :mod:`core.permissions` (core) and by plugins
(``guanxi_permissions``); :func:`has_permission` answers for the request's member. Roles without
``pii`` (by default only ``viewer``) see phone numbers, ID numbers and addresses masked
(``138****8000``) on pages, in exports and in the API (:func:`phone`, :func:`mask`). Roles
without ``export`` (by default sales reps and viewers: a customer list should not leave with a
rep) cannot download lists or reports. A company may change who lacks which permission with its
setting ``permissions``. See docs/access.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import g, has_request_context
from sqlalchemy import event, false, select, true
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from core import permissions
from core.tenancy import _unscoped, current_company_id

#: Record rule of each role for customers (a company may override it: setting ``record_rules``).
DEFAULT_RULES: dict[str, str] = {
    "admin": "all",
    "manager": "all",
    "service_agent": "all",
    "viewer": "all",
    "sales_rep": "own_or_team",
}

#: The rule of a role the mapping does not name (a plugin's role): record rules narrow only the
#: roles they name. A rule name that is not in :data:`RULE_NAMES` counts as ``own`` (fail closed).
FALLBACK_RULE = "all"

SETTING_KEY = "record_rules"
PERMISSIONS_KEY = "permissions"

_everything: ContextVar[bool] = ContextVar("guanxi_all_customers", default=False)
_fixed: ContextVar[tuple[bool, list[int] | None]] = ContextVar(
    "guanxi_fixed_owners", default=(False, None)
)


@contextmanager
def owners_scope(owners: list[int] | None) -> Iterator[None]:
    """Narrow the block to customers of ``owners`` (``None``: all), as computed by
    :func:`visible_owner_ids` during a request: for a streamed response that outlives it."""
    token = _fixed.set((True, owners))
    try:
        yield
    finally:
        _fixed.reset(token)


@contextmanager
def all_customers() -> Iterator[None]:
    """Run the block without the record rule (system work inside a request: audits, merges)."""
    token = _everything.set(True)
    try:
        yield
    finally:
        _everything.reset(token)


def _member() -> Any:
    """The request's membership in the company in scope, or ``None``."""
    if not has_request_context():
        return None
    member = g.get("membership")
    if member is None or member.company_id != current_company_id():
        return None
    return member


def _settings() -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """The company in scope's record rules (:func:`rules`) and permission overrides
    (:func:`company_permissions`): its two settings, read in one statement and kept for the
    rest of the request (a request reads them for its first customer query and again to mask
    phone numbers). Outside a company: the defaults and no overrides."""
    from core.db import db
    from core.models import CompanySetting

    company_id = current_company_id()
    if company_id is None:
        return dict(DEFAULT_RULES), {}
    if has_request_context():
        cached = g.get("_guanxi_access_settings")
        if cached is not None and cached[0] == company_id:
            return cached[1]
    with all_customers():
        values = dict(
            db.session.execute(
                select(CompanySetting.key, CompanySetting.value).where(
                    CompanySetting.key.in_((SETTING_KEY, PERMISSIONS_KEY))
                )
            ).all()
        )
    found = (
        merged_rules(values.get(SETTING_KEY)),
        permissions.overrides(values.get(PERMISSIONS_KEY)),
    )
    if has_request_context():
        g._guanxi_access_settings = (company_id, found)
    return found


def rules() -> dict[str, str]:
    """Role → rule name for the company in scope (defaults overlaid by its setting)."""
    return _settings()[0]


def rule_for(role: str | None) -> str:
    """The name of the customer record rule of ``role`` (an unknown name counts as ``own``)."""
    return rule_in(rules(), role)


def rule_in(mapping: dict[str, str], role: str | None) -> str:
    """The rule of ``role`` under a role → rule ``mapping`` like :func:`rules`'s (an unknown
    rule name counts as ``own``)."""
    name = mapping.get(role or "", FALLBACK_RULE)
    return name if name in RULE_NAMES else "own"


def merged_rules(value: Any) -> dict[str, str]:
    """:data:`DEFAULT_RULES` overlaid by a company's setting ``record_rules`` (its JSON value)."""
    merged = dict(DEFAULT_RULES)
    if isinstance(value, dict):
        merged.update({k: v for k, v in value.items() if isinstance(v, str)})
    return merged


def current_rule() -> str:
    """The rule narrowing the current request (``all`` outside requests)."""
    member = _member()
    return "all" if member is None else rule_for(member.role)


def _team_owner_ids(member: Any) -> list[int]:
    from core.db import db
    from core.models import Membership

    if member.team_id is None:
        return [member.user_id]
    ids = db.session.scalars(
        select(Membership.user_id).where(Membership.team_id == member.team_id)
    ).all()
    return sorted({member.user_id, *ids})


def _owner_ids(member: Any, rule: str) -> list[int] | None:
    """Owners whose customers ``member`` sees under ``rule`` (``None``: all). Cached per request."""
    if rule == "all":
        return None
    cached = g.get("_guanxi_visible_owners")
    if cached is not None and cached[0] == (member.id, rule):
        return cached[1]
    ids = RULE_NAMES[rule](member)
    g._guanxi_visible_owners = ((member.id, rule), ids)
    return ids


#: The rules a role may be given: each maps a membership to the owners it sees (None: all).
RULE_NAMES: dict[str, Callable[[Any], list[int] | None]] = {
    "all": lambda member: None,
    "own_or_team": _team_owner_ids,
    "own": lambda member: [member.user_id],
}


def visible_owner_ids() -> list[int] | None:
    """Owner ids whose customers the current request may see; ``None`` means every customer."""
    fixed, owners = _fixed.get()
    if fixed:
        return None if _everything.get() else owners
    member = _member()
    if member is None or _everything.get():
        return None
    rule = rule_for(member.role)
    with all_customers():
        return _owner_ids(member, rule)


def customer_clause(entity: Any = None) -> Any:
    """A SQL condition on ``entity`` (default ``Customer``) true for customers the request sees."""
    from core.models import Customer

    entity = entity if entity is not None else Customer
    owners = visible_owner_ids()
    if owners is None:
        return true()
    if not owners:
        return false()
    return entity.owner_id.in_(owners)


def can_see(customer: Any) -> bool:
    """Whether the current request's record rule lets it see ``customer`` (a loaded row)."""
    owners = visible_owner_ids()
    return owners is None or customer.owner_id in owners


def company_permissions() -> dict[str, tuple[str, ...]]:
    """The company in scope's setting ``permissions`` as ``{permission: roles without it}``
    (see :mod:`core.permissions`); empty outside a company. Cached per request."""
    return _settings()[1]


def has_permission(name: str) -> bool:
    """Whether the request's member holds permission ``name`` in the company in scope: the
    declaration's default roles, unless the company setting ``permissions`` names it. Outside
    a member's request (CLI, jobs): yes. A name nobody declared: no, ever (fail closed)."""
    if name not in permissions.declared():
        return False
    member = _member()
    if member is None:
        return True
    return permissions.grant(name, member.role, company_permissions()).held


def mask_phone(value: str | None) -> str:
    """``13800138000`` → ``138****8000``: the first three and last four characters kept."""
    if not value:
        return ""
    text = value.strip()
    if len(text) < 8:
        return "****" + text[-2:] if len(text) > 4 else "****"
    return text[:3] + "****" + text[-4:]


def mask_address(value: str | None) -> str:
    """``北京市朝阳区建国路88号`` → ``北京市朝阳区****``: the first third (at most six characters,
    about the city and district) kept, the street and number hidden."""
    if not value:
        return ""
    text = value.strip()
    return text[: min(6, len(text) // 3)] + "****"


def mask(value: Any, kind: str = "id") -> Any:
    """``value`` masked as personal data of ``kind`` (``phone``, ``id``, ``address``); ``None``
    stays ``None``. Numbers and dates become ``****``."""
    if value is None or value == "":
        return value
    if not isinstance(value, str):
        return "****"
    return mask_address(value) if kind == "address" else mask_phone(value)


def private(value: Any, kind: str = "id") -> Any:
    """``value`` as the current request may see it: whole with ``pii``, else :func:`mask`."""
    if value is None or value == "" or has_permission("pii"):
        return value
    return mask(value, kind)


def phone(value: str | None) -> str:
    """A phone number as the current request may see it (masked without ``pii``)."""
    if not value:
        return ""
    return value if has_permission("pii") else mask_phone(value)


@event.listens_for(Session, "do_orm_execute")
def _narrow_customers(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load:
        return
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if _everything.get() or _unscoped.get() or state.execution_options.get("guanxi_unscoped"):
        return
    if _member() is None and not _fixed.get()[0]:
        return
    from core.models import Customer

    owners = visible_owner_ids()
    if owners is None:
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            Customer,
            lambda cls: cls.owner_id.in_(owners),
            include_aliases=True,
            propagate_to_loaders=False,
        )
    )
