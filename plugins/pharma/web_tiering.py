"""Doctor tiering pages: the doctor list (``/pharma/doctors``: tier filter, keyset pages), a
doctor's tier page (``/pharma/doctors/<id>``, also the box on the doctor's customer page: the
tier, why, the history, override requests), and the tier schemes (``/pharma/tiering``: schemes,
versions, edit, activate, recompute; admins and managers).

The computation lives in :mod:`plugins.pharma.tiering`. Every member reads the doctor pages
(the customer record rule narrows them); members other than viewers request overrides; admins
and managers decide them and keep the schemes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from core import audit, keyset, workflow
from core import fields as ext
from core.customers import get_visible
from core.db import capped_count
from core.extend import Sort, db
from core.models import Customer, User
from core.web.helpers import role
from plugins.pharma import tiering
from plugins.pharma.blueprint import bp, is_manager
from plugins.pharma.models import (
    DoctorTier,
    TierHistory,
    TierOverride,
    TierScheme,
    TierSchemeVersion,
)

SORTS: dict[str, Sort] = {
    "score": Sort("score", DoctorTier.score, True, True, "decimal"),
    "name": Sort("name", Customer.name, False, False, "text"),
}
#: Rows of the scheme form (blank rows are left out).
FORM_CRITERIA = tiering.MAX_CRITERIA
FORM_TIERS = tiering.MAX_TIERS
HISTORY_LIMIT = 50


class ActionForm(FlaskForm):
    """A button that only carries the CSRF token."""


def _csrf() -> None:
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))


def _manager_guard() -> None:
    if not is_manager():
        abort(
            403,
            _("Tier schemes need the role admin or manager; you are %(role)s.", role=role() or "-"),
        )


def _can_request() -> bool:
    return role() not in (None, "viewer")


def _num(value: Any) -> str:
    return tiering._num(value)


# -- the doctor list ------------------------------------------------------------------------------


@dataclass
class Page:
    rows: list[Any] = field(default_factory=list)
    count: int = 0
    capped: bool = False
    next_after: str | None = None
    sort: str = "score"
    errors: dict[str, str] = field(default_factory=dict)


def _ext_table() -> Any:
    return ext.side_table("pharma", "customer")


def list_query(args: Mapping[str, str]) -> tuple[Any, Sort, dict[str, str]]:
    """The doctors (record rule applied through the customer), their tier row and archive
    fields, filtered by ``tier`` (a tier name, or ``none``) and ``q`` (name contains)."""
    errors: dict[str, str] = {}
    x = _ext_table()
    stmt = (
        select(
            Customer.id,
            Customer.name,
            DoctorTier.tier,
            DoctorTier.score,
            DoctorTier.locked_until,
            x.c.hospital_grade,
            x.c.department,
            x.c.title,
        )
        .select_from(Customer)
        .outerjoin(DoctorTier, DoctorTier.customer_id == Customer.id)
        .outerjoin(x, x.c.id == Customer.id)
        .where(Customer.kind == "doctor")
    )
    tier = (args.get("tier") or "").strip()
    if tier == "none":
        stmt = stmt.where(DoctorTier.tier.is_(None))
    elif tier:
        if len(tier) > 20:
            errors["tier"] = _("Unknown tier.")
        stmt = stmt.where(DoctorTier.tier == tier)
    if (args.get("locked") or "") == "1":
        stmt = stmt.where(DoctorTier.locked_until.is_not(None))
    q = (args.get("q") or "").strip()
    if q:
        stmt = stmt.where(Customer.name.contains(q[:100], autoescape=True))
    key = args.get("sort") or "score"
    if key not in SORTS:
        errors["sort"] = _("Must be one of: %(names)s.", names=", ".join(SORTS))
        key = "score"
    return stmt, SORTS[key], errors


def page(args: Mapping[str, str], size: int, cap: int) -> Page:
    """A page after ``args["after"]``: two queries whatever the page size."""
    stmt, sort, errors = list_query(args)
    result = Page(sort=sort.key, errors=errors)
    after = args.get("after")
    position = keyset.decode(sort, after) if after else None
    if after and position is None:
        errors["after"] = _("Must be the link of the previous page.")
    if errors:
        return result
    result.count, result.capped = capped_count(stmt, Customer.id, cap)
    if position is not None:
        value, row_id = position
        if sort.key == "score" and value is not None:
            value = float(value)
        stmt = stmt.where(keyset.after(sort, Customer.id, value, row_id))
    stmt = stmt.order_by(*keyset.order(sort, Customer.id)).limit(size + 1)
    rows = db.session.execute(stmt).all()
    result.rows = rows[:size]
    if len(rows) > size:
        last = rows[size - 1]
        value = last.score if sort.key == "score" else last.name
        if sort.key == "score" and value is not None:
            value = str(Decimal(str(value)))
        result.next_after = keyset.encode(value, last.id)
    return result


def _grade_label(value: str | None) -> str:
    from plugins.pharma import GRADES, TITLES

    for options in (GRADES, TITLES):
        for key, text, text_zh in options:
            if key == value:
                from core.i18n import pick

                return pick(text, text_zh)
    return value or ""


@bp.route("/doctors")
def doctors() -> Any:
    """Doctors with their tier and score; tier filter, keyset pages."""
    result = page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"]
    )
    version = tiering.active_version()
    counts = dict(
        db.session.execute(
            select(DoctorTier.tier, func.count())
            .join(Customer, Customer.id == DoctorTier.customer_id)
            .where(Customer.kind == "doctor")
            .group_by(DoctorTier.tier)
        ).all()
    )
    html = render_template(
        "pharma/tiering/doctors.html",
        page=result,
        tiers=tiering.load_config(version).tier_names
        if version
        else sorted(k for k in counts if k),
        counts=counts,
        grade=_grade_label,
        num=_num,
        can_manage=is_manager(),
    )
    return html, 400 if result.errors else 200


# -- a doctor's tier ------------------------------------------------------------------------------


def _doctor(customer_id: int) -> Customer:
    customer = get_visible(customer_id)
    if customer is None or customer.kind != "doctor":
        abort(404)
    return customer


def doctor_context(customer: Customer, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
    """What the tier box shows: the row, its version and rules, why, history, requests."""
    row = db.session.scalar(select(DoctorTier).where(DoctorTier.customer_id == customer.id))
    version = (
        db.session.get(TierSchemeVersion, row.scheme_version_id)
        if row and row.scheme_version_id
        else None
    )
    scheme = db.session.get(TierScheme, version.scheme_id) if version else None
    config = tiering.load_config(version) if version else None
    active = tiering.active_version()
    history = db.session.execute(
        select(TierHistory, TierSchemeVersion.number, TierScheme.name, User.name)
        .outerjoin(TierSchemeVersion, TierSchemeVersion.id == TierHistory.scheme_version_id)
        .outerjoin(TierScheme, TierScheme.id == TierSchemeVersion.scheme_id)
        .outerjoin(User, User.id == TierHistory.user_id)
        .where(TierHistory.customer_id == customer.id)
        .order_by(TierHistory.changed_at.desc(), TierHistory.id.desc())
        .limit(limit)
    ).all()
    requests = db.session.execute(
        select(TierOverride, User.name)
        .outerjoin(User, User.id == TierOverride.requested_by_id)
        .where(TierOverride.customer_id == customer.id)
        .order_by(TierOverride.requested_at.desc(), TierOverride.id.desc())
        .limit(20)
    ).all()
    from core.reports import today

    return {
        "customer": customer,
        "row": row,
        "version": version,
        "scheme": scheme,
        "config": config,
        "why": tiering.explain(config, row.inputs) if config and row else [],
        "rules": tiering.tier_rule_text(config) if config else [],
        "history": history,
        "requests": requests,
        "tier_names": tiering.load_config(active).tier_names if active else [],
        "locked": bool(row and row.locked_until and row.locked_until >= today()),
        "today": today(),
        "can_request": _can_request(),
        "can_decide": is_manager(),
        "num": _num,
        "reason_label": lambda v: tiering.label(tiering.REASONS, v),
        "method_label": lambda v: tiering.label(tiering.METHODS, v),
        "state_label": lambda v: {
            "pending": _("Pending"),
            "approved": _("Approved"),
            "rejected": _("Rejected"),
        }.get(v, v),
    }


def render_panel(customer: Customer) -> str:
    """The tier box of a doctor's customer page."""
    return render_template(
        "pharma/tiering/_doctor.html",
        panel=True,
        form={},
        errors={},
        **doctor_context(customer, 10),
    )


