"""Logging in and out, switching company and language."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import Email, InputRequired

from core import audit, ratelimit
from core.db import db
from core.models import Membership, User
from core.tenancy import company_scope, unscoped

bp = Blueprint("auth", __name__)


#: Failed logins allowed per account, and per client address, before the form refuses to try.
FAILURES = "10 per 15 minutes"
ADDRESS_FAILURES = "50 per 15 minutes"


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[InputRequired(), Email()])
    password = PasswordField(_l("Password"), validators=[InputRequired()])


def _audit_login(action: str, user: User, company_ids: list[int], email: str) -> None:
    """An audit row ``action`` (``login``, ``login_failed``) about ``user`` in each of
    ``company_ids``, with the address it came from; committed at once."""
    for company_id in company_ids:
        with company_scope(company_id):
            audit.record(
                action,
                "user",
                user.id,
                {"email": email, "address": request.remote_addr},
                user_id=user.id,
            )
            db.session.flush()
    db.session.commit()


def _companies(user: User) -> list[int]:
    with unscoped():
        return list(
            db.session.scalars(
                db.select(Membership.company_id)
                .where(Membership.user_id == user.id)
                .order_by(Membership.id)
            )
        )


def _first_company(user: User) -> int | None:
    with unscoped():
        return db.session.scalar(
            db.select(Membership.company_id)
            .where(Membership.user_id == user.id)
            .order_by(Membership.id)
        )


@bp.route("/login", methods=["GET", "POST"])
def login() -> object:
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.lower()
        if ratelimit.exhausted("login.account", FAILURES, email) or ratelimit.exhausted(
            "login.address", ADDRESS_FAILURES
        ):
            form.password.errors.append(
                _("Too many failed attempts. Wait a quarter of an hour and try again.")
            )
            return render_template("auth/login.html", form=form), 429
        user = db.session.scalar(db.select(User).where(User.email == email))
        if user is None or not user.check_password(form.password.data) or not user.active:
            ratelimit.allow("login.account", FAILURES, email)
            ratelimit.allow("login.address", ADDRESS_FAILURES)
            if user is not None:
                # Each company of the account sees the failed attempts on it; an unknown
                # address belongs to no company and is only counted by the rate limit.
                _audit_login("login_failed", user, _companies(user), email)
            form.password.errors.append(_("Wrong e-mail or password."))
        else:
            login_user(user)
            session["company_id"] = _first_company(user)
            if session["company_id"] is not None:
                _audit_login("login", user, [session["company_id"]], email)
            target = request.args.get("next") or ""
            # A path on this site only: not "//host" nor "/\host" (browsers read both as
            # another site).
            if not target.startswith("/") or target[1:2] in ("/", "\\"):
                target = url_for("dashboard.index")
            return redirect(target)
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> object:
    company_id = session.get("company_id")
    if current_user.is_authenticated and company_id is not None:
        with company_scope(company_id):
            audit.record("logout", "user", current_user.id)
            db.session.flush()
        db.session.commit()
    logout_user()
    session.pop("company_id", None)
    return redirect(url_for("auth.login"))


@bp.route("/switch/<int:company_id>", methods=["POST"])
@login_required
def switch(company_id: int) -> object:
    with unscoped():
        member = db.session.scalar(
            db.select(Membership).where(
                Membership.user_id == current_user.id, Membership.company_id == company_id
            )
        )
    if member is None:
        abort(404)
    session["company_id"] = company_id
    return redirect(url_for("dashboard.index"))


@bp.route("/language/<code>", methods=["POST"])
def language(code: str) -> object:
    if code not in ("zh_CN", "en"):
        abort(404)
    session["locale"] = code
    if current_user.is_authenticated:
        current_user.locale = code
        db.session.commit()
    flash(_("Language changed."))
    return redirect(request.referrer or url_for("dashboard.index"))


@bp.route("/")
def home() -> object:
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for("dashboard.index"))
