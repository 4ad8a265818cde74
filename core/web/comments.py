"""Comment threads on any record: the partial other pages include, posting, a standalone page.

A record's page shows its thread with
``{% set subject_type = "customer" %}{% set subject_id = customer.id %}``
``{% include "comments/_thread.html" ignore missing with context %}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import Length

from core import comments
from core.db import db
from core.web.helpers import require_member
from core.web.notifications import safe_next

bp = Blueprint("comments", __name__, url_prefix="/comments")


class CommentForm(FlaskForm):
    body = TextAreaField(
        _l("Comment"),
        validators=[Length(max=comments.MAX_BODY)],
        description=_l("Mention a colleague with @ and their name."),
        render_kw={"rows": 3},
    )
    next = HiddenField()


@bp.app_context_processor
def _thread_helpers() -> dict[str, Any]:
    return {"comment_thread": comments.thread, "comment_form": _blank_form}


def _blank_form() -> CommentForm:
    return CommentForm(formdata=None)


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def _can_write() -> bool:
    member = g.get("membership")
    return member is not None and member.role != "viewer"


@bp.route("/<subject_type>/<int:subject_id>", methods=["GET", "POST"])
def thread(subject_type: str, subject_id: int) -> Any:
    """GET: the record's thread on a page of its own. POST: add a comment, go back."""
    record = comments.resolve(subject_type, subject_id)
    form = CommentForm()
    status = 200
    if request.method == "POST":
        if not _can_write():
            abort(403, _("Your role can read comments but not write them."))
        back = safe_next(form.next.data, comments.default_link(subject_type, subject_id))
        if form.validate():
            try:
                comment = comments.add_comment(
                    subject_type, subject_id, form.body.data or "", current_user, link=back
                )
            except comments.CommentError as exc:
                db.session.rollback()
                form.body.errors = [*form.body.errors, exc.message]
            else:
                db.session.commit()
                flash(_("Comment added."))
                return redirect(f"{back.split('#')[0]}#comment-{comment.id}")
        db.session.rollback()
        status = 422
    return render_template(
        "comments/page.html",
        subject_type=subject_type,
        subject_id=subject_id,
        label=comments.subject_label(subject_type, record),
        back=safe_next(request.values.get("next"), comments.default_link(subject_type, subject_id)),
        form=form,
    ), status
