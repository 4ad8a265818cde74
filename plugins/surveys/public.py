"""The public answer page: ``/p/<company code>/surveys/<token>`` (no login; one-time link).

The core scopes the request to the company of the URL (404 when unknown or without the
plugin). Then:

- an unknown token: 404;
- a used token (the invitation has ``answered_at``): a page saying the survey was already
  answered (410);
- a finished campaign: a page saying the survey is closed (410);
- otherwise the questionnaire; a submission with invalid answers re-renders the form with a
  message at each question (422); a valid one stores the response and thanks the customer.

``/p/<company code>/surveys/<token>/stop`` (linked from the answer page): GET asks whether to
stop surveys by the channel the invitation came by; POST records the customer's refusal
(:func:`plugins.surveys.campaigns.refuse`, purpose ``survey`` of :mod:`core.consent`), so no
later campaign invites them by that channel. It works whether or not the survey was answered.

Submissions are rate-limited per company and client address (:data:`LIMIT`, 429 beyond).
The pages show no personal data of the customer: whoever holds the link sees the questions.
"""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from flask_babel import gettext as _

from core.extend import db, rate_allow, require_company
from plugins.surveys import campaigns as svc
from plugins.surveys.blueprint import public_bp
from plugins.surveys.models import Campaign, Questionnaire
from plugins.surveys.web_campaigns import answer_form_values, channel_label, sections_of

#: Answer submissions one address may make per company.
LIMIT = "30/hour"


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    """A page in the core's public frame (``public_base.html``: the company's name, no menu)."""
    return render_template(template, **context), status


def _too_many() -> tuple[str, int] | None:
    """The 429 page when this address sent more than :data:`LIMIT` to the company, else None."""
    if rate_allow("surveys.answer", LIMIT, key=f"{require_company()}:{request.remote_addr}"):
        return None
    return _page(
        "surveys/public_done.html",
        429,
        message=_("Too many submissions from your address; please try again later."),
    )


@public_bp.route("/<token>", methods=["GET", "POST"])
def answer(token: str) -> Any:
    invitation = svc.invitation_for_token(token)
    if invitation is None:
        abort(404)
    campaign = db.session.get(Campaign, invitation.campaign_id)
    if invitation.answered_at is not None:
        return _page(
            "surveys/public_done.html", 410, message=_("This survey was already answered.")
        )
    if campaign is None or campaign.state == "finished":
        return _page("surveys/public_done.html", 410, message=_("This survey is closed."))
    questionnaire = db.session.get(Questionnaire, campaign.questionnaire_id)
    parts = sections_of(campaign.questionnaire_id)
    errors: dict[Any, str] = {}
    given: dict[int, Any] = {}
    status = 200
    if request.method == "POST":
        refused = _too_many()
        if refused is not None:
            return refused
        questions = [q for _s, qs in parts for q in qs]
        given = answer_form_values(questions, request.form)
        try:
            svc.record_response(invitation, given, mode="link")
            db.session.commit()
        except svc.AnswersRefused as exc:
            db.session.rollback()
            errors, status = exc.errors, 422
        except svc.AlreadyAnswered:
            db.session.rollback()
            return _page(
                "surveys/public_done.html", 410, message=_("This survey was already answered.")
            )
        except svc.CampaignClosed:
            db.session.rollback()
            return _page("surveys/public_done.html", 410, message=_("This survey is closed."))
        else:
            return _page(
                "surveys/public_done.html",
                message=_("Thank you! Your answers were received."),
                thanks=True,
            )
    return _page(
        "surveys/public_answer.html",
        status,
        questionnaire=questionnaire,
        parts=parts,
        given=given,
        errors=errors,
    )


@public_bp.route("/<token>/stop", methods=["GET", "POST"])
def stop(token: str) -> Any:
    """Stop surveys by this invitation's channel (see the module docstring)."""
    invitation = svc.invitation_for_token(token)
    if invitation is None:
        abort(404)
    done = False
    if request.method == "POST":
        refused = _too_many()
        if refused is not None:
            return refused
        svc.refuse(invitation)
        db.session.commit()
        done = True
    channel = channel_label(svc.channel_of(invitation))
    return _page("surveys/public_stop.html", done=done, channel=channel)
