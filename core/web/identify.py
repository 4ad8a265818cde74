"""Identify pages (识别): duplicate customers and the merge screen. Admins and managers only.

``/customers/duplicates?by=phone|email|name`` lists groups of customers sharing a normalised
key (:mod:`core.dedupe`), one keyset page at a time; ``/customers/merge?a=<id>&b=<id>`` shows two
records side by side and, on a confirmed POST, merges one into the other (:mod:`core.merge`).
"""

from __future__ import annotations

from typing import Any

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
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField
from wtforms.validators import InputRequired

from core import customers as customer_queries
from core import dedupe, merge
from core import fields as ext
from core.choices import label as choice_label
from core.db import db
from core.models import Channel, Customer, User
from core.permissions import abort_without
from core.web.helpers import require_member

bp = Blueprint("identify", __name__, url_prefix="/customers")

#: Duplicate groups per page.
GROUPS_PER_PAGE = 25
#: Ids are INTEGER columns (32 bits on PostgreSQL); a larger number names no customer.
MAX_ID = 2**31 - 1
KIND_LABELS = {"phone": _l("Phone"), "email": _l("E-mail"), "name": _l("Name")}
#: Labels of the core's referring tables on the merge screen (others show their table name).
TABLE_LABELS = {
    "contact": _l("Contacts"),
    "interaction": _l("Interactions"),
    "service_ticket": _l("Service tickets"),
    "comment": _l("Comments"),
    "customer_tag": _l("Tags"),
    "channel_claim": _l("Channel claims"),
    "workflow_history": _l("Workflow history"),
    "obligation": _l("Deadlines"),
}
#: Core fields compared on the merge screen, with their labels.
COMPARED = (
    ("code", _l("Code")),
    ("name", _l("Name")),
    ("kind", _l("Kind")),
    ("phone", _l("Phone")),
    ("email", _l("E-mail")),
    ("region", _l("Region")),
    ("address", _l("Address")),
    ("status", _l("Status")),
    ("owner_id", _l("Owner")),
    ("channel_id", _l("Channel")),
    ("revenue", _l("Revenue (12 months)")),
    ("value_tier", _l("Value tier")),
    ("loyalty", _l("Loyalty")),
    ("lifecycle_stage", _l("Lifecycle stage")),
    ("created_at", _l("Created")),
    ("last_contact_at", _l("Last contact")),
    ("notes", _l("Notes")),
)


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    abort_without("merge")


@bp.route("/duplicates")
def duplicates() -> tuple[str, int]:
    by = request.args.get("by", "phone")
    after = request.args.get("after") or None
    error = None
    if by not in dedupe.KINDS:
        error = _("'by' must be one of: %(kinds)s.", kinds=", ".join(dedupe.KINDS))
        by = "phone"
    elif after is not None and (len(after) > 300 or "\x00" in after):
        error = _("'after' must be the key of the last group seen.")
    if error:
        page = dedupe.GroupPage()
    else:
        page = dedupe.groups(
            by, after=after, size=GROUPS_PER_PAGE, cap=current_app.config["COUNT_CAP"]
        )
    html = render_template(
        "identify/duplicates.html",
        page=page,
        by=by,
        kinds=KIND_LABELS,
        error=error,
    )
    return html, 400 if error else 200


class MergeForm(FlaskForm):
    survivor = RadioField(_l("Keep this record"), validators=[InputRequired()])
    confirm = BooleanField(
        _l("I understand: the other record is deleted once its data has moved."),
        validators=[InputRequired(message=_l("Tick this box to confirm the merge."))],
    )
    version_a = HiddenField()
    version_b = HiddenField()


def _pair() -> tuple[Customer, Customer]:
    """The two customers named by ``a`` and ``b`` (400 for bad values, 404 for unknown ids)."""
    ids = []
    for name in ("a", "b"):
        value = request.args.get(name, "")
        if not (value.isascii() and value.isdigit()):
            abort(400, _("'%(name)s' must be a customer id.", name=name))
        if int(value) > MAX_ID:
            abort(404, _("Customer not found."))
        ids.append(int(value))
    if ids[0] == ids[1]:
        abort(400, _("Choose two different customers."))
    found = {c.id: c for c in db.session.scalars(db.select(Customer).where(Customer.id.in_(ids)))}
    if len(found) != 2:
        abort(404, _("Customer not found."))
    return found[ids[0]], found[ids[1]]