def _render_doctor(
    customer: Customer, status: int = 200, form: Any = None, errors: Any = None
) -> tuple[str, int]:
    return (
        render_template(
            "pharma/tiering/doctor.html",
            panel=False,
            form=form or {},
            errors=errors or {},
            **doctor_context(customer),
        ),
        status,
    )


@bp.route("/doctors/<int:customer_id>")
def doctor(customer_id: int) -> Any:
    return _render_doctor(_doctor(customer_id))


@bp.route("/doctors/<int:customer_id>/override", methods=["POST"])
def doctor_override(customer_id: int) -> Any:
    """A rep's override request (tier, reason, lock date)."""
    customer = _doctor(customer_id)
    _csrf()
    if not _can_request():
        abort(403, _("Your role (%(role)s) cannot request tier changes.", role=role() or "-"))
    form = {k: (request.form.get(k) or "").strip() for k in ("tier", "reason", "locked_until")}
    errors: dict[str, str] = {}
    locked: date | None = None
    if form["locked_until"]:
        try:
            locked = date.fromisoformat(form["locked_until"])
        except ValueError:
            errors["locked_until"] = _("Enter a date as YYYY-MM-DD.")
    if not errors:
        try:
            tiering.request_override(
                current_user,
                customer,
                tier=form["tier"],
                reason=form["reason"],
                locked_until=locked,
            )
            db.session.commit()
        except tiering.OverrideError as exc:
            db.session.rollback()
            errors = exc.errors
    if errors:
        return _render_doctor(_doctor(customer_id), 422, form=form, errors=errors)
    flash(_("Request sent to the managers."))
    return redirect(_back(customer_id))


