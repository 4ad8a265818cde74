"""The dealer's pages: leads ranked by buyer value ("who do we sell the last car to"), a form
for a new lead, the test-drive steps, and a panel on the customer's page."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select

from core.extend import (
    Customer,
    WorkflowError,
    available_transitions,
    db,
    field_values,
    plugin_settings,
    require_member,
    transition,
)
from guanxi_dealer import scoring
from guanxi_dealer.models import DealerLead

bp = Blueprint("dealer", __name__, url_prefix="/dealer", template_folder="templates")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def rescore(leads: list[DealerLead]) -> None:
    """Set each lead's score from the company's weights (one query for the customers' fields)."""
    weights = plugin_settings("dealer")
    owned = field_values("customer", sorted({lead.customer_id for lead in leads}), "dealer")
    for lead in leads:
        cars = owned.get(lead.customer_id, {}).get("dealer__cars_owned")
        lead.score = scoring.score(scoring.points(lead, cars), weights)


@bp.get("/")
def index() -> str:
    vehicle = request.args.get("vehicle", "").strip()
    stmt = select(DealerLead).order_by(DealerLead.score.desc(), DealerLead.id).limit(200)
    if vehicle:
        stmt = stmt.where(DealerLead.vehicle == vehicle)
    leads = db.session.scalars(stmt).unique().all()
    customers = db.session.execute(
        select(Customer.id, Customer.name).order_by(Customer.name).limit(500)
    ).all()
    rows = [(lead, available_transitions(lead, current_user)) for lead in leads]
    return render_template(
        "dealer/index.html", rows=rows, customers=customers, vehicle=vehicle, states=states()
    )


def states() -> dict[str, Any]:
    """The test-drive workflow's states by name (their ``text`` is in the user's language)."""
    from guanxi_dealer import guanxi_workflows

    return {s.name: s for s in guanxi_workflows()[0].states}


def _number(name: str, low: int, high: int) -> int:
    value = int(request.form.get(name) or 0)
    if not low <= value <= high:
        raise ValueError(name)
    return value


@bp.post("/")
def create() -> Any:
    try:
        customer_id = int(request.form.get("customer_id") or 0)
        lead = DealerLead(
            customer_id=customer_id,
            vehicle=request.form.get("vehicle", "").strip()[:80],
            list_price=Decimal(request.form.get("list_price") or "0"),
            offer=Decimal(request.form.get("offer") or "0"),
            service=_number("service", 0, 5),
            influence=_number("influence", 0, 5),
            referral=_number("referral", 0, 5),
            age=_number("age", 16, 120) if request.form.get("age") else None,
        )
        known = db.session.scalar(select(Customer.id).where(Customer.id == customer_id))
        if not (
            known and lead.vehicle and 0 < lead.list_price < 10**10 and 0 <= lead.offer < 10**10
        ):
            raise ValueError("lead")
    except (ValueError, InvalidOperation):
        flash(_("Check the lead: customer, vehicle, prices and 0-5 ratings."), "error")
        return redirect(url_for("dealer.index"))
    rescore([lead])
    db.session.add(lead)
    db.session.commit()
    flash(_("Lead added with buyer value %(score)s.", score=lead.score))
    return redirect(url_for("dealer.index", vehicle=lead.vehicle))


@bp.post("/rescore")
def rescore_all() -> Any:
    leads = list(db.session.scalars(select(DealerLead).where(DealerLead.state != "sold")).unique())
    rescore(leads)
    db.session.commit()
    flash(_("Scores recomputed with the current weights."))
    return redirect(url_for("dealer.index"))


@bp.post("/<int:lead_id>/<step>")
def move(lead_id: int, step: str) -> Any:
    lead = db.session.scalar(select(DealerLead).where(DealerLead.id == lead_id)) or abort(404)
    try:
        transition(lead, step, user=current_user, inputs={"comment": request.form.get("comment")})
        db.session.commit()
    except WorkflowError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("dealer.index", vehicle=lead.vehicle))


def customer_panel(customer: Any) -> str:
    leads = db.session.scalars(
        select(DealerLead).where(DealerLead.customer_id == customer.id).order_by(DealerLead.id)
    ).unique()
    return render_template("dealer/_panel.html", leads=list(leads), states=states())
