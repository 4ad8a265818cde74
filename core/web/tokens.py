"""The "API tokens" page (``/account/tokens``): a user's personal tokens in the current company.

Everyone lists, creates and revokes their own tokens; admins also see every token of the
company and may revoke any of them. A new token's secret is shown in the response to the
creating POST and never again: it is not put in the session or a flash message (the session
is a signed, not an encrypted, cookie), and the response is marked ``no-store``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, flash, g, make_response, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from core import tokens
from core.db import db, utcnow
from core.models import ApiToken
from core.tenancy import current_company_id
from core.web.helpers import require_member, role
from core.web.interactions import activity_time

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")

#: Ids beyond this name no row (PostgreSQL INTEGER).
MAX_ID = 2**31 - 1
#: Longest expiry offered, in days (ten years).
MAX_DAYS = 3650


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class TokenForm(FlaskForm):
    """A new token: its name and, optionally, how many days it lasts."""

    name = StringField(
        _l("Name"),
        filters=[_strip],
        validators=[DataRequired(), Length(max=tokens.MAX_NAME)],
        description=_l("What uses the token, e.g. the script or system that will send it."),
    )
    days = IntegerField(
        _l("Expires after (days)"),
        validators=[Optional(), NumberRange(min=1, max=MAX_DAYS)],
        description=_l("Leave empty for a token that lasts until it is revoked."),
    )


class ActionForm(FlaskForm):
    """A button that only carries the CSRF token."""


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def _is_admin() -> bool:
    return role() == tokens.ADMIN_ROLE


def _render(form: TokenForm, created: ApiToken | None = None, secret: str | None = None) -> Any:
    now = utcnow()
    response = make_response(
        render_template(
            "tokens/index.html",
            form=form,
            own=tokens.for_user(current_user.id),
            company_tokens=tokens.for_company() if _is_admin() else None,
            created=created,
            secret=secret,
            status=lambda token: tokens.status(token, now),
            when=activity_time,
        ),
        422 if form.errors else 200,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/")
def index() -> Any:
    """The user's tokens, the form for a new one and, for admins, every token of the company."""
    return _render(TokenForm())


@bp.route("/", methods=["POST"])
def create() -> Any:
    """Create a token and show its secret in this response only."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _render(form)
    expires_at = utcnow() + timedelta(days=form.days.data) if form.days.data else None
    try:
        token, secret = tokens.issue(
            current_user, g.membership.company_id, form.name.data, expires_at
        )
    except tokens.TokenError as exc:
        db.session.rollback()
        target = {"expires_at": form.days}.get(exc.field, form.name)
        target.errors = [*target.errors, exc.message]
        return _render(form)
    db.session.commit()
    return _render(TokenForm(formdata=None), created=token, secret=secret)


@bp.route("/<int:token_id>/revoke", methods=["POST"])
def revoke(token_id: int) -> Any:
    """Revoke one of the user's tokens, or, for an admin, any token of the company."""
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    token = db.session.get(ApiToken, token_id) if token_id <= MAX_ID else None
    # Tenancy hides other companies' tokens from the query; an object already in the
    # session's identity map is returned without one, hence the explicit check.
    if token is None or token.company_id != current_company_id():
        abort(404)
    try:
        changed = tokens.revoke(token, current_user)
    except PermissionError as exc:
        abort(403, str(exc))
    db.session.commit()
    if changed:
        flash(_("Token “%(name)s” revoked; it no longer works.", name=token.name))
    return redirect(url_for(".index"))