def _back(customer_id: int) -> str:
    target = request.form.get("next") or ""
    if target.startswith("/customers/") and "//" not in target:
        return target
    return url_for("pharma.doctor", customer_id=customer_id)


@bp.route("/overrides/<int:override_id>/<any(approve, reject):decision>", methods=["POST"])
def override_decide(override_id: int, decision: str) -> Any:
    """A manager approves or rejects a request (reject needs a comment)."""
    row = db.session.get(TierOverride, override_id)
    if row is None:
        abort(404)
    customer = _doctor(row.customer_id)
    _csrf()
    comment = (request.form.get("comment") or "").strip()[:2000]
    version = request.form.get("version", "")
    expected = int(version) if version.isdigit() else None
    try:
        workflow.transition(
            row, decision, user=current_user, inputs={"comment": comment}, expected_version=expected
        )
        row.decided_by_id = current_user.id
        db.session.commit()
    except (workflow.StaleRecord, StaleDataError):
        db.session.rollback()
        return _render_doctor(
            _doctor(customer.id),
            409,
            errors={"decision": _("Someone decided this request meanwhile; reload the page.")},
        )
    except workflow.WorkflowError as exc:
        db.session.rollback()
        message = exc.message
        if isinstance(exc, workflow.NotAllowed):
            message = _(
                "Only admins and managers decide tier requests; you are %(role)s.",
                role=role() or "-",
            )
        elif isinstance(exc, workflow.InputRequired):
            message = _("Say why the request is rejected.")
        elif isinstance(exc, workflow.IllegalTransition):
            message = _("This request was already decided.")
        return _render_doctor(_doctor(customer.id), exc.status, errors={"decision": message})
    flash(
        _("Request approved: the tier is set and locked.")
        if decision == "approve"
        else _("Request rejected.")
    )
    return redirect(_back(customer.id))


# -- schemes --------------------------------------------------------------------------------------


def _versions() -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    rows = db.session.execute(
        select(TierSchemeVersion, User.name)
        .outerjoin(User, User.id == TierSchemeVersion.created_by_id)
        .order_by(TierSchemeVersion.scheme_id, TierSchemeVersion.number.desc())
    ).all()
    for version, author in rows:
        out.setdefault(version.scheme_id, []).append(
            (version, author, tiering.load_config(version))
        )
    return out


