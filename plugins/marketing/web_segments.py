"""Segment pages (on :data:`plugins.marketing.blueprint.bp`).

- ``/marketing/segments`` -- every segment with its live count;
- ``/marketing/segments/new`` -- the builder: the customer list's filters (core columns, tags,
  every enabled plugin's fields) plus RFM segment, last purchase and points; the count and the
  first customers update as filters change (``static/segment.js`` asks ``…/count``; without
  script, *Show count* does the same); saving keeps the filters (``?segment_id=`` edits one);
- ``/marketing/segments/<id>`` -- the filters in words, the count, the first customers; a static
  list takes pasted customer codes, phones or names;
- ``/marketing/segments/count`` -- ``{"count": n, "errors": {...}}`` for filter parameters.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from core import customers as core_customers
from core.choices import options
from core.extend import db
from core.i18n import pick
from plugins.marketing import segments as svc
from plugins.marketing.blueprint import bp, is_manager, require_manager
from plugins.marketing.models import Segment

MAX_ID = 2**31 - 1


def _get(segment_id: int) -> Segment:
    found = db.session.get(Segment, segment_id) if 0 < segment_id <= MAX_ID else None
    if found is None:
        abort(404)
    return found


def filter_controls() -> dict[str, Any]:
    """What the filter form offers: choice filters, extension fields, the marketing ones."""
    from plugins.sales.value import SEGMENTS

    return {
        "choice_filters": [
            ("kind", _("Kind"), options("customer_kind")),
            ("status", _("Status"), options("customer_status")),
            ("value_tier", _("Value tier"), options("value_tier")),
            ("loyalty", _("Loyalty"), options("loyalty")),
            ("lifecycle_stage", _("Lifecycle stage"), options("lifecycle_stage")),
            ("rfm_segment", _("RFM segment"), [(k, pick(t, z)) for k, t, z in SEGMENTS]),
            ("owner_id", _("Owner"), core_customers.members()),
            ("channel_id", _("Channel"), core_customers.channel_options()),
            ("tag", _("Tag"), core_customers.tag_options()),
        ],
        "fields": core_customers.extension_fields(),
        "stages": {str(v): str(label) for v, label in options("lifecycle_stage")},
    }


def describe(pairs: list[list[str]]) -> list[tuple[str, str]]:
    """The filter pairs in words: ``(filter title, value label)``."""
    controls = filter_controls()
    titles: dict[str, tuple[str, dict[str, str]]] = {
        name: (title, {str(v): str(label) for v, label in choices})
        for name, title, choices in controls["choice_filters"]
    }
    for f in controls["fields"]:
        choices = {v: pick(t, z) for v, t, z in f.choices} if f.type == "choice" else {}
        titles[f.key] = (f.text, choices)
        titles[f.key + "__min"] = (f.text + " ≥", {})
        titles[f.key + "__max"] = (f.text + " ≤", {})
    titles.update(
        {
            "q": (_("Search"), {}),
            "last_purchase__min": (_("Last purchase on or after"), {}),
            "last_purchase__max": (_("Last purchase on or before"), {}),
            "points__min": (_("Points at least"), {}),
        }
    )
    out = []
    for key, value in pairs:
        title, labels = titles.get(key, (key, {}))
        out.append((title, labels.get(value, value)))
    return out


@bp.route("/")
def index() -> Any:
    return redirect(url_for("marketing.campaigns"))


@bp.route("/segments")
def segments() -> Any:
    rows = list(db.session.scalars(select(Segment).order_by(Segment.id.desc()).limit(300)))
    return render_template(
        "marketing/segments.html",
        rows=rows,
        counts=svc.counts(rows),
        manager=is_manager(),
    )


@bp.route("/segments/count")
def segment_count() -> Any:
    ids, errors = svc.filter_query(svc.clean_pairs(request.args))
    return jsonify({"count": 0 if errors else svc.count(ids), "errors": errors})


@bp.route("/segments/new", methods=["GET", "POST"])
def segment_new() -> Any:
    """The builder: GET previews the filters in the query string, POST saves them."""
    editing = None
    raw_id = request.values.get("segment_id", "")
    if raw_id:
        editing = _get(int(raw_id) if raw_id.isdigit() else 0)
    if request.method == "POST":
        require_manager()
        pairs = svc.clean_pairs(
            [(k, v) for k, v in request.form.items(multi=True) if k != "segment_id"]
        )
        kind = request.form.get("seg_kind", "dynamic")
        try:
            segment = svc.save_segment(
                request.form.get("name", ""),
                pairs if kind == "dynamic" else [],
                kind=kind,
                description=request.form.get("description"),
                segment=editing,
                user=current_user,
            )
        except svc.SegmentRefused as exc:
            db.session.rollback()
            return _builder(MultiDict(pairs), exc.errors, editing, 422)
        db.session.commit()
        flash(_("Segment saved."))
        return redirect(url_for("marketing.segment", segment_id=segment.id))
    args = request.args
    if editing is not None and not any(k != "segment_id" for k in args):
        args = MultiDict([tuple(p) for p in editing.filters or []])
    return _builder(args, {}, editing)


def _builder(args: MultiDict, errors: dict[str, str], editing: Segment | None, status: int = 200):
    pairs = svc.clean_pairs([(k, v) for k, v in args.items(multi=True) if k != "segment_id"])
    ids, filter_errors = svc.filter_query(pairs)
    errors = {**filter_errors, **errors}
    count = None if filter_errors else svc.count(ids)
    preview = [] if filter_errors else svc.preview(ids, 10)
    return (
        render_template(
            "marketing/segment_builder.html",
            args=MultiDict(pairs),
            pairs=pairs,
            errors=errors,
            count=count,
            preview=preview,
            editing=editing,
            name=request.form.get("name") or (editing.name if editing else ""),
            manager=is_manager(),
            **filter_controls(),
        ),
        400 if filter_errors and status == 200 else status,
    )


@bp.route("/segments/<int:segment_id>")
def segment(segment_id: int) -> Any:
    seg = _get(segment_id)
    ids = svc.customer_ids(seg)
    return render_template(
        "marketing/segment.html",
        segment=seg,
        described=describe(seg.filters or []),
        count=svc.count(ids),
        preview=svc.preview(ids, 20),
        manager=is_manager(),
        stages={str(v): str(label) for v, label in options("lifecycle_stage")},
    )


@bp.route("/segments/<int:segment_id>/import", methods=["POST"])
def segment_import(segment_id: int) -> Any:
    require_manager()
    seg = _get(segment_id)
    text = request.form.get("lines", "")
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        text += "\n" + upload.read(2_000_000).decode("utf-8-sig", errors="replace")
    lines = [line.split(",")[0] for line in text.splitlines()]
    try:
        added, missing = svc.import_members(seg, lines, user=current_user)
    except svc.SegmentRefused as exc:
        db.session.rollback()
        flash("; ".join(exc.errors.values()), "error")
        return redirect(url_for("marketing.segment", segment_id=seg.id))
    db.session.commit()
    flash(_("%(n)s customers added.", n=added))
    if missing:
        flash(
            _("Not found or not unique: %(lines)s", lines="、".join(missing[:20])),
            "error",
        )
    return redirect(url_for("marketing.segment", segment_id=seg.id))
