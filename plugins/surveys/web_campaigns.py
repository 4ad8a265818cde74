"""Campaign pages (on :data:`plugins.surveys.blueprint.bp`).

- ``/surveys/campaigns`` -- every campaign with its questionnaire, trigger, state, invitations,
  responses and response rate (two queries whatever the number of campaigns);
- ``/surveys/campaigns/new`` -- a campaign of a questionnaire: a customer segment (kind, value
  tier, status) or "after a ticket closes" (ticket types), channel, period; launch at once or
  keep it a draft (managers);
- ``/surveys/campaigns/<id>`` -- response rate, CSAT, NPS, the results by dimension and their
  trend (the report ``surveys_dimensions`` drawn by the core's report engine), launch/finish;
- ``/surveys/campaigns/<id>/invitations`` -- who was invited, each one's answer link, answered
  or not; keyset pages (two queries whatever the page size);
- ``/surveys/invitations/<id>/phone`` -- a member of staff enters the answers given on the phone.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core import access
from core.choices import options
from core.db import capped_count
from core.extend import db
from core.models import Customer, ServiceTicket
from plugins.surveys import campaigns as svc
from plugins.surveys import questionnaires as qsvc
from plugins.surveys import results
from plugins.surveys.blueprint import bp, can_enter, is_manager, require_manager
from plugins.surveys.models import Campaign, Invitation, Questionnaire


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= svc.MAX_ID else None


def _date(raw: str | None) -> date | None | bool:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return False
    return day if date(1970, 1, 1) <= day <= date(2999, 12, 31) else False


def _get(campaign_id: int) -> Campaign:
    found = db.session.get(Campaign, campaign_id) if 0 < campaign_id <= svc.MAX_ID else None
    if found is None:
        abort(404)
    return found


def channel_label(value: str | None) -> str:
    """The label of an invitation channel in the user's language."""
    from core.i18n import pick
    from plugins.surveys import CHANNELS

    for key, text, zh in CHANNELS:
        if key == value:
            return pick(text, zh)
    return value or ""


def _labels() -> dict[str, Any]:
    return {
        "state_label": svc.state_label,
        "trigger_label": svc.trigger_label,
        "channel_label": channel_label,
    }


@bp.route("/")
def index() -> Any:
    return redirect(url_for("surveys.campaigns"))


@bp.route("/campaigns")
def campaigns() -> Any:
    """Every campaign, newest first, with its counts."""
    rows = db.session.execute(
        select(Campaign, Questionnaire.name)
        .join(Questionnaire, Questionnaire.id == Campaign.questionnaire_id)
        .order_by(Campaign.id.desc())
        .limit(500)
    ).all()
    counts = svc.campaign_counts([c.id for c, _name in rows])
    return render_template(
        "surveys/campaigns.html",
        rows=rows,
        counts=counts,
        manager=is_manager(),
        **_labels(),
    )


# -- a new campaign -------------------------------------------------------------------------------


