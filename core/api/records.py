"""The core's API resources: customers, contacts, channels, interactions, tickets, users,
consents.

Each is a declaration on :class:`core.api.resources.Resource`; the methods overridden here are
where a record needs the same service code as its web page (classification of customers, SLA
clocks of tickets, the rules of interactions), so the API and the pages cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import marshmallow as ma
from sqlalchemy import or_, select
from sqlalchemy.sql import Select

from core import access, audit, classify, consent, customers, interactions, tickets
from core.api.errors import ApiError
from core.api.resources import Resource, customer_joined, user
from core.api.schemas import Text, email_field, model_schema, name_field
from core.channels import parent_error
from core.db import db
from core.keyset import Sort
from core.models import (
    Channel,
    Consent,
    Contact,
    Customer,
    Interaction,
    Membership,
    ServiceTicket,
    User,
)

TAG = Text(validate=[ma.validate.Length(min=1, max=60)])


def mask_phones(out: list[dict], records: Sequence[Any]) -> list[dict]:
    """``out`` (the JSON of ``records``) with phones (and addresses, where the record has one)
    masked for roles without ``pii``."""
    for data, record in zip(out, records, strict=True):
        data["phone"] = access.phone(record.phone) or None
        if "address" in data:
            data["address"] = access.private(record.address, "address") or None
    return out


class Customers(Resource):
    """Customers (客户) with their extension fields and tags; phones masked without ``pii``."""

    name = "customers"
    model = Customer
    label, label_zh = "Customers", "客户"
    extension_model = "customer"
    schema = model_schema(
        Customer,
        dump_only=("value_tier", "loyalty", "lifecycle_stage", "last_contact_at"),
        fields={
            "name": name_field(200),
            "email": email_field(),
            "tags": ma.fields.List(
                TAG,
                validate=ma.validate.Length(max=30),
                metadata={"description": "Tag names; sending the list replaces the tags."},
            ),
        },
    )
    choice_fields = {"kind": "customer_kind", "status": "customer_status"} | {
        k: v for k, v in customers.CHOICE_FILTERS.items() if k not in ("kind", "status")
    }
    filters = (
        "kind",
        "status",
        "value_tier",
        "loyalty",
        "lifecycle_stage",
        "owner_id",
        "channel_id",
        "revenue",
        "last_contact_at",
        "updated_at",
    )
    sorts = (
        *customers.SORTS.values(),
        Sort("updated", Customer.updated_at, True, False, "datetime"),
    )
    searchable = True
    rule_hides = True
    bulk_key = "code"

    def search(self, q: str) -> Any:
        return customers.search_clause(q)

    def extra_params(self) -> dict[str, dict[str, Any]]:
        return {"tag": {"type": "integer", "minimum": 1, "description": "Tag id (any of)."}}

    def filter(self, stmt: Select, args: Mapping[str, list[str]]) -> tuple[Select, dict]:
        raw = [v for v in args.get("tag", []) if v]
        if not raw:
            return stmt, {}
        if not all(v.isascii() and v.isdigit() and 0 < int(v) < 2**31 for v in raw):
            return stmt, {"tag": ["The id of a tag (a whole number)."]}
        tagged = select(customers.CustomerTag.customer_id).where(
            customers.CustomerTag.tag_id.in_([int(v) for v in raw])
        )
        return stmt.where(Customer.id.in_(tagged)), {}

    def create(self, values: dict[str, Any]) -> Any:
        tags = values.pop("tags", None)
        values.setdefault("owner_id", user().id)
        record = super().create(values)
        if tags:
            customers.set_tags(record, customers.split_tags(tags))
        return record

    def update(self, record: Any, values: dict[str, Any]) -> None:
        tags = values.pop("tags", None)
        super().update(record, values)
        if tags is not None:
            customers.set_tags(record, customers.split_tags(tags))

    def after_write(self, records: Sequence[Any], values: Sequence[dict[str, Any]]) -> None:
        db.session.flush()
        with access.all_customers():  # system work: the rule must not hide rows just saved
            classify.classify_customers([r.id for r in records])

    def dump_many(self, records: Sequence[Any], ext_values: Mapping[int, dict]) -> list[dict]:
        out = super().dump_many(records, ext_values)
        tags = customers.tags_of([r.id for r in records]) if records else {}
        for data, record in zip(mask_phones(out, records), records, strict=True):
            data["tags"] = tags.get(record.id, [])
        return out


class Contacts(Resource):
    """The people at a customer, with their buying role."""

    name = "contacts"
    model = Contact
    label, label_zh = "Contacts", "联系人"
    extension_model = "contact"
    schema = model_schema(Contact, fields={"name": name_field(120), "email": email_field()})
    choice_fields = {"decision_role": "decision_role"}
    filters = ("customer_id", "decision_role")
    sorts = (
        Sort("newest", Contact.id, True, False, "integer"),
        Sort("name", Contact.name, False, False, "text"),
    )
    searchable = True
    rule_hides = True
    create_only = ("customer_id",)

    def query(self) -> Select:
        return customer_joined(Contact)

    def search(self, q: str) -> Any:
        return or_(
            Contact.name.contains(q, autoescape=True),
            Contact.phone.contains(q, autoescape=True),
            Contact.email.contains(q, autoescape=True),
        )

    def dump_many(self, records: Sequence[Any], ext_values: Mapping[int, dict]) -> list[dict]:
        return mask_phones(super().dump_many(records, ext_values), records)


class Channels(Resource):
    """Sales and service channels (渠道); kept by administrators and managers."""

    name = "channels"
    model = Channel
    label, label_zh = "Channels", "渠道"
    extension_model = "channel"
    schema = model_schema(
        Channel,
        fields={
            "name": name_field(200),
            "status": Text(validate=ma.validate.OneOf(["active", "suspended", "terminated"])),
        },
    )
    choice_fields = {"type": "channel_type"}
    filters = ("type", "status", "parent_id")
    sorts = (
        Sort("newest", Channel.id, True, False, "integer"),
        Sort("name", Channel.name, False, False, "text"),
    )
    searchable = True
    write_roles = ("admin", "manager")
    bulk_key = None

    def search(self, q: str) -> Any:
        return or_(
            Channel.name.contains(q, autoescape=True),
            Channel.code.contains(q, autoescape=True),
            Channel.territory.contains(q, autoescape=True),
        )

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        if "parent_id" not in values:
            return {}
        problem = parent_error(record.id if record else None, values["parent_id"])
        if problem == "cycle":
            return {"parent_id": ["A channel cannot sit below itself or its own sub-channels."]}
        if problem == "missing":
            return {"parent_id": [f"No channel {values['parent_id']} here."]}
        return {}


class Interactions(Resource):
    """The timeline: calls, visits, messages, meetings, follow-ups (回访), with next steps.

    Only the person who logged an interaction may change it. ``external_id`` is the id in the
    system it came from; bulk requests upsert on it.
    """

    name = "interactions"
    model = Interaction
    label, label_zh = "Interactions", "互动记录"
    extension_model = "interaction"
    schema = model_schema(Interaction, dump_only=("user_id",))
    choice_fields = {"kind": "interaction_kind"}
    filters = ("customer_id", "user_id", "kind", "ticket_id", "occurred_at", "next_step_due")
    sorts = (
        Sort("newest", Interaction.occurred_at, True, False, "datetime"),
        Sort("id", Interaction.id, True, False, "integer"),
    )
    rule_hides = True
    create_only = ("customer_id",)
    bulk_key = "external_id"

    def query(self) -> Select:
        return customer_joined(Interaction)

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        if "external_id" in values and not (values["external_id"] or "").strip():
            values["external_id"] = None
        external = values.get("external_id")
        if external is None:
            return {}
        taken = db.session.scalar(
            select(Interaction.id).where(
                Interaction.external_id == external,
                Interaction.id != (record.id if record is not None else 0),
            )
        )
        if taken is not None:
            return {"external_id": [f"Interaction {taken} has this external_id already."]}
        return {}

    def may_write(self, record: Any | None) -> str | None:
        if record is not None and record.user_id != user().id:
            return "only the person who logged an interaction can change it"
        return None

    def _service(self, call: Any, record: Any | None, values: dict[str, Any]) -> Any:
        customer_id = values.get("customer_id", getattr(record, "customer_id", None))
        customer = db.session.get(Customer, customer_id)
        fields = {k: v for k, v in values.items() if k in interactions.FIELDS}
        if record is not None:
            fields = {
                **{k: getattr(record, k) for k in interactions.FIELDS},
                **fields,
            }
        try:
            made = call(customer, fields)
        except interactions.InteractionError as exc:
            raise ApiError(
                422, "invalid", str(exc.message), {exc.field: [str(exc.message)]}
            ) from exc
        for key in ("external_id", "next_step_done_at"):
            if key in values:
                setattr(made, key, values[key])
        return made

    def create(self, values: dict[str, Any]) -> Any:
        return self._service(lambda c, f: interactions.log(c, user(), **f), None, values)

    def update(self, record: Any, values: dict[str, Any]) -> None:
        self._service(lambda c, f: interactions.update(record, c, **f), record, values)


class Tickets(Resource):
    """Service tickets (服务工单). The state moves only by workflow transitions
    (``POST /tickets/{id}/transitions/{name}``); opening a ticket starts its SLA clocks, so the
    priority is fixed when the ticket is opened."""

    name = "tickets"
    model = ServiceTicket
    label, label_zh = "Service tickets", "服务工单"
    extension_model = "service_ticket"
    schema = model_schema(
        ServiceTicket,
        dump_only=(
            "state",
            "workflow",
            "resolved_at",
            "closed_at",
            "apology",
            "compensation",
            "recovery_note",
        ),
        fields={"subject": name_field(200)},
    )
    choice_fields = {
        "type": "ticket_type",
        "priority": "ticket_priority",
        "intake_channel": "intake_channel",
    }
    filters = (
        "customer_id",
        "state",
        "type",
        "priority",
        "intake_channel",
        "assignee_id",
        "team_id",
        "created_at",
    )
    sorts = (Sort("newest", ServiceTicket.created_at, True, False, "datetime"),)
    searchable = True
    rule_hides = True
    create_only = ("customer_id", "priority")

    def query(self) -> Select:
        return customer_joined(ServiceTicket)

    def search(self, q: str) -> Any:
        return ServiceTicket.subject.contains(q, autoescape=True)

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        contact_id = values.get("contact_id")
        if contact_id is None:
            return {}
        customer_id = values.get("customer_id", getattr(record, "customer_id", None))
        owner = db.session.scalar(select(Contact.customer_id).where(Contact.id == contact_id))
        if owner != customer_id:
            return {"contact_id": ["This contact is not one of this customer's."]}
        return {}

    def create(self, values: dict[str, Any]) -> Any:
        ticket = tickets.open_ticket(user_id=user().id, **values)
        tickets.notify_assigned(ticket, user())
        return ticket

    def update(self, record: Any, values: dict[str, Any]) -> None:
        reassigned = "assignee_id" in values and values["assignee_id"] != record.assignee_id
        super().update(record, values)
        if reassigned:
            tickets.notify_assigned(record, user())

    def transition_inputs(self, record: Any, name: str, body: dict[str, Any]) -> dict[str, Any]:
        inputs = super().transition_inputs(record, name, body)
        if "assignee_id" in body:
            assignee = body["assignee_id"]
            members = select(Membership.user_id).where(Membership.user_id == assignee)
            if (
                not isinstance(assignee, int)
                or isinstance(assignee, bool)
                or not 0 < assignee < 2**31
                or db.session.scalar(members) is None
            ):
                raise ApiError(
                    422, "invalid", "no such member", {"assignee_id": ["No such member here."]}
                )
            record.assignee_id = assignee
            inputs["assignee_id"] = assignee
        return inputs

    def after_transition(self, record: Any, name: str, body: dict[str, Any]) -> None:
        if "assignee_id" in body:
            tickets.notify_assigned(record, user())
        audit.record("update", "service_ticket", record.id, {"via": "api", "transition": name})


class Users(Resource):
    """The company's members (read-only): name, e-mail, role and team."""

    name = "users"
    model = User
    label, label_zh = "Users", "用户"
    schema = model_schema(
        User,
        exclude=("password_hash", "locale"),
        fields={
            "role": Text(dump_only=True),
            "team_id": ma.fields.Integer(dump_only=True, allow_none=True),
        },
    )
    filters = ("active",)
    sorts = (
        Sort("name", User.name, False, False, "text"),
        Sort("newest", User.id, True, False, "integer"),
    )
    searchable = True
    read_only = True

    def query(self) -> Select:
        return select(User).join(Membership, Membership.user_id == User.id)

    def search(self, q: str) -> Any:
        return or_(User.name.contains(q, autoescape=True), User.email.contains(q, autoescape=True))

    def extra_params(self) -> dict[str, dict[str, Any]]:
        return {"role": {"type": "string", "maxLength": 40, "description": "Role (any of)."}}

    def filter(self, stmt: Select, args: Mapping[str, list[str]]) -> tuple[Select, dict]:
        roles = [v for v in args.get("role", []) if v]
        return (stmt.where(Membership.role.in_(roles)) if roles else stmt), {}

    def dump_many(self, records: Sequence[Any], ext_values: Mapping[int, dict]) -> list[dict]:
        out = super().dump_many(records, ext_values)
        ids = [r.id for r in records]
        members = {
            m.user_id: m
            for m in db.session.scalars(select(Membership).where(Membership.user_id.in_(ids)))
        }
        for data in out:
            member = members.get(data["id"])
            data["role"] = member.role if member else None
            data["team_id"] = member.team_id if member else None
        return out