def _render_settings(status: int = 200, counts: dict[str, int] | None = None) -> tuple[str, int]:
    pending = db.session.execute(
        select(TierOverride, Customer.name, User.name)
        .join(Customer, Customer.id == TierOverride.customer_id)
        .outerjoin(User, User.id == TierOverride.requested_by_id)
        .where(TierOverride.state == "pending")
        .order_by(TierOverride.requested_at)
        .limit(100)
    ).all()
    computed = db.session.scalar(select(func.max(DoctorTier.computed_at)))
    return (
        render_template(
            "pharma/tiering/settings.html",
            schemes=tiering.schemes(),
            versions=_versions(),
            pending=pending,
            computed=computed,
            counts=counts,
            criterion_label=tiering.criterion_label,
            normalise_text=tiering.normalise_text,
            rules=tiering.tier_rule_text,
            method_label=lambda v: tiering.label(tiering.METHODS, v),
            num=_num,
        ),
        status,
    )


@bp.route("/tiering")
def tiering_settings() -> Any:
    """Schemes with their versions, the active one, recompute and pending requests."""
    _manager_guard()
    counts = None
    if request.args.get("doctors", "").isdigit():
        counts = {
            k: int(request.args.get(k, "0")) if request.args.get(k, "0").isdigit() else 0
            for k in ("doctors", "written", "locked", "changed")
        }
    return _render_settings(counts=counts)


@bp.route("/tiering/recompute", methods=["POST"])
def tiering_recompute() -> Any:
    _manager_guard()
    _csrf()
    if tiering.active_version() is None:
        flash(_("No active scheme: create or activate one first."))
        return redirect(url_for("pharma.tiering_settings"))
    counts = tiering.recompute()
    audit.record("recompute", "pharma_tier", None, counts)
    db.session.commit()
    flash(
        _(
            "Recomputed %(doctors)s doctors: %(changed)s changed tier, "
            "%(locked)s locked by an override.",
            doctors=counts["doctors"],
            changed=counts["changed"],
            locked=counts["locked"],
        )
    )
    return redirect(url_for("pharma.tiering_settings", **{k: str(v) for k, v in counts.items()}))


@bp.route("/tiering/schemes/<int:scheme_id>/activate", methods=["POST"])
def scheme_activate(scheme_id: int) -> Any:
    _manager_guard()
    _csrf()
    scheme = db.session.get(TierScheme, scheme_id)
    if scheme is None:
        abort(404)
    tiering.activate_scheme(scheme, user_id=current_user.id)
    counts = tiering.recompute()
    db.session.commit()
    flash(
        _(
            "%(name)s is now the active scheme; %(n)s doctors recomputed.",
            name=scheme.name,
            n=counts["doctors"],
        )
    )
    return redirect(url_for("pharma.tiering_settings", **{k: str(v) for k, v in counts.items()}))


def _form_rows(config: tiering.SchemeConfig | None) -> dict[str, str]:
    """The scheme form's values from a config (blank rows after its criteria and tiers)."""
    values: dict[str, str] = {}
    if config is None:
        return values
    values["method"] = config.method
    for i, c in enumerate(config.criteria):
        values[f"criteria-{i}-source"] = f"field:{c.field}" if c.source == "field" else c.source
        values[f"criteria-{i}-days"] = str(c.days) if c.days else ""
        values[f"criteria-{i}-weight"] = _num(c.weight)
        values[f"criteria-{i}-normalise"] = c.normalise
        values[f"criteria-{i}-cap"] = _num(c.cap).replace(",", "")
    for i, t in enumerate(config.tiers):
        values[f"tiers-{i}-name"] = t.name
        values[f"tiers-{i}-bound"] = _num(t.bound).replace(",", "")
    return values


def parse_form(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, int], dict[str, int]]:
    """The scheme data of a submitted form, with the form row of each criterion and tier (blank
    rows are left out, so error keys are mapped back to the rows the user filled)."""
    criteria, tiers = [], []
    crit_rows: dict[str, int] = {}
    tier_rows: dict[str, int] = {}
    for i in range(FORM_CRITERIA):
        source = (form.get(f"criteria-{i}-source") or "").strip()
        if not source:
            continue
        item: dict[str, Any] = {
            "weight": (form.get(f"criteria-{i}-weight") or "").strip(),
            "normalise": (form.get(f"criteria-{i}-normalise") or "scale").strip(),
            "cap": (form.get(f"criteria-{i}-cap") or "").strip(),
            "days": (form.get(f"criteria-{i}-days") or "").strip(),
        }
        if source.startswith("field:"):
            item.update(source="field", field=source[6:])
        else:
            item["source"] = source
        crit_rows[str(len(criteria))] = i
        criteria.append(item)
    for i in range(FORM_TIERS):
        name = (form.get(f"tiers-{i}-name") or "").strip()
        bound = (form.get(f"tiers-{i}-bound") or "").strip()
        if not name and not bound:
            continue
        tier_rows[str(len(tiers))] = i
        tiers.append({"name": name, "bound": bound or None})
    data = {"criteria": criteria, "method": (form.get("method") or "").strip(), "tiers": tiers}
    return data, crit_rows, tier_rows


