"""The personal-data page of a customer (个人信息): a copy for the person, and erasure.

Administrators only (``/customers/<id>/personal-data``): the copy as JSON or as a ZIP of CSV
files, and erasure after typing the customer's current name to confirm (see
:mod:`core.privacy`). Both are written to the audit log.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core import privacy
from core.db import db
from core.web.customers import visible_or_refuse
from core.web.helpers import require_member, role

bp = Blueprint("privacy", __name__, url_prefix="/customers")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    if role() != "admin":
        abort(403, _("Only administrators handle a person's data requests."))


@bp.route("/<int:customer_id>/personal-data", methods=["GET", "POST"])
def page(customer_id: int) -> Any:
    customer = visible_or_refuse(customer_id)
    error, status = None, 200
    if request.method == "POST":
        typed = (request.form.get("confirm") or "").strip()
        if typed != customer.name:
            error, status = _("Type the customer's name exactly as shown to confirm."), 422
        else:
            privacy.erase_person(customer, current_user)
            db.session.commit()
            flash(_("The person's data was erased; figures and the audit trail remain."))
            return redirect(url_for("customers.detail", customer_id=customer_id))
    return render_template("privacy/page.html", customer=customer, error=error), status


@bp.route("/<int:customer_id>/personal-data.<any(json, zip):fmt>")
def export(customer_id: int, fmt: str) -> Response:
    customer = visible_or_refuse(customer_id)
    sections = privacy.export_person(customer)
    db.session.commit()  # the audit row
    name = f"personal-data-{customer_id}.{fmt}"
    if fmt == "json":
        body = json.dumps(sections, ensure_ascii=False, indent=2, default=str)
        mimetype = "application/json"
    else:
        body, mimetype = privacy.as_zip(sections), "application/zip"
    return Response(
        body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={name}"}
    )