def _form_context(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    from core.i18n import pick
    from plugins.surveys import CHANNELS

    return {
        "values": values,
        "errors": errors,
        "questionnaires": db.session.execute(
            select(Questionnaire.id, Questionnaire.name).order_by(Questionnaire.id.desc())
        ).all(),
        "kinds": options("customer_kind"),
        "tiers": options("value_tier"),
        "statuses": options("customer_status"),
        "ticket_types": options("ticket_type"),
        "channels": [(v, pick(text, zh)) for v, text, zh in CHANNELS],
        "triggers": [(t, svc.trigger_label(t)) for t in svc.TRIGGER_LABELS],
    }


@bp.route("/campaigns/new", methods=["GET", "POST"])
def campaign_new() -> Any:
    require_manager()
    if request.method == "GET":
        values: dict[str, Any] = {
            "questionnaire_id": request.args.get("questionnaire_id", ""),
            "trigger": "segment",
            "channel": "sms",
            "starts_on": svc.today().isoformat(),
            "kind": [],
            "value_tier": [],
            "status": [],
            "ticket_types": [],
            "launch": True,
        }
        return render_template("surveys/campaign_form.html", **_form_context(values, {}))
    form = request.form
    values = {
        "questionnaire_id": form.get("questionnaire_id", ""),
        "name": form.get("name", ""),
        "trigger": form.get("trigger", ""),
        "channel": form.get("channel", ""),
        "starts_on": form.get("starts_on", ""),
        "ends_on": form.get("ends_on", ""),
        "kind": form.getlist("kind"),
        "value_tier": form.getlist("value_tier"),
        "status": form.getlist("status"),
        "ticket_types": form.getlist("ticket_types"),
        "launch": bool(form.get("launch")),
    }
    errors: dict[str, str] = {}
    questionnaire_id = _int(values["questionnaire_id"])
    if questionnaire_id is None:
        errors["questionnaire_id"] = _("Choose a questionnaire of this company.")
    days = {}
    for key in ("starts_on", "ends_on"):
        day = _date(values[key])
        if day is False:
            errors[key] = _("Enter a date as YYYY-MM-DD.")
        days[key] = day or None
    invited = 0
    if not errors:
        try:
            campaign = svc.create_campaign(
                questionnaire_id or 0,
                values["name"],
                trigger=values["trigger"],
                audience={k: values[k] for k in svc.AUDIENCE_KEYS},
                ticket_types=values["ticket_types"],
                channel=values["channel"],
                starts_on=days["starts_on"],
                ends_on=days["ends_on"],
                user=current_user,
            )
            if values["launch"]:
                invited = svc.launch_campaign(campaign, current_user)
            db.session.commit()
        except svc.CampaignRefused as exc:
            db.session.rollback()
            errors = exc.errors
    if errors:
        return render_template("surveys/campaign_form.html", **_form_context(values, errors)), 422
    if values["launch"]:
        flash(_("Campaign launched: %(n)s customers invited.", n=invited))
    else:
        flash(_("Campaign saved as a draft."))
    return redirect(url_for("surveys.campaign", campaign_id=campaign.id))


# -- a campaign -----------------------------------------------------------------------------------


def trend_chart(campaign: Campaign, period: str) -> Any:
    """The campaign's dimension averages per period, drawn by the core's report engine."""
    from core import reports

    report = reports.get("surveys_dimensions")
    if report is None:  # pragma: no cover - the plugin is enabled on this page
        return None
    params = {
        "questionnaire": str(campaign.questionnaire_id),
        "campaign": str(campaign.id),
        "period": period,
        "start": campaign.starts_on,
        "end": max(campaign.ends_on or svc.today(), campaign.starts_on),
    }
    result = reports.run(report, params)
    return result.svg(width=860, height=300, title=_("Average rating by dimension"), links=False)


@bp.route("/campaigns/<int:campaign_id>")
def campaign(campaign_id: int) -> Any:
    c = _get(campaign_id)
    period = request.args.get("period", "month")
    if period not in results.PERIODS:
        period = "month"
    invited, answered = svc.campaign_counts([c.id]).get(c.id, (0, 0))
    return render_template(
        "surveys/campaign.html",
        c=c,
        questionnaire=db.session.get(Questionnaire, c.questionnaire_id),
        invited=invited,
        answered=answered,
        rate=(answered / invited) if invited else None,
        csat=results.csat(c),
        nps=results.nps(c),
        dimensions=results.results_by_dimension(c, None),
        chart=trend_chart(c, period),
        period=period,
        audience=[
            (key, [dict(options(lst)).get(v, v) for v in c.audience.get(key, [])])
            for key, lst in (
                ("kind", "customer_kind"),
                ("value_tier", "value_tier"),
                ("status", "customer_status"),
            )
            if c.audience.get(key)
        ],
        ticket_types=[dict(options("ticket_type")).get(t, t) for t in c.ticket_types],
        manager=is_manager(),
        **_labels(),
    )


@bp.route("/campaigns/<int:campaign_id>/<any(launch, finish):step>", methods=["POST"])
def campaign_step(campaign_id: int, step: str) -> Any:
    require_manager()
    c = _get(campaign_id)
    try:
        if step == "launch":
            n = svc.launch_campaign(c, current_user)
            message = _("Campaign launched: %(n)s customers invited.", n=n)
        else:
            svc.finish_campaign(c, current_user)
            message = _("Campaign finished.")
        db.session.commit()
    except svc.CampaignRefused as exc:
        db.session.rollback()
        abort(409, "; ".join(exc.errors.values()))
    flash(message)
    return redirect(url_for("surveys.campaign", campaign_id=campaign_id))


# -- invitations ----------------------------------------------------------------------------------


@bp.route("/campaigns/<int:campaign_id>/invitations")
def invitations(campaign_id: int) -> Any:
    """The campaign's invitations, newest first, ``?state=open|answered``, keyset pages by id:
    one count and one page query whatever the page size (links are computed, not queried)."""
    from core.web.public import company_code

    c = _get(campaign_id)
    size = current_app.config["LIST_PAGE_SIZE"]
    errors: dict[str, str] = {}
    conds = [Invitation.campaign_id == c.id]
    state = request.args.get("state", "")
    if state == "open":
        conds.append(Invitation.answered_at.is_(None))
    elif state == "answered":
        conds.append(Invitation.answered_at.is_not(None))
    elif state:
        errors["state"] = _("Must be one of: %(values)s.", values="open, answered")
    after = request.args.get("after", "")
    after_id = _int(after)
    if after and after_id is None:
        errors["after"] = _("Must be the link of the previous page.")
    rows: list[Any] = []
    count, capped, next_after = 0, False, None
    if not errors:
        stmt = (
            select(Invitation, Customer.name, Customer.phone, ServiceTicket.subject)
            .join(Customer, Customer.id == Invitation.customer_id)
            .outerjoin(ServiceTicket, ServiceTicket.id == Invitation.ticket_id)
            .where(*conds)
        )
        count, capped = capped_count(stmt, Invitation.id, current_app.config["COUNT_CAP"])
        if after_id is not None:
            stmt = stmt.where(Invitation.id < after_id)
        rows = db.session.execute(stmt.order_by(Invitation.id.desc()).limit(size + 1)).all()
        if len(rows) > size:
            rows = rows[:size]
            next_after = rows[-1][0].id
    code = company_code()
    html = render_template(
        "surveys/invitations.html",
        c=c,
        rows=rows,
        links={inv.id: svc.answer_url(inv.id, code) for inv, *_rest in rows},
        count=count,
        capped=capped,
        next_after=next_after,
        errors=errors,
        state=state,
        can_enter=can_enter(),
        phone=access.phone,
        **_labels(),
    )
    return html, 400 if errors else 200


def _invitation(invitation_id: int) -> tuple[Invitation, Customer]:
    if not 0 < invitation_id <= svc.MAX_ID:
        abort(404)
    row = db.session.execute(
        select(Invitation, Customer)
        .join(Customer, Customer.id == Invitation.customer_id)
        .where(Invitation.id == invitation_id)
    ).first()
    if row is None:
        abort(404)
    return row[0], row[1]


def answer_form_values(questions: list[Any], form: Any) -> dict[int, Any]:
    """The answers of a submitted answer form (fields ``q<question id>``)."""
    out: dict[int, Any] = {}
    for question in questions:
        key = f"q{question.id}"
        if question.kind == "multiple":
            out[question.id] = form.getlist(key)
        else:
            out[question.id] = form.get(key)
    return out


def sections_of(questionnaire_id: int) -> list[tuple[Any, list[Any]]]:
    """``(section, questions)`` in order (two queries)."""
    from plugins.surveys.models import Section

    questions = qsvc.questions_of(questionnaire_id)
    sections = db.session.scalars(
        select(Section)
        .where(Section.questionnaire_id == questionnaire_id)
        .order_by(Section.position, Section.id)
    ).all()
    return [(s, [q for q in questions if q.section_id == s.id]) for s in sections]


@bp.route("/invitations/<int:invitation_id>/phone", methods=["GET", "POST"])
def phone_entry(invitation_id: int) -> Any:
    """Enter the answers a customer gave on the phone (every role but viewer)."""
    if not can_enter():
        abort(403, _("Your role can read surveys but not enter answers."))
    invitation, customer = _invitation(invitation_id)
    c = _get(invitation.campaign_id)
    parts = sections_of(c.questionnaire_id)
    errors: dict[Any, str] = {}
    given: dict[int, Any] = {}
    status = 200
    if request.method == "POST":
        questions = [q for _s, qs in parts for q in qs]
        given = answer_form_values(questions, request.form)
        try:
            svc.record_response(invitation, given, user=current_user, mode="phone")
            db.session.commit()
        except svc.AnswersRefused as exc:
            db.session.rollback()
            errors, status = exc.errors, 422
        except (svc.AlreadyAnswered, svc.CampaignClosed) as exc:
            db.session.rollback()
            errors, status = {0: str(exc)}, 409
        else:
            flash(_("Answers of %(name)s saved.", name=customer.name))
            return redirect(url_for("surveys.invitations", campaign_id=c.id))
    elif invitation.answered_at is not None:
        errors, status = {0: _("This survey was already answered.")}, 200
    return (
        render_template(
            "surveys/phone.html",
            c=c,
            invitation=invitation,
            customer=customer,
            parts=parts,
            given=given,
            errors=errors,
            phone=access.phone,
        ),
        status,
    )
