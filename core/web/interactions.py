"""Interaction pages: log one against a customer, edit your own, "My next steps".

``/interactions/new?customer_id=12`` logs against a customer; add ``contact_id``,
``ticket_id``, or ``subject_type`` and ``subject_id`` (a plugin's record) to preset them, and
``next`` to come back to a page afterwards. Times are entered and shown in the company's
time zone and stored in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateTimeLocalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from core import interactions
from core.choices import options
from core.db import db, utcnow
from core.models import Contact, Customer, Interaction, Membership, ServiceTicket, User
from core.tenancy import company_scope, current_company_id
from core.web.helpers import require_member, role
from core.web.notifications import safe_next

bp = Blueprint("interactions", __name__, url_prefix="/interactions")

MAX_ID = 2**31 - 1
FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
MANAGING_ROLES = ("admin", "manager")


# -- time zone ------------------------------------------------------------------------------


def company_zone() -> ZoneInfo:
    """The current company's time zone (read once per request)."""
    if "_activity_zone" not in g:
        g._activity_zone = interactions.company_zone()
    return g._activity_zone


def activity_time(moment: datetime | None) -> str:
    """``2026-11-25 14:30`` in the company's time zone ('' for none)."""
    if moment is None:
        return ""
    return moment.astimezone(company_zone()).strftime("%Y-%m-%d %H:%M")


@bp.app_context_processor
def _time_helpers() -> dict[str, Any]:
    return {"activity_time": activity_time}


# -- access ---------------------------------------------------------------------------------


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def _require_writer() -> None:
    if role() in (None, "viewer"):
        abort(403, _("Your role (%(role)s) can read interactions but not log them.", role=role()))


def _int_arg(name: str, required: bool = False) -> int | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        if required:
            abort(400, _("Open this page from a customer (%(name)s is missing).", name=name))
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_ID:
        abort(400, _("Not a valid id for %(name)s: %(value)s", name=name, value=raw[:40]))
    return int(raw)


# -- the form -------------------------------------------------------------------------------


class InteractionForm(FlaskForm):
    kind = SelectField(_l("Kind"), validators=[InputRequired()])
    occurred_at = DateTimeLocalField(_l("When"), format=FORMATS, validators=[InputRequired()])
    duration_minutes = IntegerField(
        _l("Duration (minutes)"),
        validators=[Optional(), NumberRange(min=0, max=interactions.MAX_DURATION)],
    )
    contact_id = SelectField(_l("Contact"), validate_choice=False)
    ticket_id = SelectField(_l("Ticket"), validate_choice=False)
    purpose = StringField(_l("Purpose"), validators=[Optional(), Length(max=200)])
    result = TextAreaField(_l("Result"), validators=[Optional(), Length(max=5000)])
    next_step = StringField(_l("Next step"), validators=[Optional(), Length(max=200)])
    next_step_due = DateTimeLocalField(_l("Next step due"), format=FORMATS, validators=[Optional()])


def _choices(customer: Customer) -> tuple[list[SelectChoice], list[SelectChoice]]:
    contacts = db.session.execute(
        select(Contact.id, Contact.name)
        .where(Contact.customer_id == customer.id)
        .order_by(Contact.name)
    ).all()
    tickets = db.session.execute(
        select(ServiceTicket.id, ServiceTicket.subject)
        .where(ServiceTicket.customer_id == customer.id)
        .order_by(ServiceTicket.id.desc())
        .limit(100)
    ).all()
    none = SelectChoice("", "—")
    return (
        [none, *[SelectChoice(str(i), name) for i, name in contacts]],
        [none, *[SelectChoice(str(i), f"#{i} {subject}") for i, subject in tickets]],
    )


def _form(customer: Customer, **kwargs: Any) -> InteractionForm:
    form = InteractionForm(**kwargs)
    form.kind.choices = [SelectChoice(v, label) for v, label in options("interaction_kind")]
    form.contact_id.choices, form.ticket_id.choices = _choices(customer)
    return form


def _local(moment: datetime | None) -> datetime | None:
    """A UTC moment as the naive company-local time the form shows."""
    if moment is None:
        return None
    return moment.astimezone(company_zone()).replace(tzinfo=None, second=0, microsecond=0)


def _aware(form: InteractionForm, name: str) -> datetime | None:
    """The form's naive local time as an aware datetime; a field error when out of range."""
    value = form[name].data
    if value is None:
        return None
    if not 1900 <= value.year <= 2200:
        form[name].errors = [*form[name].errors, _("Give a date between 1900 and 2200.")]
        raise ValueError(name)
    return value.replace(tzinfo=company_zone()).astimezone(UTC)


