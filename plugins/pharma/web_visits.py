"""Visit pages (``/pharma/visits/…``): the rep's visit planner, logging a visit, a visit with its
supervision thread, the managers' compliance dashboard with its drill-down, the visit rules, and
the dashboard box and doctor panel.

The rules live in :mod:`plugins.pharma.visits`. Every member reads the planner (reps their own
doctors; managers choose a rep or see everyone's) and the visits; managers and admins see the
compliance pages and change the rules; anyone but a viewer logs visits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    DateTimeLocalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from core import comments, interactions
from core.extend import db, utcnow
from core.models import Customer, Interaction, Membership, User
from core.web.helpers import role
from core.web.notifications import safe_next
from plugins.pharma import visits
from plugins.pharma.blueprint import bp, is_manager

MAX_ID = 2**31 - 1
FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
PAGE_SIZE = 50


def _manager_guard() -> None:
    if not is_manager():
        abort(
            403,
            _(
                "This page needs the role admin or manager; you are %(role)s.",
                role=role() or "—",
            ),
        )


def _writer_guard() -> None:
    if role() in (None, "viewer"):
        abort(403, _("Your role (%(role)s) can read visits but not log them.", role=role()))


def _month_arg() -> Any:
    raw = request.args.get("month")
    if not raw:
        return visits.month_of()
    month = visits.parse_month(raw)
    if month is None:
        abort(400, _("Not a month (YYYY-MM): %(value)s", value=raw[:20]))
    return month


def _id_arg(name: str) -> int | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or not 0 < int(raw) <= MAX_ID:
        abort(400, _("Not a valid id for %(name)s: %(value)s", name=name, value=raw[:40]))
    return int(raw)


def _members() -> list[tuple[int, str]]:
    return list(
        db.session.execute(
            select(User.id, User.name)
            .join(Membership, Membership.user_id == User.id)
            .order_by(User.name)
        ).all()
    )


# -- planner ----------------------------------------------------------------------------------


@bp.route("/visits/plan")
def visits_plan() -> Any:
    """The doctors due this month (the rep's own; managers may pick a rep or ``rep=all``), most
    visits lacking first, with tier, quota, counting visits, what remains and the last visit."""
    month = _month_arg()
    rep_raw = request.args.get("rep") or ""
    owner_id: int | None = current_user.id
    if is_manager() and rep_raw == "all":
        owner_id = None
    elif is_manager() and rep_raw:
        owner_id = _id_arg("rep")
    elif rep_raw and rep_raw != str(current_user.id):
        abort(403, _("You can see your own visit plan only."))
    show = request.args.get("show") or "behind"
    if show not in ("behind", "all"):
        abort(400, _("Not a choice: %(value)s", value=show[:20]))
    after = request.args.get("after") or None
    settings = visits.load_settings()
    try:
        page = visits.plan(
            month,
            owner_id,
            behind_only=show == "behind",
            size=PAGE_SIZE,
            after=after,
            settings=settings,
        )
    except ValueError:
        abort(400, _("Not a valid page cursor: %(value)s", value=(after or "")[:40]))
    return render_template(
        "pharma/visits/plan.html",
        page=page,
        month=month,
        months=visits.recent_months(12),
        show=show,
        rep=rep_raw,
        owner_id=owner_id,
        people=_members() if is_manager() else [],
        settings=settings,
        is_current=month == visits.month_of(),
        can_write=role() not in (None, "viewer"),
    )


# -- logging a visit --------------------------------------------------------------------------


class VisitForm(FlaskForm):
    occurred_at = DateTimeLocalField(_l("When"), format=FORMATS, validators=[InputRequired()])
    duration_minutes = IntegerField(
        _l("Effective duration (minutes)"),
        validators=[InputRequired(), NumberRange(min=0, max=interactions.MAX_DURATION)],
    )
    visit_type = SelectField(_l("Visit type"), validators=[Optional()])
    purpose = StringField(_l("Purpose"), validators=[Optional(), Length(max=200)])
    products = StringField(_l("Products discussed"), validators=[Optional(), Length(max=200)])
    samples = IntegerField(
        _l("Samples given"), validators=[Optional(), NumberRange(min=0, max=10000)]
    )
    result = TextAreaField(_l("Result"), validators=[Optional(), Length(max=5000)])
    next_step = StringField(_l("Next step"), validators=[Optional(), Length(max=200)])
    next_step_due = DateTimeLocalField(_l("Next step due"), format=FORMATS, validators=[Optional()])


def _aware(form: VisitForm, name: str) -> datetime | None:
    value = form[name].data
    if value is None:
        return None
    if not 1900 <= value.year <= 2200:
        form[name].errors = [*form[name].errors, _("Give a date between 1900 and 2200.")]
        raise ValueError(name)
    return value.replace(tzinfo=visits.zone()).astimezone(UTC)


@bp.route("/visits/new", methods=["GET", "POST"])
def visits_new() -> Any:
    """Log a visit to the doctor ``customer_id`` (kind ``visit``, with products, samples and the
    visit type); says up front how long a visit must last to count."""
    _writer_guard()
    customer_id = _id_arg("customer_id")
    if customer_id is None:
        abort(400, _("Open this page from a doctor (%(name)s is missing).", name="customer_id"))
    doctor = db.get_or_404(Customer, customer_id)
    settings = visits.load_settings()
    data = None
    if request.method == "GET":
        data = {
            "occurred_at": utcnow()
            .astimezone(visits.zone())
            .replace(tzinfo=None, second=0, microsecond=0)
        }
    form = VisitForm(data=data)
    form.visit_type.choices = [("", "—")] + [
        (k, visits.label_of(visits.VISIT_TYPES, k)) for k, _t, _z in visits.VISIT_TYPES
    ]
    if form.validate_on_submit():
        try:
            row = visits.log_visit(
                doctor,
                current_user,
                occurred_at=_aware(form, "occurred_at"),
                duration_minutes=form.duration_minutes.data,
                purpose=form.purpose.data,
                result=form.result.data,
                next_step=form.next_step.data,
                next_step_due=_aware(form, "next_step_due"),
                products=form.products.data,
                samples=form.samples.data,
                visit_type=form.visit_type.data or None,
            )
        except ValueError as exc:
            db.session.rollback()
            if isinstance(exc, interactions.InteractionError):
                target = form._fields.get(exc.field, form.occurred_at)
                target.errors = [*target.errors, exc.message]
        else:
            db.session.commit()
            if visits.counts(row, settings):
                flash(_("Visit saved; it counts toward this month's quota."))
            else:
                flash(
                    _(
                        "Visit saved. It is shorter than %(n)s minutes, so it does not count "
                        "toward the quota.",
                        n=settings.min_minutes,
                    )
                )
            default = url_for("pharma.visits_detail", interaction_id=row.id)
            return redirect(safe_next(request.args.get("next"), default))
    return render_template(
        "pharma/visits/form.html", form=form, doctor=doctor, settings=settings
    ), (422 if form.errors else 200)


# -- a visit ----------------------------------------------------------------------------------


def _visit_or_404(interaction_id: int) -> Interaction:
    row = db.session.get(Interaction, interaction_id) if interaction_id <= MAX_ID else None
    if row is None or row.kind != visits.VISIT:
        abort(404)
    return row


def _thread(row: Interaction) -> list[dict[str, Any]]:
    out = []
    for comment, author in comments.thread("interaction", row.id):
        category, text = visits.split_category(comment.body)
        out.append({"comment": comment, "author": author, "category": category, "text": text})
    return out


def _render_detail(row: Interaction, body: str = "", error: str | None = None, status: int = 200):
    settings = visits.load_settings()
    doctor = db.session.get(Customer, row.customer_id)
    who = db.session.get(User, row.user_id) if row.user_id else None
    extras = visits.visit_extras([row.id]).get(row.id, {})
    return (
        render_template(
            "pharma/visits/detail.html",
            visit=row,
            doctor=doctor,
            who=who,
            extras=extras,
            type_label=visits.label_of(visits.VISIT_TYPES, extras.get(visits.TYPE_FIELD)),
            counts=visits.counts(row, settings),
            settings=settings,
            thread=_thread(row),
            categories=visits.CATEGORIES if is_manager() else (),
            can_comment=role() not in (None, "viewer"),
            body=body,
            error=error,
        ),
        status,
    )


@bp.route("/visits/<int:interaction_id>")
def visits_detail(interaction_id: int) -> Any:
    """A visit: its doctor, duration (and whether it counts), purpose, result, products,
    samples, and the supervision thread."""
    return _render_detail(_visit_or_404(interaction_id))


@bp.route("/visits/<int:interaction_id>/comment", methods=["POST"])
def visits_comment(interaction_id: int) -> Any:
    """Comment on a visit; managers tag it summary, supervision or suggestion."""
    row = _visit_or_404(interaction_id)
    if role() in (None, "viewer"):
        abort(403, _("Your role (%(role)s) can read visits but not comment.", role=role()))
    if not FlaskForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    category = request.form.get("category") or None
    if category and not is_manager():
        abort(403, _("Only managers tag supervision comments."))
    body = request.form.get("body") or ""
    try:
        comment = visits.add_supervision(row, category, body, current_user)
    except comments.CommentError as exc:
        db.session.rollback()
        return _render_detail(row, body=body, error=exc.message, status=422)
    db.session.commit()
    flash(_("Comment added."))
    return redirect(
        url_for("pharma.visits_detail", interaction_id=row.id) + f"#comment-{comment.id}"
    )


# -- compliance -------------------------------------------------------------------------------


@bp.route("/visits/compliance")
def visits_compliance() -> Any:
    """Managers: visit compliance of a month by rep and by tier (doctors due, met, share), with
    links to the doctors behind."""
    _manager_guard()
    month = _month_arg()
    data = visits.compliance(month)
    return render_template(
        "pharma/visits/compliance.html",
        data=data,
        month=month,
        months=visits.recent_months(12),
        settings=visits.load_settings(),
    )


@bp.route("/visits/compliance/doctors")
def visits_compliance_doctors() -> Any:
    """Managers: the doctors behind their quota in a month, of one rep and/or one tier (keyset
    pages); ``show=all`` lists the met ones too."""
    _manager_guard()
    month = _month_arg()
    rep = _id_arg("rep")
    tier = (request.args.get("tier") or "").strip()[:20] or None
    show = request.args.get("show") or "behind"
    if show not in ("behind", "all"):
        abort(400, _("Not a choice: %(value)s", value=show[:20]))
    after = request.args.get("after") or None
    try:
        page = visits.plan(
            month, rep, behind_only=show == "behind", tier=tier, size=PAGE_SIZE, after=after
        )
    except ValueError:
        abort(400, _("Not a valid page cursor: %(value)s", value=(after or "")[:40]))
    rep_name = db.session.scalar(select(User.name).where(User.id == rep)) if rep else None
    return render_template(
        "pharma/visits/doctors.html",
        page=page,
        month=month,
        rep=rep,
        rep_name=rep_name,
        tier=tier,
        show=show,
    )


# -- settings ---------------------------------------------------------------------------------


@bp.route("/visits/settings", methods=["GET", "POST"])
def visits_settings() -> Any:
    """Managers: quotas per tier, the minimum effective duration and the reminder day; saving
    validates, stores and re-applies them to this month's quotas."""
    _manager_guard()
    settings = visits.load_settings()
    tiers = visits.known_tiers(settings)
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {
        "min_minutes": settings.min_minutes,
        "reminder_day": settings.reminder_day,
        **{f"quota_{t}": settings.quota_of(t) for t in tiers},
        "new_tier": "",
        "new_quota": "",
    }
    if request.method == "POST":
        if not FlaskForm().validate_on_submit():
            abort(400, _("The form expired; reload the page and try again."))
        form = request.form
        values = {key: form.get(key, "") for key in values}
        quotas: dict[str, Any] = {t: (form.get(f"quota_{t}") or "0").strip() for t in tiers}
        new_tier = (form.get("new_tier") or "").strip()
        if new_tier:
            quotas[new_tier] = (form.get("new_quota") or "").strip()
        data = {
            "quotas": quotas,
            "min_minutes": (form.get("min_minutes") or "").strip(),
            "reminder_day": (form.get("reminder_day") or "").strip(),
        }
        try:
            visits.save_settings(data, user_id=current_user.id)
        except visits.SettingsError as exc:
            db.session.rollback()
            errors = exc.errors
            if new_tier and f"quota_{new_tier}" in errors:
                errors["new_quota"] = errors.pop(f"quota_{new_tier}")
            if "tier" in errors:
                errors["new_tier"] = errors.pop("tier")
        else:
            db.session.commit()
            flash(_("Visit rules saved; this month's quotas follow them."))
            return redirect(url_for("pharma.visits_settings"))
    return render_template(
        "pharma/visits/settings.html",
        tiers=tiers,
        values=values,
        errors=errors,
        defaults=visits.DEFAULTS,
    ), (422 if errors else 200)


# -- dashboard box and doctor panel -------------------------------------------------------------


def render_widget(user: Any) -> str:
    """The dashboard box: the user's doctors still due this month (most lacking first)."""
    month = visits.month_of()
    page = visits.plan(month, user.id, behind_only=True, size=6)
    return render_template("pharma/visits/_widget.html", page=page, month=month)


def render_panel(customer: Customer) -> str:
    """The doctor's quota this month on the customer page, and this month's visits."""
    status = visits.doctor_status(customer)
    return render_template(
        "pharma/visits/_panel.html",
        customer=customer,
        s=status,
        can_write=g.get("membership") is not None and role() not in (None, "viewer"),
    )