def _display(customer: Customer, name: str, names: dict[str, dict[int, str]]) -> str:
    value = getattr(customer, name)
    if value is None or value == "":
        return ""
    if name == "kind":
        return choice_label("customer_kind", value)
    if name in ("value_tier", "loyalty", "lifecycle_stage"):
        return choice_label(name, value)
    if name == "status":
        return choice_label("customer_status", value)
    if name == "owner_id":
        return names["owner"].get(value, f"#{value}")
    if name == "channel_id":
        return names["channel"].get(value, f"#{value}")
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d")
    return str(value)


def _comparison(a: Customer, b: Customer) -> dict[str, Any]:
    """Rows of the side-by-side table: core fields, extension fields, related records."""
    owners = {x for x in (a.owner_id, b.owner_id) if x}
    channels = {x for x in (a.channel_id, b.channel_id) if x}
    names = {
        "owner": dict(
            db.session.execute(db.select(User.id, User.name).where(User.id.in_(owners))).all()
        )
        if owners
        else {},
        "channel": dict(
            db.session.execute(
                db.select(Channel.id, Channel.name).where(Channel.id.in_(channels))
            ).all()
        )
        if channels
        else {},
    }
    rows = []
    for name, text in COMPARED:
        left, right = _display(a, name, names), _display(b, name, names)
        rows.append((text, left, right, left != right))
    fields = customer_queries.extension_fields()
    values = ext.load(fields, [a.id, b.id])
    for f in fields:
        left, right = ext.display(f, values[a.id][f.key]), ext.display(f, values[b.id][f.key])
        rows.append((f.text, left or "", right or "", (left or "") != (right or "")))
    related = []
    for ref, counts in merge.related_counts([a.id, b.id], kinds=("fk", "subject")).items():
        table = ref.split(".")[0]
        if counts[a.id] or counts[b.id]:
            label = TABLE_LABELS.get(table, ref)
            related.append((label, counts[a.id], counts[b.id]))
    return {"rows": rows, "related": related}


@bp.route("/merge", methods=["GET", "POST"])
def merge_page() -> Any:
    a, b = _pair()
    form = MergeForm()
    form.survivor.choices = [(str(a.id), a.name), (str(b.id), b.name)]
    if request.method == "GET":
        older = a if (a.created_at, a.id) <= (b.created_at, b.id) else b
        form.survivor.data = str(older.id)
        form.version_a.data, form.version_b.data = str(a.version), str(b.version)
    status = 200
    if form.validate_on_submit():
        if (form.version_a.data, form.version_b.data) != (str(a.version), str(b.version)):
            flash(_("One of the two records changed since this page was shown; check again."))
            form.version_a.data, form.version_b.data = str(a.version), str(b.version)
            status = 409
        else:
            survivor, merged = (a, b) if form.survivor.data == str(a.id) else (b, a)
            merged_name, merged_id = merged.name, merged.id
            try:
                result = merge.merge_customers(survivor, merged, current_user)
            except merge.MergeRefused as exc:
                db.session.rollback()
                abort(exc.status, str(exc))
            db.session.commit()
            flash(
                _(
                    "Merged %(name)s (#%(id)s) into this customer: %(rows)s related records moved.",
                    name=merged_name,
                    id=merged_id,
                    rows=sum(result.moved.values()),
                )
            )
            return redirect(url_for("customers.detail", customer_id=result.survivor_id))
    elif form.errors:
        status = 422
    return (
        render_template(
            "identify/merge.html",
            a=a,
            b=b,
            form=form,
            matches=[KIND_LABELS[k] for k in dedupe.matching_kinds(a, b)],
            **_comparison(a, b),
        ),
        status,
    )