def _id_field(form: InteractionForm, name: str) -> int | None:
    raw = (form[name].data or "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        form[name].errors = [*form[name].errors, _("Choose from the list.")]
        raise ValueError(name)
    return int(raw)


def _values(form: InteractionForm) -> dict[str, Any]:
    """The validated form as :func:`core.interactions.log` values (``ValueError`` on bad ids
    or dates, with the message put on the field)."""
    return {
        "kind": form.kind.data,
        "occurred_at": _aware(form, "occurred_at"),
        "duration_minutes": form.duration_minutes.data,
        "purpose": form.purpose.data,
        "result": form.result.data,
        "contact_id": _id_field(form, "contact_id"),
        "ticket_id": _id_field(form, "ticket_id"),
        "next_step": form.next_step.data,
        "next_step_due": _aware(form, "next_step_due"),
    }


def _save(form: InteractionForm, customer: Customer, row: Interaction | None, **extra: Any) -> Any:
    """Validate and write; the redirect on success, else ``None`` (errors on the fields)."""
    if not form.validate_on_submit():
        return None
    try:
        values = {**_values(form), **extra}
        if row is None:
            row = interactions.log(customer, current_user, **values)
        else:
            interactions.update(row, customer, **values)
    except ValueError as exc:
        db.session.rollback()
        if isinstance(exc, interactions.InteractionError):
            field = form._fields.get(exc.field, form.kind)
            field.errors = [*field.errors, exc.message]
        return None
    db.session.commit()
    flash(_("Interaction saved."))
    default = url_for("customers.detail", customer_id=customer.id)
    return redirect(safe_next(request.args.get("next"), default))


def _subject_label(subject_type: str | None, subject_id: int | None) -> str | None:
    if not subject_type or subject_id is None:
        return None
    from core import comments

    model = comments.subject_model(subject_type)
    record = db.session.get(model, subject_id) if model is not None else None
    if record is None:
        abort(404)
    return comments.subject_label(subject_type, record)


@bp.route("/new", methods=["GET", "POST"])
def create() -> Any:
    """Log an interaction with the customer named by ``customer_id``."""
    _require_writer()
    customer = db.get_or_404(Customer, _int_arg("customer_id", required=True))
    subject_type = (request.args.get("subject_type") or "").strip() or None
    subject_id = _int_arg("subject_id")
    subject_label = _subject_label(subject_type, subject_id)
    data: dict[str, Any] = {
        "kind": request.args.get("kind") or "call",
        "occurred_at": _local(utcnow()),
    }
    for name in ("contact_id", "ticket_id"):
        if _int_arg(name) is not None:
            data[name] = str(_int_arg(name))
    form = _form(customer, data=data)
    done = _save(form, customer, None, subject_type=subject_type, subject_id=subject_id)
    if done is not None:
        return done
    return render_template(
        "interactions/form.html",
        form=form,
        customer=customer,
        interaction=None,
        subject_label=subject_label,
    ), (422 if form.errors else 200)


@bp.route("/<int:interaction_id>/edit", methods=["GET", "POST"])
def edit(interaction_id: int) -> Any:
    """Edit an interaction you logged yourself."""
    _require_writer()
    row = db.get_or_404(Interaction, interaction_id) if interaction_id <= MAX_ID else abort(404)
    if row.user_id != current_user.id:
        abort(403, _("Only the person who logged an interaction can change it."))
    customer = db.session.get(Customer, row.customer_id)
    if customer is None:  # the record rule no longer lets this user see the customer
        abort(403, _("You no longer have access to this interaction's customer."))
    data = None
    if request.method == "GET":
        data = {
            "kind": row.kind,
            "occurred_at": _local(row.occurred_at),
            "duration_minutes": row.duration_minutes,
            "contact_id": str(row.contact_id or ""),
            "ticket_id": str(row.ticket_id or ""),
            "purpose": row.purpose,
            "result": row.result,
            "next_step": row.next_step,
            "next_step_due": _local(row.next_step_due),
        }
    form = _form(customer, data=data)
    done = _save(form, customer, row, subject_type=row.subject_type, subject_id=row.subject_id)
    if done is not None:
        return done
    return render_template(
        "interactions/form.html",
        form=form,
        customer=customer,
        interaction=row,
        subject_label=_subject_label(row.subject_type, row.subject_id),
    ), (422 if form.errors else 200)


# -- my next steps --------------------------------------------------------------------------


def _visible_people() -> list[tuple[int, str]] | None:
    """Whose next steps the user may see besides their own: ``None`` for everyone's (admin),
    else the members of their teams (manager), else nobody else."""
    if role() == "admin":
        return None
    if role() == "manager":
        ids = interactions.team_member_ids(current_user.id)
        return list(
            db.session.execute(
                select(User.id, User.name).where(User.id.in_(ids)).order_by(User.name)
            ).all()
        )
    return [(current_user.id, current_user.name)]


def _whose_steps() -> tuple[str, list[int] | None, list[Any] | None]:
    """``who`` of the request, the user ids whose next steps it shows (``None``: everyone's)
    and the people it may choose from; 400 for someone the user may not look at."""
    who = request.args.get("who") or "me"
    visible = _visible_people()
    people = visible
    if visible is None:  # admin: everyone in the company
        people = list(
            db.session.execute(
                select(User.id, User.name)
                .join(Membership, Membership.user_id == User.id)
                .order_by(User.name)
            ).all()
        )
    allowed = {i for i, _name in people or []}
    if who == "me":
        user_ids: list[int] | None = [current_user.id]
    elif who == "team" and role() in MANAGING_ROLES:
        user_ids = None if visible is None else sorted(allowed)
    elif who.isascii() and who.isdigit() and len(who) <= 10 and int(who) in allowed:
        user_ids = [int(who)]
    else:
        abort(400, _("You cannot see the next steps of %(who)s.", who=who[:40]))
    return who, user_ids, people


@bp.route("/next-steps")
def next_steps() -> Any:
    """The open next steps of the user (or, for managers, of their team), by due date."""
    who, user_ids, people = _whose_steps()
    after = request.args.get("after") or None
    try:
        page = interactions.next_steps(user_ids, current_app.config["LIST_PAGE_SIZE"], after)
    except ValueError:
        abort(400, _("Not a valid page cursor: %(value)s", value=(after or "")[:40]))
    return render_template(
        "interactions/next_steps.html",
        page=page,
        who=who,
        people=people if role() in MANAGING_ROLES else [],
        now=utcnow(),
        show_owner=user_ids != [current_user.id],
        can_write=role() not in (None, "viewer"),
    )


STEP_COLUMNS = (
    "due",
    "next_step",
    "customer",
    "owner",
    "kind",
    "occurred_at",
    "purpose",
    "result",
    "overdue",
)


@bp.route("/next-steps/export.<any(csv, xlsx):fmt>")
def export_next_steps(fmt: str) -> Any:
    """The next steps of the list (same ``who``) as CSV or XLSX, by due date, in the company's
    time zone; needs the ``export`` permission and is audited."""
    from core import access, exporter

    _who, user_ids, _people = _whose_steps()
    exporter.authorize("interaction", request.args)
    company_id, owners, zone, now = (
        current_company_id(),
        access.visible_owner_ids(),
        interactions.company_zone(),
        utcnow(),
    )

    def local(moment: Any) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""

    def rows() -> Any:
        after = None
        with company_scope(company_id), access.owners_scope(owners):
            while True:
                page = interactions.next_steps(user_ids, 500, after, now)
                for row, customer_name, owner_name in page.rows:
                    due = row.next_step_due
                    yield [
                        local(due),
                        row.next_step,
                        customer_name,
                        owner_name or "",
                        row.kind,
                        local(row.occurred_at),
                        row.purpose,
                        row.result,
                        "yes" if due is not None and due < now else "",
                    ]
                if page.next_after is None:
                    return
                after = page.next_after
                db.session.expunge_all()

    return exporter.download(fmt, "next-steps", STEP_COLUMNS, rows, title=_("Next steps"))


@bp.route("/<int:interaction_id>/done", methods=["POST"])
def done(interaction_id: int) -> Any:
    """Mark a next step done: your own, or (managers) one of your team's."""
    _require_writer()
    row = db.get_or_404(Interaction, interaction_id) if interaction_id <= MAX_ID else abort(404)
    if row.user_id != current_user.id:
        visible = _visible_people()
        if visible is not None and row.user_id not in {i for i, _n in visible}:
            abort(403, _("This next step is someone else's."))
    interactions.mark_done(row)
    db.session.commit()
    flash(_("Next step done: %(step)s", step=row.next_step or ""))
    return redirect(safe_next(request.form.get("next"), url_for(".next_steps")))
