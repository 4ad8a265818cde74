"""The workflow engine: one executor for every workflow in the product.

A workflow is data -- :class:`State` s and :class:`Transition` s declared by the core or a plugin
(hook ``guanxi_workflows``) for a model with ``state`` and ``version`` columns. :func:`transition`
checks, in order, that the transition exists from the record's state, that the user's role may
take it, that its required inputs are given and that its guard agrees; then it writes the new
state, appends a :class:`~core.models.WorkflowHistory` row, writes the audit log and fires
``guanxi_after_transition``. The record's ``version`` column (SQLAlchemy's ``version_id_col``)
makes the UPDATE conditional on the version that was read, so of two people closing one ticket
at once, the second gets :class:`StaleRecord` instead of silently overwriting the first.

The caller commits (or rolls back on :class:`WorkflowError`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from core import audit
from core.db import db, utcnow
from core.i18n import pick
from core.models import Membership, WorkflowHistory

CATEGORIES = ("open", "done", "cancelled")


@dataclass(frozen=True)
class State:
    """A state; ``category`` (open/done/cancelled) is what reports and clocks read."""

    name: str
    label: str
    label_zh: str = ""
    category: str = "open"

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


@dataclass(frozen=True)
class Transition:
    """A named move from any of ``sources`` to ``target``.

    ``roles``: roles allowed to take it (empty: any role but ``viewer``). ``inputs``: names of
    inputs that must be non-empty (e.g. ``comment``). ``guard(subject, inputs)`` returns ``None``
    to allow, or a message saying why not, or ``(input_name, message)`` when the objection is
    to one input (forms and the API then show it at that field).
    """

    name: str
    sources: tuple[str, ...]
    target: str
    label: str
    label_zh: str = ""
    roles: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    guard: Callable[[Any, Mapping[str, Any]], str | tuple[str, str] | None] | None = None

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


@dataclass(frozen=True)
class Workflow:
    """States and transitions for records of ``model`` whose ``workflow`` column (if any)
    names this workflow."""

    name: str
    model: type
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    initial: str
    label: str = ""
    label_zh: str = ""
    plugin: str = ""
    #: When set, new records of ``model`` for which ``selects(record)`` is true start on this
    #: workflow instead of the model's default (see :func:`choose`): a plugin gives its
    #: complaint tickets their own steps while other tickets keep the core's.
    selects: Callable[[Any], bool] | None = None
    #: When set, the states and transitions are the company's own data: ``per_company(company_id)``
    #: returns the concrete workflow for that company (same name and model), and every caller of
    #: :func:`workflow_for` gets that one. Use it when companies configure their own stages.
    per_company: Callable[[int], Workflow] | None = None

    def for_company(self, company_id: int | None) -> Workflow:
        """This workflow as it applies to ``company_id`` (itself unless it is per-company)."""
        if self.per_company is None or company_id is None:
            return self
        return self.per_company(company_id)

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(name)

    def get(self, name: str) -> Transition | None:
        for t in self.transitions:
            if t.name == name:
                return t
        return None

    def category(self, state: str) -> str:
        return self.state(state).category


class WorkflowError(Exception):
    """A transition was refused. ``code`` and ``status`` suit an HTTP answer."""

    code = "workflow_error"
    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class IllegalTransition(WorkflowError):
    code, status = "illegal_transition", 409


class NotAllowed(WorkflowError):
    code, status = "forbidden", 403


class InputRequired(WorkflowError):
    code, status = "input_required", 422


class GuardRefused(WorkflowError):
    code, status = "guard_refused", 422


class StaleRecord(WorkflowError):
    code, status = "stale", 409


def workflow_for(subject: Any) -> Workflow:
    """The workflow that governs ``subject``."""
    from core.plugins import current
    from core.tenancy import current_company_id

    workflows = current().registry.workflows
    company_id = getattr(subject, "company_id", None) or current_company_id()
    name = getattr(subject, "workflow", None)
    if isinstance(name, str) and name in workflows:
        return workflows[name].for_company(company_id)
    for wf in workflows.values():
        if isinstance(subject, wf.model):
            return wf.for_company(company_id)
    raise LookupError(f"no workflow for {type(subject).__name__}")


def choose(subject: Any) -> Workflow:
    """The workflow a new ``subject`` starts on: the first workflow of an enabled plugin whose
    ``selects`` accepts it, else the model's default (the one without ``selects``). The caller
    stores its name in ``subject.workflow`` and puts the subject in its ``initial`` state."""
    from core.plugins import current
    from core.tenancy import current_company_id
    from core.web.context import enabled_plugins

    company_id = getattr(subject, "company_id", None) or current_company_id()
    workflows = [w for w in current().registry.workflows.values() if isinstance(subject, w.model)]
    on = enabled_plugins() if company_id is not None else frozenset()
    for wf in workflows:
        if wf.selects is not None and (not wf.plugin or wf.plugin in on) and wf.selects(subject):
            return wf.for_company(company_id)
    for wf in workflows:
        if wf.selects is None:
            return wf.for_company(company_id)
    raise LookupError(f"no workflow for {type(subject).__name__}")


def role_of(user: Any, company_id: int) -> str | None:
    """The role ``user`` has in ``company_id``, or ``None``."""
    return db.session.scalar(
        select(Membership.role).where(
            Membership.user_id == user.id, Membership.company_id == company_id
        )
    )


def allowed(transition: Transition, role: str | None) -> bool:
    if role is None:
        return False
    return role in transition.roles if transition.roles else role != "viewer"


def available(subject: Any, user: Any) -> list[Transition]:
    """Transitions ``user`` may take from ``subject``'s current state."""
    wf = workflow_for(subject)
    role = role_of(user, subject.company_id)
    return [t for t in wf.transitions if subject.state in t.sources and allowed(t, role)]


