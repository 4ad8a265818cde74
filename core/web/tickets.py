"""Service-ticket pages (服务工单): list, kanban, new, detail with workflow, recovery, follow-up.

The queries behind the list and the board live in :mod:`core.web.ticket_queries`, the forms in
:mod:`core.web.ticket_forms`. Every write here checks the role, keeps the record's ``version``
(a stale form answers 409) and rolls back on any refusal, so a refused form writes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from core import audit, clocks, followup, recovery, tenancy, workflow
from core import fields as ext
from core.choices import options
from core.db import db, utcnow
from core.models import (
    Contact,
    Customer,
    Interaction,
    ServiceTicket,
    SlaPolicy,
    Team,
    User,
    WorkflowHistory,
)
from core.plugins import current
from core.security import ROLES
from core.tenancy import current_company_id
from core.web.helpers import require_member, role
from core.web.panels import record_panels
from core.web.ticket_forms import (
    AssignmentForm,
    FollowUpForm,
    RecoveryForm,
    TicketForm,
    TransitionForm,
    choices,
    contact_choices,
    id_or_none,
    limits_form,
    member_choices,
    members,
    sla_form,
    teams,
)
from core.web.ticket_queries import (
    MAX_ID,
    SLA_FILTERS,
    SLA_LABELS,
    SUBJECT,
    board,
    extension_fields,
    int_id,
    page,
    state_label,
    ticket_workflow,
)

bp = Blueprint("tickets", __name__, url_prefix="/tickets")

#: Cards shown per kanban column (the column header shows the full count).
BOARD_LIMIT = 20

# -- access -----------------------------------------------------------------------------------


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def _require_writer() -> None:
    if role() in (None, "viewer"):
        abort(403, _("Your role (%(role)s) can read tickets but not change them.", role=role()))


def _require(*roles: str) -> None:
    if role() not in roles:
        abort(
            403,
            _(
                "This needs the role %(roles)s; you are %(role)s.",
                roles=" / ".join(roles),
                role=role() or "-",
            ),
        )


def company_zone() -> ZoneInfo:
    """The current company's time zone (clocks are shown in it)."""
    return tenancy.company_zone()


def local_time(moment: datetime | None) -> str:
    """``2024-03-11 12:00`` in the company's time zone ('' for none)."""
    if moment is None:
        return ""
    return moment.astimezone(company_zone()).strftime("%Y-%m-%d %H:%M")


# -- list, board ------------------------------------------------------------------------------


def _filter_context() -> dict[str, Any]:
    wf = ticket_workflow()
    return {
        "states": [(s.name, s.text) for s in wf.states],
        "types": options("ticket_type"),
        "priorities": options("ticket_priority"),
        "intakes": options("intake_channel"),
        "people": members(),
        "team_list": teams(),
        "sla_filters": [(s, SLA_LABELS[s]) for s in SLA_FILTERS],
        "can_write": role() not in (None, "viewer"),
        "local_time": local_time,
        "state_label": state_label,
        "display": ext.display,
    }


@bp.route("/")
def index() -> tuple[str, int]:
    size = current_app.config["LIST_PAGE_SIZE"]
    result = page(request.args, size, current_app.config["COUNT_CAP"])
    html = render_template("tickets/index.html", page=result, **_filter_context())
    return html, 400 if result.errors else 200


EXPORT_COLUMNS = (
    "id",
    "subject",
    "customer",
    "type",
    "priority",
    "intake_channel",
    "state",
    "assignee",
    "team",
    "sla",
    "created_at",
    "resolved_at",
    "closed_at",
)