def _form_errors(
    exc: tiering.SchemeError, crit_rows: dict[str, int], tier_rows: dict[str, int]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, messages in exc.errors.items():
        parts = key.split("-")
        if len(parts) >= 2 and parts[0] in ("criteria", "tiers") and parts[1].isdigit():
            rows = crit_rows if parts[0] == "criteria" else tier_rows
            parts[1] = str(rows.get(parts[1], parts[1]))
            key = "-".join(parts)
        out[key] = " ".join(messages)
    return out


def _render_form(
    scheme: TierScheme | None, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    fields = tiering.numeric_fields()
    return (
        render_template(
            "pharma/tiering/scheme_form.html",
            scheme=scheme,
            values=values,
            errors=errors,
            sources=[(f"field:{f.key}", f.text) for f in fields]
            + [
                ("visits", tiering.label(tiering.SOURCES, "visits")),
                ("orders", tiering.label(tiering.SOURCES, "orders")),
            ],
            normalisations=[
                (k, tiering.label(tiering.NORMALISATIONS, k))
                for k, _a, _b in tiering.NORMALISATIONS
            ],
            methods=[(k, tiering.label(tiering.METHODS, k)) for k, _a, _b in tiering.METHODS],
            n_criteria=FORM_CRITERIA,
            n_tiers=FORM_TIERS,
        ),
        status,
    )


@bp.route("/tiering/schemes/new", methods=["GET", "POST"])
def scheme_new() -> Any:
    return _scheme_edit(None)


@bp.route("/tiering/schemes/<int:scheme_id>/edit", methods=["GET", "POST"])
def scheme_edit(scheme_id: int) -> Any:
    scheme = db.session.get(TierScheme, scheme_id)
    if scheme is None:
        abort(404)
    return _scheme_edit(scheme)


def _scheme_edit(scheme: TierScheme | None) -> Any:
    """Create a scheme, or save a scheme's next version (then recompute if it is active)."""
    _manager_guard()
    if request.method == "GET":
        latest = tiering.latest_version(scheme.id) if scheme else None
        config = tiering.load_config(latest) if latest else tiering.DEFAULT_CONFIG
        values = _form_rows(config)
        values["name"] = scheme.name if scheme else ""
        return _render_form(scheme, values, {})
    _csrf()
    values = {k: v for k, v in request.form.items() if k != "csrf_token"}
    data, crit_rows, tier_rows = parse_form(request.form)
    errors: dict[str, str] = {}
    name = (request.form.get("name") or "").strip()
    if scheme is None and (not name or len(name) > 80):
        errors["name"] = _("Name the scheme (at most 80 characters).")
    try:
        config = tiering.validate_config(data)
    except tiering.SchemeError as exc:
        errors.update(_form_errors(exc, crit_rows, tier_rows))
    if errors:
        return _render_form(scheme, values, errors, 422)
    note = request.form.get("note")
    try:
        if scheme is None:
            scheme = tiering.create_scheme(name, config, user_id=current_user.id, note=note)
        else:
            tiering.save_version(scheme, config, user_id=current_user.id, note=note)
    except tiering.SchemeError as exc:
        db.session.rollback()
        return _render_form(scheme, values, {k: " ".join(v) for k, v in exc.errors.items()}, 422)
    counts = tiering.recompute() if scheme.active else None
    db.session.commit()
    if counts is not None:
        flash(
            _(
                "New version saved; %(doctors)s doctors recomputed, %(changed)s changed tier.",
                doctors=counts["doctors"],
                changed=counts["changed"],
            )
        )
        return redirect(
            url_for("pharma.tiering_settings", **{k: str(v) for k, v in counts.items()})
        )
    flash(_("Scheme saved."))
    return redirect(url_for("pharma.tiering_settings"))
