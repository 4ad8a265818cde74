"""``/api/v1``: JSON records with extension fields, one error shape, never a 500 for bad input.

Errors look like ``{"error": {"code": ..., "message": ..., "fields": {key: [messages]}}}``.
Authentication is the session cookie for now; writes must be ``application/json`` (which a
cross-site form cannot send), so the API is exempt from the form CSRF token.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user
from marshmallow_sqlalchemy import SQLAlchemyAutoSchema
from werkzeug.exceptions import HTTPException

from core import access, audit, customers
from core import fields as ext
from core.choices import options
from core.db import db
from core.models import Customer
from core.tenancy import current_company_id

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


class CustomerSchema(SQLAlchemyAutoSchema):
    """A customer as JSON; derived from the model (extension fields are added per company)."""

    class Meta:
        model = Customer
        include_fk = True
        load_instance = False
        exclude = ("company_id",)
        dump_only = (
            "id",
            "created_at",
            "updated_at",
            "version",
            "value_tier",
            "loyalty",
            "lifecycle_stage",
        )

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    email = ma.fields.Email(allow_none=True, validate=ma.validate.Length(max=254))


def error(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> Any:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return jsonify({"error": body}), status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    return error(exc.code or 500, exc.name.lower().replace(" ", "_"), exc.description or exc.name)


@bp.before_request
def _guard() -> Any:
    if not current_user.is_authenticated:
        return error(401, "unauthorized", "log in or send a token")
    if current_company_id() is None:
        return error(403, "no_company", "the user belongs to no company")
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and not request.is_json:
        return error(415, "unsupported_media_type", "send application/json")
    return None


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ma.ValidationError({"_body": ["a JSON object is required"]})
    return data


def _dump(customer: Customer, values: dict[str, Any], fields: list[ext.Field]) -> dict[str, Any]:
    data = {**CustomerSchema().dump(customer), **ext.dump(fields, values)}
    data["phone"] = access.phone(customer.phone) or None  # masked without the PII permission
    return data


def _visible(customer_id: int) -> Any:
    """The customer, or an error answer: 404, or 403 naming the record rule that hides it."""
    customer = customers.get_visible(customer_id)
    if customer is not None:
        return customer
    if customers.exists_hidden(customer_id):
        rule = access.current_rule()
        return error(403, "record_rule", f"hidden by the record rule {rule!r} of your role")
    return error(404, "not_found", "no such customer")


def _load(data: dict[str, Any], fields: list[ext.Field], partial: bool) -> tuple[dict, dict]:
    errors: dict[str, Any] = {}
    core_values: dict[str, Any] = {}
    ext_values: dict[str, Any] = {}
    core_data = {k: v for k, v in data.items() if "__" not in k}
    unknown = [k for k in data if "__" in k and k not in {f.key for f in fields}]
    try:
        core_values = CustomerSchema().load(core_data, partial=partial, unknown=ma.RAISE)
    except ma.ValidationError as exc:
        errors.update(exc.messages)
    kind = core_values.get("kind")
    if kind is not None and kind not in {v for v, _ in options("customer_kind")}:
        errors["kind"] = [f"unknown customer kind {kind!r}"]
    try:
        ext_values = ext.validate(fields, data, partial=partial)
    except ma.ValidationError as exc:
        errors.update(exc.messages)
    for key in unknown:
        errors[key] = ["Unknown field."]
    if errors:
        raise ma.ValidationError(errors)
    return core_values, ext_values


@bp.get("/customers")
def list_customers() -> Any:
    size = (
        min(
            int(request.args.get("limit", "50")) if request.args.get("limit", "").isdigit() else 50,
            500,
        )
        or 50
    )
    result = customers.page(request.args, size, current_app.config["COUNT_CAP"])
    if result.errors:
        return error(
            400, "bad_filter", "invalid filter", {k: [v] for k, v in result.errors.items()}
        )
    return jsonify(
        {
            "data": [_dump(c, v, result.fields) for c, v in result.rows],
            "next_after": result.next_after,
            "count": result.count,
            "count_capped": result.capped,
        }
    )


@bp.get("/customers/<int:customer_id>")
def get_customer(customer_id: int) -> Any:
    customer = _visible(customer_id)
    if not isinstance(customer, Customer):
        return customer
    fields = customers.extension_fields()
    return jsonify(_dump(customer, ext.load(fields, [customer.id])[customer.id], fields))


@bp.post("/customers")
def create_customer() -> Any:
    fields = customers.extension_fields()
    try:
        values, ext_values = _load(_body(), fields, partial=False)
    except ma.ValidationError as exc:
        return error(422, "invalid", "some fields are invalid", exc.messages)
    customer = Customer(**values)
    db.session.add(customer)
    db.session.flush()
    ext.save(fields, customer.id, {**ext.defaults(fields), **ext_values})
    audit.record("create", "customer", customer.id, {"via": "api"})
    db.session.commit()
    return jsonify(_dump(customer, ext.load(fields, [customer.id])[customer.id], fields)), 201


@bp.patch("/customers/<int:customer_id>")
def update_customer(customer_id: int) -> Any:
    customer = _visible(customer_id)
    if not isinstance(customer, Customer):
        return customer
    fields = customers.extension_fields()
    try:
        values, ext_values = _load(_body(), fields, partial=True)
    except ma.ValidationError as exc:
        return error(422, "invalid", "some fields are invalid", exc.messages)
    for key, value in values.items():
        setattr(customer, key, value)
    ext.save(fields, customer.id, ext_values)
    audit.record("update", "customer", customer.id, {"via": "api", "fields": sorted(_body())})
    db.session.commit()
    return jsonify(_dump(customer, ext.load(fields, [customer.id])[customer.id], fields))