def transition(
    subject: Any,
    name: str,
    *,
    user: Any,
    inputs: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> WorkflowHistory:
    """Take transition ``name`` on ``subject`` as ``user``; see the module docstring.

    ``at`` (aware UTC, default now) is when it happened: imports and demo data replay past
    transitions with their real times, so history and clocks read as they would have.
    """
    from core.plugins import current
    from core.web.context import enabled_plugins

    inputs = dict(inputs or {})
    wf = workflow_for(subject)
    step = wf.get(name)
    if step is None:
        raise IllegalTransition(f"workflow {wf.name!r} has no transition {name!r}")
    if expected_version is not None and expected_version != subject.version:
        raise StaleRecord(
            f"{type(subject).__name__} {subject.id} was changed by someone else "
            f"(version {subject.version}, you had {expected_version}); reload and try again"
        )
    if subject.state not in step.sources:
        raise IllegalTransition(
            f"cannot {name!r} from state {subject.state!r} "
            f"(allowed from: {', '.join(step.sources)})"
        )
    role = role_of(user, subject.company_id)
    if not allowed(step, role):
        needed = ", ".join(step.roles) if step.roles else "any role but viewer"
        raise NotAllowed(f"transition {name!r} needs role {needed}; you are {role or 'no member'}")
    for key in step.inputs:
        if not str(inputs.get(key) or "").strip():
            raise InputRequired(_("Required for this step: %(input)s.", input=key), field=key)
    if step.guard is not None:
        reason = step.guard(subject, inputs)
        if isinstance(reason, tuple):
            raise GuardRefused(reason[1], field=reason[0])
        if reason:
            raise GuardRefused(reason)

    at = at or utcnow()
    source = subject.state
    subject.state = step.target
    history = WorkflowHistory(
        workflow=wf.name,
        subject_type=subject.__tablename__,
        subject_id=subject.id,
        transition=name,
        from_state=source,
        to_state=step.target,
        user_id=user.id,
        comment=inputs.get("comment"),
        created_at=at,
    )
    db.session.add(history)
    audit.record(
        "transition",
        subject.__tablename__,
        subject.id,
        {"transition": name, "from": source, "to": step.target},
        user_id=user.id,
    )
    try:
        db.session.flush()
    except StaleDataError as exc:
        db.session.rollback()
        raise StaleRecord(
            f"{type(subject).__name__} was changed by someone else while you worked on it; "
            "reload and try again"
        ) from exc
    current().hooks(enabled_plugins()).guanxi_after_transition(
        subject=subject,
        workflow=wf,
        transition=step,
        from_state=source,
        to_state=step.target,
        user=user,
        at=at,
        inputs=inputs,
    )
    return history