class Consents(Resource):
    """Customers' answers to being contacted, per channel and purpose (授权同意, PIPL; see
    :mod:`core.consent`). ``POST`` records an answer -- replacing the current one of that
    customer, channel and purpose, so it is safe to send again -- and ``PATCH`` changes
    ``granted`` or ``source``. ``purpose`` is one the company's enabled plugins declare.
    Every change is an audit row ``consent`` with the previous answer."""

    name = "consents"
    model = Consent
    label, label_zh = "Consent", "授权同意"
    schema = model_schema(
        Consent,
        dump_only=("recorded_at", "recorded_by"),
        fields={
            "source": Text(required=True, validate=[ma.validate.Length(min=1, max=200)]),
            "granted": ma.fields.Boolean(required=True),
        },
    )
    choice_fields = {"channel": "contact_channel"}
    filters = ("customer_id", "channel", "purpose", "granted", "recorded_at")
    sorts = (
        Sort("newest", Consent.recorded_at, True, False, "datetime"),
        Sort("id", Consent.id, True, False, "integer"),
    )
    rule_hides = True
    create_only = ("customer_id", "channel", "purpose")

    def query(self) -> Select:
        return customer_joined(Consent)

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        purpose = values.get("purpose")
        if purpose is not None and purpose not in {p.name for p in consent.purposes()}:
            names = ", ".join(p.name for p in consent.purposes()) or "none"
            return {"purpose": [f"Must be a purpose of this company: {names}."]}
        return {}

    def _record(self, customer_id: int, channel: str, purpose: str, values: dict) -> Any:
        try:
            return consent.record(
                customer_id, channel, purpose, values["granted"], values["source"], user=user()
            )
        except consent.ConsentRefused as exc:
            errors = {k: [v] for k, v in exc.errors.items()}
            raise ApiError(422, "invalid", str(exc), errors) from exc

    def create(self, values: dict[str, Any]) -> Any:
        return self._record(values["customer_id"], values["channel"], values["purpose"], values)

    def update(self, record: Any, values: dict[str, Any]) -> None:
        given = {"granted": record.granted, "source": record.source, **values}
        self._record(record.customer_id, record.channel, record.purpose, given)


CORE_RESOURCES: tuple[type[Resource], ...] = (
    Customers,
    Contacts,
    Channels,
    Interactions,
    Tickets,
    Users,
    Consents,
)
