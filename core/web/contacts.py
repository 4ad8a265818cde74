"""Contact persons of a customer: add, edit, delete (``/customers/<id>/contacts``).

A contact is reached through its customer, so the customer's record rule (core/access.py)
decides who may see or change it; viewers only read.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email, InputRequired, Length, Optional

from core import access, audit
from core.choices import options
from core.db import db
from core.models import Contact, Customer
from core.web.customers import TextForm, require_writer, visible_or_refuse
from core.web.helpers import keep_personal_data, require_member

bp = Blueprint("contacts", __name__, url_prefix="/customers/<int:customer_id>/contacts")

MAX_ID = 2**31 - 1
FIELDS = ("name", "title", "decision_role", "phone", "email", "notes")


class ContactForm(TextForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=120)])
    title = StringField(_l("Title"), validators=[Optional(), Length(max=120)])
    decision_role = SelectField(_l("Buying role"), validators=[Optional()])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Email(), Length(max=254)])
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=10000)])


def contact_form(**kwargs: Any) -> ContactForm:
    form = ContactForm(**kwargs)
    form.decision_role.choices = [SelectChoice("", "—")] + [
        SelectChoice(value, label) for value, label in options("decision_role")
    ]
    return form


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    require_writer()


def _contact(customer: Customer, contact_id: int) -> Contact:
    if contact_id > MAX_ID:  # no such row; PostgreSQL would refuse the number
        abort(404)
    contact = db.session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.customer_id == customer.id)
    )
    if contact is None:
        abort(404)
    return contact


def _apply(form: ContactForm, contact: Contact) -> None:
    for name in FIELDS:
        value = getattr(form, name).data
        setattr(contact, name, value if name == "name" else (value or None))


@bp.route("/new", methods=["GET", "POST"])
def create(customer_id: int) -> Any:
    customer = visible_or_refuse(customer_id)
    form = contact_form()
    if form.validate_on_submit():
        contact = Contact(customer_id=customer.id)
        _apply(form, contact)
        db.session.add(contact)
        db.session.flush()
        audit.record("create", "contact", contact.id, {"customer_id": customer.id})
        db.session.commit()
        flash(_("Contact saved."))
        return redirect(url_for("customers.detail", customer_id=customer.id) + "#contacts")
    status = 422 if form.errors else 200
    return render_template("contacts/form.html", form=form, customer=customer, contact=None), status


@bp.route("/<int:contact_id>/edit", methods=["GET", "POST"])
def edit(customer_id: int, contact_id: int) -> Any:
    customer = visible_or_refuse(customer_id)
    contact = _contact(customer, contact_id)
    form = contact_form(obj=contact)
    kept = []
    if not access.has_permission("pii"):
        phone = (contact.phone, access.mask_phone(contact.phone))
        kept = keep_personal_data(form, {"phone": phone})
    if form.validate_on_submit():
        _apply(form, contact)
        audit.record("update", "contact", contact.id, {"customer_id": customer.id})
        db.session.commit()
        flash(_("Contact saved."))
        return redirect(url_for("customers.detail", customer_id=customer.id) + "#contacts")
    for name in kept:
        form[name].data = None  # the form shown again must not reveal what it kept
    status = 422 if form.errors else 200
    return render_template(
        "contacts/form.html", form=form, customer=customer, contact=contact
    ), status


@bp.route("/<int:contact_id>/delete", methods=["POST"])
def delete(customer_id: int, contact_id: int) -> Any:
    customer = visible_or_refuse(customer_id)
    contact = _contact(customer, contact_id)
    form = FlaskForm()
    if not form.validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    audit.record(
        "delete", "contact", contact.id, {"customer_id": customer.id, "name": contact.name}
    )
    db.session.delete(contact)
    db.session.commit()
    flash(_("Contact deleted."))
    return redirect(url_for("customers.detail", customer_id=customer.id) + "#contacts")
