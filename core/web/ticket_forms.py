"""The forms of the ticket pages: new ticket, workflow step, assignment, service recovery,
follow-up, and the settings (compensation limits, SLA policies, follow-up threshold)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, StopValidation
from wtforms.widgets import HiddenInput

from core import followup, recovery
from core.choices import options
from core.db import db
from core.i18n import pick
from core.models import Contact, Customer, Membership, SlaPolicy, Team, User
from core.security import ROLES
from core.web.ticket_queries import MAX_ID


def members() -> list[tuple[int, str, str]]:
    """``(user id, name, role)`` of the company's members who may work on tickets."""
    return list(
        db.session.execute(
            select(User.id, User.name, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.role != "viewer")
            .order_by(User.name, User.id)
        ).all()
    )


def teams() -> list[tuple[int, str]]:
    return list(db.session.execute(select(Team.id, Team.name).order_by(Team.name)).all())


# -- forms ------------------------------------------------------------------------------------


def _finite(form: FlaskForm, field: Any) -> None:
    """Refuse NaN and infinities (which Decimal parses) before range checks compare them."""
    if isinstance(field.data, Decimal) and not field.data.is_finite():
        field.errors[:] = []
        raise StopValidation(_("Not a valid amount."))


def choices(pairs: Iterable[tuple[Any, str]], blank: str | None = None) -> list[SelectChoice]:
    out = [SelectChoice("", blank)] if blank is not None else []
    return out + [SelectChoice(str(value), text) for value, text in pairs]


class TicketForm(FlaskForm):
    customer_id = IntegerField(
        _l("Customer number"),
        validators=[
            InputRequired(message=_l("Choose a customer.")),
            NumberRange(min=1, max=MAX_ID, message=_l("No such customer.")),
        ],
    )
    contact_id = SelectField(_l("Contact"), default="")
    type = SelectField(_l("Type"), validators=[InputRequired()])
    priority = SelectField(_l("Priority"), validators=[InputRequired()])
    intake_channel = SelectField(_l("Intake channel"), validators=[InputRequired()])
    subject = StringField(_l("Subject"), validators=[InputRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=10000)])
    assignee_id = SelectField(_l("Assignee"), default="")
    team_id = SelectField(_l("Team"), default="")

    def validate_customer_id(self, field: Any) -> None:
        if field.errors or not isinstance(field.data, int) or not 0 < field.data <= MAX_ID:
            return  # already refused (not a number, out of range)
        if db.session.get(Customer, field.data) is None:
            raise StopValidation(_("No such customer."))


class TransitionForm(FlaskForm):
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    comment = TextAreaField(_l("Comment"), validators=[Optional(), Length(max=5000)])
    assignee_id = SelectField(_l("Assign to"), default="")


class AssignmentForm(FlaskForm):
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    assignee_id = SelectField(_l("Assignee"), default="")
    team_id = SelectField(_l("Team"), default="")


class RecoveryForm(FlaskForm):
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])
    apology = BooleanField(_l("Apologised to the customer"))
    compensation = DecimalField(
        _l("Compensation (¥)"),
        places=2,
        validators=[Optional(), _finite, NumberRange(min=0, max=10**9)],
    )
    recovery_note = TextAreaField(_l("Recovery note"), validators=[Optional(), Length(max=5000)])


class FollowUpForm(FlaskForm):
    customer_score = IntegerField(
        _l("Customer's score (1–5)"),
        validators=[InputRequired(message=_l("Give the customer's score.")), NumberRange(1, 5)],
    )
    quality_score = IntegerField(
        _l("Internal quality score (0–100)"), validators=[Optional(), NumberRange(0, 100)]
    )
    result = TextAreaField(_l("What the customer said"), validators=[Optional(), Length(max=5000)])
    contact_id = SelectField(_l("Contact reached"), default="")


def member_choices(blank: str) -> list[SelectChoice]:
    return choices(((uid, name) for uid, name, _role in members()), blank)


def contact_choices(customer_id: int | None) -> list[SelectChoice]:
    contacts: list[tuple[int, str]] = []
    if customer_id is not None:
        contacts = list(
            db.session.execute(
                select(Contact.id, Contact.name)
                .where(Contact.customer_id == customer_id)
                .order_by(Contact.name)
            ).all()
        )
    return choices(contacts, "—")


def id_or_none(raw: str | None) -> int | None:
    return int(raw) if raw else None


# -- settings: recovery limits, SLA policies, follow-up threshold -------------------------------


class LimitsForm(FlaskForm):
    """One field per role, added by :func:`limits_form`."""


class SlaForm(FlaskForm):
    """Two fields per priority plus the follow-up threshold, added by :func:`sla_form`."""

    followup_threshold = IntegerField(
        _l("Reopen when the customer's follow-up score is at most"),
        description=_l("1–5 scale; 0 never reopens."),
        validators=[InputRequired(), NumberRange(0, 4)],
    )


def limits_form(formdata: Any = None) -> LimitsForm:
    current_limits = recovery.limits()
    attrs: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for name in recovery.LIMIT_ROLES:
        label, label_zh = ROLES.get(name, (name, name))
        attrs[f"limit_{name}"] = DecimalField(
            pick(label, label_zh),
            places=2,
            description=_l("Empty: no limit. 0: may not grant compensation."),
            validators=[Optional(), _finite, NumberRange(min=0, max=10**9)],
        )
        data[f"limit_{name}"] = current_limits.get(name)
    form_class: Callable[..., LimitsForm] = type("LimitsFormBound", (LimitsForm,), attrs)
    form = form_class(formdata=formdata, data=None if formdata is not None else data)
    form.role_keys = [f"limit_{r}" for r in recovery.LIMIT_ROLES]
    return form


def sla_form(formdata: Any = None) -> SlaForm:
    from core.defaults import DEFAULT_SLA

    stored = {p.priority: p for p in db.session.scalars(select(SlaPolicy))}
    attrs: dict[str, Any] = {}
    data: dict[str, Any] = {"followup_threshold": followup.threshold()}
    rows = []
    for value, text in options("ticket_priority"):
        first_default, resolve_default = DEFAULT_SLA.get(value, DEFAULT_SLA["normal"])
        policy = stored.get(value)
        first_key, resolve_key = f"{value}__first", f"{value}__resolution"
        minutes = [InputRequired(), NumberRange(1, 60 * 24 * 366)]
        attrs[first_key] = IntegerField(
            _l("First response (working minutes)"), validators=list(minutes)
        )
        attrs[resolve_key] = IntegerField(
            _l("Resolution (working minutes)"), validators=list(minutes)
        )
        data[first_key] = policy.first_response_minutes if policy else first_default
        data[resolve_key] = policy.resolution_minutes if policy else resolve_default
        rows.append((value, text, first_key, resolve_key, policy is not None))
    form_class: Callable[..., SlaForm] = type("SlaFormBound", (SlaForm,), attrs)
    form = form_class(formdata=formdata, data=None if formdata is not None else data)
    form.priority_rows = rows
    return form