@bp.route("/export.<any(csv, xlsx):fmt>")
def export(fmt: str) -> Any:
    """The tickets matching the list's filters as CSV or XLSX, streamed (times in the
    company's zone); needs the ``export`` permission and is audited."""
    from core import access, exporter
    from core.tenancy import company_scope
    from core.web.ticket_queries import iterate, query

    _stmt, errors, fields = query(request.args)
    if errors:
        return (
            "\n".join(f"{k}: {v}" for k, v in errors.items()),
            400,
            {"Content-Type": "text/plain"},
        )
    exporter.authorize("service_ticket", request.args)
    company_id, args = current_company_id(), request.args.copy()
    owners, zone = access.visible_owner_ids(), company_zone()

    def local(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""

    def rows() -> Any:
        with company_scope(company_id), access.owners_scope(owners):
            for batch in iterate(args):
                for row in batch:
                    t = row.ticket
                    yield [
                        t.id,
                        t.subject,
                        row.customer_name,
                        t.type,
                        t.priority,
                        t.intake_channel,
                        t.state,
                        row.assignee_name or "",
                        row.team_name or "",
                        row.badge.status if row.badge else "",
                        local(t.created_at),
                        local(t.resolved_at),
                        local(t.closed_at),
                        *[ext.csv_value(f, row.values.get(f.key)) for f in fields],
                    ]

    header = [*EXPORT_COLUMNS, *[f.key for f in fields]]
    return exporter.download(fmt, "tickets", header, rows, title=_("Service tickets"))


@bp.route("/board")
def kanban() -> tuple[str, int]:
    limit = current_app.config.get("TICKET_BOARD_LIMIT", BOARD_LIMIT)
    columns, errors = board(request.args, limit)
    html = render_template(
        "tickets/board.html", columns=columns, errors=errors, limit=limit, **_filter_context()
    )
    return html, 400 if errors else 200


# -- new ticket -------------------------------------------------------------------------------


def ticket_form(fields: list[ext.Field], **kwargs: Any) -> TicketForm:
    """The new-ticket form with the company's ticket extension fields appended."""
    form_class = type("TicketExtForm", (TicketForm,), ext.form_fields(fields))
    form = form_class(**kwargs)
    form.type.choices = choices(options("ticket_type"))
    form.priority.choices = choices(options("ticket_priority"))
    form.intake_channel.choices = choices(options("intake_channel"))
    form.assignee_id.choices = member_choices("—")
    form.team_id.choices = choices(teams(), "—")
    customer_id = form.customer_id.data if isinstance(form.customer_id.data, int) else None
    if customer_id is not None and customer_id > MAX_ID:
        customer_id = None
    form.contact_id.choices = contact_choices(customer_id)
    form.extension_keys = [f.key for f in fields]
    return form


@bp.route("/new", methods=["GET", "POST"])
def create() -> Any:
    _require_writer()
    fields = extension_fields()
    data: dict[str, Any] = {"priority": "normal", "intake_channel": "phone", "type": "inquiry"}
    data.update(ext.defaults(fields))
    if request.method == "GET":
        picked = int_id(request.args.get("customer_id"))
        if picked is not None:
            data["customer_id"] = picked
        if role() == "service_agent":
            data["assignee_id"] = str(current_user.id)
    form = ticket_form(fields, data=data)
    if form.validate_on_submit():
        values = ext.form_values(fields, form)
        ticket = open_ticket_from(form)
        ext.save(fields, ticket.id, values)
        _notify_assigned(ticket)
        db.session.commit()
        flash(_("Ticket #%(id)s opened.", id=ticket.id))
        return redirect(url_for(".detail", ticket_id=ticket.id))
    db.session.rollback()
    customer_q = (request.args.get("customer_q") or "").strip()
    found = _find_customers(customer_q) if customer_q else []
    chosen = None
    if isinstance(form.customer_id.data, int) and 0 < form.customer_id.data <= MAX_ID:
        chosen = db.session.get(Customer, form.customer_id.data)
    return render_template(
        "tickets/new.html", form=form, customer_q=customer_q, found=found, chosen=chosen
    ), (422 if form.errors else 200)


def open_ticket_from(form: TicketForm) -> ServiceTicket:
    """Open the ticket described by a validated :class:`TicketForm` (starts its SLA clocks)."""
    from core.tickets import open_ticket

    return open_ticket(
        user_id=current_user.id,
        customer_id=form.customer_id.data,
        contact_id=id_or_none(form.contact_id.data),
        type=form.type.data,
        priority=form.priority.data,
        intake_channel=form.intake_channel.data,
        subject=form.subject.data.strip(),
        description=(form.description.data or "").strip() or None,
        assignee_id=id_or_none(form.assignee_id.data),
        team_id=id_or_none(form.team_id.data),
    )


def _find_customers(q: str) -> list[Any]:
    stmt = select(Customer.id, Customer.name, Customer.code, Customer.phone)
    clause = or_(
        Customer.name.contains(q, autoescape=True),
        Customer.phone.contains(q, autoescape=True),
        Customer.code == q,
    )
    if int_id(q) is not None:
        clause = or_(clause, Customer.id == int(q))
    return list(db.session.execute(stmt.where(clause).order_by(Customer.name).limit(20)).all())


def _notify_assigned(ticket: ServiceTicket) -> None:
    from core.tickets import notify_assigned

    notify_assigned(ticket, current_user)


# -- detail -----------------------------------------------------------------------------------


def _panels(ticket: ServiceTicket) -> list[Any]:
    return record_panels(SUBJECT, ticket)


def _transition_form(ticket: ServiceTicket, name: str, formdata: Any = None) -> TransitionForm:
    form = TransitionForm(
        formdata=formdata, prefix=name, data={"version": ticket.version} if not formdata else None
    )
    form.assignee_id.choices = member_choices(_("keep as is"))
    if formdata is None and ticket.assignee_id:
        form.assignee_id.data = str(ticket.assignee_id)
    return form


def _recovery_form(ticket: ServiceTicket, formdata: Any = None) -> RecoveryForm:
    if formdata is not None:
        return RecoveryForm(formdata=formdata)
    return RecoveryForm(
        formdata=None,
        data={
            "version": ticket.version,
            "apology": ticket.apology,
            "compensation": ticket.compensation,
            "recovery_note": ticket.recovery_note,
        },
    )


def _assignment_form(ticket: ServiceTicket, formdata: Any = None) -> AssignmentForm:
    data = None
    if formdata is None:
        data = {
            "version": ticket.version,
            "assignee_id": str(ticket.assignee_id or ""),
            "team_id": str(ticket.team_id or ""),
        }
    form = AssignmentForm(formdata=formdata, data=data)
    form.assignee_id.choices = member_choices("—")
    form.team_id.choices = choices(teams(), "—")
    return form


def _followup_form(ticket: ServiceTicket, formdata: Any = None) -> FollowUpForm:
    form = FollowUpForm(formdata=formdata)
    form.contact_id.choices = contact_choices(ticket.customer_id)
    if formdata is None and ticket.contact_id:
        form.contact_id.data = str(ticket.contact_id)
    return form


def _state_text(wf: workflow.Workflow, name: str) -> str:
    """The label of state ``name`` in the ticket's own workflow (a plugin's may differ)."""
    try:
        return wf.state(name).text
    except KeyError:
        return state_label(name)


#: Transition inputs the detail page has fields for.
RENDERED_INPUTS = frozenset({"comment"})


def _render_detail(
    ticket: ServiceTicket, status: int = 200, message: str | None = None, **forms: Any
) -> tuple[str, int]:
    """The detail page; ``forms`` replace the blank ones (to show a refused form's errors)."""
    wf = workflow.workflow_for(ticket)
    # The page asks for a comment only; steps that need other inputs (a root cause…) are
    # offered by the plugin that declared them, on its panel.
    allowed = [
        t for t in workflow.available(ticket, current_user) if set(t.inputs) <= RENDERED_INPUTS
    ]
    transition_forms = forms.pop("transitions", {})
    transitions = [
        (t, transition_forms.get(t.name) or _transition_form(ticket, t.name)) for t in allowed
    ]
    kinds = current().registry.obligation_kinds
    now = utcnow()
    clock_rows = [
        (
            kinds[o.kind].text if o.kind in kinds else o.kind,
            o,
            o.status(now),
            o.kind in kinds and kinds[o.kind].around_the_clock,
        )
        for o in clocks.obligations_of(ticket)
    ]
    history = db.session.execute(
        select(WorkflowHistory, User.name)
        .outerjoin(User, User.id == WorkflowHistory.user_id)
        .where(WorkflowHistory.subject_type == SUBJECT, WorkflowHistory.subject_id == ticket.id)
        .order_by(WorkflowHistory.id)
    ).all()
    contact = aliased(Contact)
    follow_ups = db.session.execute(
        select(Interaction, User.name, contact.name)
        .outerjoin(User, User.id == Interaction.user_id)
        .outerjoin(contact, contact.id == Interaction.contact_id)
        .where(Interaction.ticket_id == ticket.id, Interaction.kind == "follow_up")
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
    ).all()
    names = dict(
        db.session.execute(
            select(User.id, User.name).where(
                User.id.in_([i for i in (ticket.assignee_id,) if i is not None])
            )
        ).all()
    )
    team_name = (
        db.session.scalar(select(Team.name).where(Team.id == ticket.team_id))
        if ticket.team_id
        else None
    )
    ticket_contact = db.session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    fields = extension_fields()
    values = ext.load(fields, [ticket.id])[ticket.id]
    assign = wf.get("assign")
    can_assign = assign is not None and workflow.allowed(assign, role())
    my_role = role()
    html = render_template(
        "tickets/detail.html",
        ticket=ticket,
        wf=wf,
        state=wf.state(ticket.state) if ticket.state in {s.name for s in wf.states} else None,
        transitions=transitions,
        clock_rows=clock_rows,
        history=history,
        follow_ups=follow_ups,
        assignee_name=names.get(ticket.assignee_id),
        team_name=team_name,
        contact=ticket_contact,
        fields=fields,
        values=values,
        display=ext.display,
        panels=_panels(ticket),
        assignment_form=forms.get("assignment") or _assignment_form(ticket),
        recovery_form=forms.get("recovery") or _recovery_form(ticket),
        followup_form=forms.get("followup") or _followup_form(ticket),
        followup_open=ticket.state in followup.FOLLOWUP_STATES,
        followup_threshold=followup.threshold(),
        can_write=my_role not in (None, "viewer"),
        can_assign=can_assign,
        recovery_limit=recovery.format_amount(recovery.limit_for(my_role)),
        role_label=ROLES.get(my_role or "", (my_role or "", ""))[0],
        message=message,
        local_time=local_time,
        state_label=lambda name: _state_text(wf, name),
        sla_labels=SLA_LABELS,
        subject_type=SUBJECT,
        subject_id=ticket.id,
    )
    return html, status


def _ticket(ticket_id: int) -> ServiceTicket:
    if ticket_id > MAX_ID:
        abort(404)
    return db.get_or_404(ServiceTicket, ticket_id)


@bp.route("/<int:ticket_id>")
def detail(ticket_id: int) -> tuple[str, int]:
    return _render_detail(_ticket(ticket_id))


def _stale(ticket_id: int) -> tuple[str, int]:
    """Answer a write that lost the race: 409 with the ticket as it is now."""
    db.session.rollback()
    flash(_("Someone else changed this ticket meanwhile; reload it and try again."))
    return _render_detail(_ticket(ticket_id), 409)


def _check_version(form: Any, ticket: ServiceTicket) -> bool:
    return form.version.data == ticket.version


def _refusal(exc: workflow.WorkflowError, ticket: ServiceTicket, name: str) -> str:
    """The engine's refusal in the user's language (a guard's own message as it is)."""
    step = workflow.workflow_for(ticket).get(name)
    if isinstance(exc, workflow.NotAllowed) and step is not None:
        return _(
            "Your role (%(role)s) may not take the step “%(step)s”; it needs: %(roles)s.",
            role=role() or "-",
            step=step.text,
            roles=", ".join(step.roles) or _("any role but viewer"),
        )
    if isinstance(exc, workflow.IllegalTransition):
        if step is None:
            return _("Tickets have no step “%(name)s”.", name=name)
        return _(
            "“%(step)s” is not possible while the ticket is %(state)s.",
            step=step.text,
            state=state_label(ticket.state),
        )
    return exc.message


@bp.route("/<int:ticket_id>/transition/<name>", methods=["POST"])
def transition(ticket_id: int, name: str) -> Any:
    ticket = _ticket(ticket_id)
    _require_writer()
    if workflow.workflow_for(ticket).get(name) is None:
        refused = workflow.IllegalTransition(name)
        return _render_detail(ticket, refused.status, message=_refusal(refused, ticket, name))
    form = _transition_form(ticket, name, formdata=request.form)
    if not form.validate():
        db.session.rollback()
        if form.version.errors and not (form.comment.errors or form.assignee_id.errors):
            return _stale(ticket_id)
        return _render_detail(ticket, 422, transitions={name: form})
    inputs = {"comment": (form.comment.data or "").strip()}
    try:
        if name == "assign" and form.assignee_id.data:
            ticket.assignee_id = int(form.assignee_id.data)
        workflow.transition(
            ticket, name, user=current_user, inputs=inputs, expected_version=form.version.data
        )
        if name == "assign" and form.assignee_id.data:
            _notify_assigned(ticket)
        db.session.commit()
    except workflow.StaleRecord:
        return _stale(ticket_id)
    except StaleDataError:
        return _stale(ticket_id)
    except workflow.WorkflowError as exc:
        db.session.rollback()
        ticket = _ticket(ticket_id)
        if exc.field and exc.field in form:
            form = _transition_form(ticket, name, formdata=request.form)
            form.validate()
            form[exc.field].errors = [_("Required for this step.")]
            return _render_detail(ticket, exc.status, transitions={name: form})
        return _render_detail(ticket, exc.status, message=_refusal(exc, ticket, name))
    flash(_("Ticket is now: %(state)s.", state=state_label(ticket.state)))
    return redirect(url_for(".detail", ticket_id=ticket.id))


@bp.route("/<int:ticket_id>/assignment", methods=["POST"])
def assignment(ticket_id: int) -> Any:
    ticket = _ticket(ticket_id)
    _require_writer()
    assign = workflow.workflow_for(ticket).get("assign")
    if assign is not None and not workflow.allowed(assign, role()):
        abort(403, _("Your role cannot change who works on a ticket."))
    form = _assignment_form(ticket, formdata=request.form)
    if not form.validate():
        db.session.rollback()
        return _render_detail(ticket, 422, assignment=form)
    if not _check_version(form, ticket):
        return _stale(ticket_id)
    before = (ticket.assignee_id, ticket.team_id)
    ticket.assignee_id = id_or_none(form.assignee_id.data)
    ticket.team_id = id_or_none(form.team_id.data)
    if (ticket.assignee_id, ticket.team_id) == before:
        db.session.rollback()
        flash(_("Nothing changed."))
        return redirect(url_for(".detail", ticket_id=ticket.id))
    audit.record(
        "update",
        SUBJECT,
        ticket.id,
        {"assignee_id": [before[0], ticket.assignee_id], "team_id": [before[1], ticket.team_id]},
    )
    try:
        db.session.flush()
    except StaleDataError:
        return _stale(ticket_id)
    if ticket.assignee_id != before[0]:
        _notify_assigned(ticket)
    db.session.commit()
    flash(_("Assignment saved."))
    return redirect(url_for(".detail", ticket_id=ticket.id))


@bp.route("/<int:ticket_id>/recovery", methods=["POST"])
def service_recovery(ticket_id: int) -> Any:
    ticket = _ticket(ticket_id)
    _require_writer()
    form = _recovery_form(ticket, formdata=request.form)
    if not form.validate():
        db.session.rollback()
        return _render_detail(ticket, 422, recovery=form)
    if not _check_version(form, ticket):
        return _stale(ticket_id)
    try:
        recovery.apply(
            ticket,
            role=role(),
            apology=form.apology.data,
            compensation=form.compensation.data,
            note=form.recovery_note.data,
        )
        db.session.flush()
    except recovery.RecoveryError as exc:
        db.session.rollback()
        ticket = _ticket(ticket_id)
        form = _recovery_form(ticket, formdata=request.form)
        form.validate()
        getattr(form, exc.field if exc.field in form else "compensation").errors = [exc.message]
        return _render_detail(ticket, 422, recovery=form)
    except StaleDataError:
        return _stale(ticket_id)
    db.session.commit()
    flash(_("Service recovery saved."))
    return redirect(url_for(".detail", ticket_id=ticket.id))


@bp.route("/<int:ticket_id>/followup", methods=["POST"])
def record_followup(ticket_id: int) -> Any:
    ticket = _ticket(ticket_id)
    _require_writer()
    form = _followup_form(ticket, formdata=request.form)
    if not form.validate():
        db.session.rollback()
        return _render_detail(ticket, 422, followup=form)
    try:
        followup.record_followup(
            ticket,
            current_user,
            form.customer_score.data,
            form.quality_score.data,
            form.result.data,
            contact_id=id_or_none(form.contact_id.data),
        )
        db.session.commit()
    except followup.FollowUpError as exc:
        db.session.rollback()
        ticket = _ticket(ticket_id)
        if exc.field and exc.field in form:
            form = _followup_form(ticket, formdata=request.form)
            form.validate()
            form[exc.field].errors = [exc.message]
            return _render_detail(ticket, 422, followup=form)
        return _render_detail(ticket, 409, message=exc.message)
    except (workflow.StaleRecord, StaleDataError):
        return _stale(ticket_id)
    except workflow.WorkflowError as exc:
        db.session.rollback()
        return _render_detail(_ticket(ticket_id), exc.status, message=exc.message)
    if ticket.state in followup.FOLLOWUP_STATES:
        flash(_("Follow-up recorded."))
    else:
        flash(
            _(
                "Follow-up recorded. The customer's score was at or below %(limit)s, so the "
                "ticket was reopened and its owner notified.",
                limit=followup.threshold(),
            )
        )
    return redirect(url_for(".detail", ticket_id=ticket.id))


# -- settings: recovery limits, SLA policies, follow-up threshold -------------------------------


def _render_settings(status: int = 200, **forms: Any) -> tuple[str, int]:
    return render_template(
        "tickets/settings.html",
        limits=forms.get("limits") or limits_form(),
        sla=forms.get("sla") or sla_form(),
        can_edit_limits=role() == "admin",
    ), status


@bp.route("/settings")
def settings() -> tuple[str, int]:
    _require("admin", "manager")
    return _render_settings()


@bp.route("/settings/recovery", methods=["POST"])
def settings_recovery() -> Any:
    _require("admin")
    form = limits_form(formdata=request.form)
    if not form.validate():
        return _render_settings(422, limits=form)
    recovery.save_limits({r: form[f"limit_{r}"].data for r in recovery.LIMIT_ROLES})
    db.session.commit()
    flash(_("Compensation limits saved."))
    return redirect(url_for(".settings"))


@bp.route("/settings/sla", methods=["POST"])
def settings_sla() -> Any:
    _require("admin", "manager")
    form = sla_form(formdata=request.form)
    valid = form.validate()
    for _value, _text, first_key, resolve_key, _stored in form.priority_rows:
        first, resolve = form[first_key].data, form[resolve_key].data
        if valid and first is not None and resolve is not None and resolve < first:
            form[resolve_key].errors = [_("Resolution cannot come before the first response.")]
            valid = False
    if not valid:
        return _render_settings(422, sla=form)
    stored = {p.priority: p for p in db.session.scalars(select(SlaPolicy))}
    changes = {}
    for value, _text, first_key, resolve_key, _stored in form.priority_rows:
        first, resolve = form[first_key].data, form[resolve_key].data
        policy = stored.get(value)
        if policy is None:
            db.session.add(
                SlaPolicy(priority=value, first_response_minutes=first, resolution_minutes=resolve)
            )
        elif (policy.first_response_minutes, policy.resolution_minutes) != (first, resolve):
            policy.first_response_minutes, policy.resolution_minutes = first, resolve
        else:
            continue
        changes[value] = [first, resolve]
    if changes:
        audit.record("update", "sla_policy", None, {"minutes": changes})
    if form.followup_threshold.data != followup.threshold():
        followup.save_threshold(form.followup_threshold.data)
    db.session.commit()
    flash(_("SLA policies saved; they apply to tickets opened from now on."))
    return redirect(url_for(".settings"))
