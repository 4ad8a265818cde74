"""The API resource ``insurance_leads`` (``/api/v1/insurance_leads``): leads captured by a
website, a WeChat mini-program or a call centre, and the lead workflow, on the core's
:class:`~core.api.resources.Resource`.

- ``GET`` lists keyset pages (``newest`` by id, or ``created`` by the lead's date, newest
  first) with the web list's filters: ``state``, ``source``, ``agent_id``, ``channel_id``,
  ``customer_id`` (each repeatable for "any of"), ``created_on__min``/``__max``, ``no_agent``,
  ``referrer_customer_id``, ``referrer_agent_id``, ``scope`` (an agent's login: ``mine`` by
  default, ``team`` adds her downline) and ``q`` on the prospect's name, phone, e-mail or code.
- ``POST`` creates through :func:`plugins.insurance.leads.create_lead`, exactly as the web
  form: a new prospect (``name``, ``phone``, ``email``, ``region``) or an existing
  ``customer_id``, an optional referrer; an agent's login gives leads to herself and her
  downline only.
- ``PATCH`` changes ``source`` and ``notes``; managers also ``agent_id`` (the channel follows
  the agent). What was set when the lead was created (the customer, the referrer, the date)
  cannot change here: sending another value is a 422 at that field.
- Transitions (``contact``, ``propose``, ``convert``, ``lose`` with ``lost_reason``,
  ``reopen``) go through the core's ``/transitions`` routes.

Every query joins the lead's customer, so the customer record rule applies (a hidden lead
answers 403 ``record_rule``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import marshmallow as ma
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.sql import Select

from core import access
from core.api.errors import ApiError
from core.api.resources import Resource, customer_joined, user
from core.api.schemas import Day, Int, Text, model_schema
from core.customers import search_clause
from core.extend import Sort, db
from core.keyset import MAX_ID
from core.models import Customer
from plugins.insurance import leads as svc
from plugins.insurance.blueprint import is_manager
from plugins.insurance.models import Agent, Lead, Referral
from plugins.insurance.web_leads import (
    DATE_SORT,
    SCOPES,
    allowed_agents,
    filter_conditions,
    my_agent,
)

#: Fields of the prospect (the lead's customer), set when the lead is created.
PROSPECT = ("name", "phone", "email", "region")
#: Fields a ``PATCH`` may change (``agent_id``: managers only).
CHANGEABLE = ("agent_id", "source", "notes")


def _id_field() -> Int:
    return Int(allow_none=True, validate=ma.validate.Range(min=1, max=MAX_ID))


def _text(length: int) -> Text:
    return Text(allow_none=True, validate=ma.validate.Length(max=length))


class LeadsResource(Resource):
    """Insurance leads (销售线索). ``POST`` makes the prospect (a customer with status
    *potential*: ``name`` required, ``phone``, ``email``, ``region``) and its lead together, or
    puts a lead on an existing ``customer_id``; ``agent_id`` works it (its channel becomes the
    lead's), else ``channel_id`` (a website or bank branch); ``source`` (default ``other``;
    ``referral`` needs ``referrer_customer_id`` or ``referrer_agent_id``). An agent's login gives
    leads to herself and her downline only. ``PATCH`` changes ``source`` and ``notes``, and for
    managers ``agent_id``. ``state`` moves by transitions (``lose`` needs ``lost_reason``)."""

    name = "insurance_leads"
    model = Lead
    label, label_zh = "Insurance leads", "销售线索"
    schema = model_schema(
        Lead,
        dump_only=("state", "converted_on", "lost_reason"),
        fields={
            "state": Text(dump_only=True, validate=ma.validate.OneOf(svc.STATE_KEYS)),
            "customer_id": _id_field(),
            "agent_id": _id_field(),
            "channel_id": _id_field(),
            "created_on": Day(allow_none=True),
            "notes": _text(2000),
            "name": Text(
                allow_none=True,
                validate=ma.validate.Length(max=200),
                metadata={"description": "The prospect's name (required without customer_id)."},
            ),
            "phone": _text(40),
            "email": _text(254),
            "region": _text(80),
            "referrer_customer_id": _id_field(),
            "referrer_agent_id": _id_field(),
        },
    )
    choice_fields = {"source": svc.SOURCE_LIST}
    filters = ("state", "source", "agent_id", "channel_id", "customer_id", "created_on")
    sorts = (Sort("newest", Lead.id, True, False, "integer"), DATE_SORT)
    searchable = True
    rule_hides = True

    # -- reading ---------------------------------------------------------------------------

    def query(self) -> Select:
        return customer_joined(Lead)

    def search(self, q: str) -> Any:
        return search_clause(q)

    def extra_params(self) -> dict[str, dict[str, Any]]:
        return {
            "scope": {
                "type": "string",
                "enum": list(SCOPES),
                "description": "An agent's login: mine (default) or team (with the downline).",
            },
            "no_agent": {
                "type": "boolean",
                "description": "true: only leads without an agent; false: only with one.",
            },
            "referrer_customer_id": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "Leads of customers this customer referred.",
            },
            "referrer_agent_id": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "description": "Leads of customers this agent referred.",
            },
        }

    def filter(self, stmt: Select, args: Mapping[str, list[str]]) -> tuple[Select, dict]:
        errors: dict[str, list[str]] = {}
        states = [v for v in args.get("state", []) if v]
        if any(s not in svc.STATE_KEYS for s in states):
            errors["state"] = [_("Must be one of: %(values)s.", values=", ".join(svc.STATE_KEYS))]
        scope_errors: dict[str, str] = {}
        conds, _scope = filter_conditions(
            {"scope": (args.get("scope") or [""])[0]}, scope_errors, my_agent()
        )
        errors.update({k: [v] for k, v in scope_errors.items()})
        stmt = stmt.where(*conds)
        raw = (args.get("no_agent") or [""])[0]
        if raw:
            if raw not in ("true", "false"):
                errors["no_agent"] = [_("Must be true or false.")]
            else:
                column = Lead.agent_id
                stmt = stmt.where(column.is_(None) if raw == "true" else column.is_not(None))
        for name in ("referrer_customer_id", "referrer_agent_id"):
            raw = (args.get(name) or [""])[0]
            if not raw:
                continue
            if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID):
                errors[name] = [_("Must be a number (an id).")]
                continue
            referred = select(Referral.customer_id).where(getattr(Referral, name) == int(raw))
            stmt = stmt.where(Lead.customer_id.in_(referred))
        return stmt, errors

    def dump_many(self, records: Sequence[Any], ext_values: Mapping[int, dict]) -> list[dict]:
        out = super().dump_many(records, ext_values)
        facts = _facts([r.customer_id for r in records])
        for data, record in zip(out, records, strict=True):
            found = facts.get(record.customer_id, {})
            for key in (*PROSPECT, "referrer_customer_id", "referrer_agent_id"):
                data[key] = found.get(key)
            data["phone"] = access.phone(data["phone"]) or None
        return out

    # -- writing ---------------------------------------------------------------------------

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        if record is not None:
            return self._check_update(values, record)
        data = self._input(values)
        found = {k: [v] for k, v in svc.problems(data, self._allowed()).items()}
        channel = values.get("channel_id")
        if channel is not None and data.agent_id is not None and "agent_id" not in found:
            agent = db.session.get(Agent, data.agent_id)
            if agent is not None and agent.channel_id != channel:
                found["channel_id"] = [_channel_follows()]
        return found

    def _check_update(self, values: dict[str, Any], lead: Lead) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        current = {
            "customer_id": lead.customer_id,
            "created_on": lead.created_on,
            **_facts([lead.customer_id]).get(lead.customer_id, {}),
        }
        for key, value in values.items():
            if key in CHANGEABLE or key == "channel_id":
                continue
            if value != current.get(key):
                errors[key] = [_("Set when the lead is created; it cannot change.")]
        agent_id = values.get("agent_id", lead.agent_id)
        if agent_id != lead.agent_id and not is_manager():
            message = _("Only managers reassign a lead to another agent.")
            raise ApiError(403, "forbidden", message, {"agent_id": [message]})
        if "channel_id" in values and values["channel_id"] != lead.channel_id:
            agent = db.session.get(Agent, agent_id) if agent_id is not None else None
            if agent is None or agent.channel_id != values["channel_id"]:
                errors["channel_id"] = [_channel_follows()]
        return errors

    def create(self, values: dict[str, Any]) -> Any:
        try:
            return svc.create_lead(
                self._input(values), user(), allowed_agents=self._allowed(), via="api"
            )
        except svc.LeadRefused as exc:
            raise _invalid(exc.errors) from exc

    def update(self, record: Any, values: dict[str, Any]) -> None:
        errors = svc.update_lead(
            record,
            agent_id=values.get("agent_id", record.agent_id),
            source=values.get("source", record.source),
            notes=values.get("notes", record.notes),
            user=user(),
        )
        if errors:
            raise _invalid(errors)

    def transition_inputs(self, record: Any, name: str, body: dict[str, Any]) -> dict[str, Any]:
        inputs = super().transition_inputs(record, name, body)
        if body.get("assignee_id") is not None:
            message = _("A lead has no assignee; change its agent_id to reassign it.")
            raise ApiError(422, "invalid", message, {"assignee_id": [message]})
        reason = body.get("lost_reason")
        if reason is not None:
            if not isinstance(reason, str) or len(reason) > 200 or "\x00" in reason:
                message = _("Say why the lead was lost (at most 200 characters).")
                raise ApiError(422, "invalid", message, {"lost_reason": [message]})
            inputs["lost_reason"] = reason.strip()
        return inputs

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _allowed() -> set[int] | None:
        return allowed_agents(my_agent())

    @staticmethod
    def _input(values: dict[str, Any]) -> svc.LeadInput:
        agent_id = values.get("agent_id")
        return svc.LeadInput(
            name=values.get("name"),
            phone=values.get("phone"),
            email=values.get("email"),
            region=values.get("region"),
            customer_id=values.get("customer_id"),
            agent_id=agent_id,
            channel_id=values.get("channel_id") if agent_id is None else None,
            source=values.get("source") or "other",
            notes=values.get("notes"),
            referrer_customer_id=values.get("referrer_customer_id"),
            referrer_agent_id=values.get("referrer_agent_id"),
            created_on=values.get("created_on"),
        )


def _channel_follows() -> str:
    return _("A lead takes its agent's channel: leave channel_id out or send that channel.")


def _invalid(errors: Mapping[str, str]) -> ApiError:
    return ApiError(422, "invalid", "some fields are invalid", {k: [v] for k, v in errors.items()})


def _facts(customer_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The prospect's fields and referrer of each customer (two queries, whatever the number);
    the raw phone (the caller masks it)."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    out: dict[int, dict[str, Any]] = {
        row.id: {
            "name": row.name,
            "phone": row.phone,
            "email": row.email,
            "region": row.region,
            "referrer_customer_id": None,
            "referrer_agent_id": None,
        }
        for row in db.session.execute(
            select(
                Customer.id, Customer.name, Customer.phone, Customer.email, Customer.region
            ).where(Customer.id.in_(ids))
        )
    }
    for customer_id, by_customer, by_agent in db.session.execute(
        select(
            Referral.customer_id, Referral.referrer_customer_id, Referral.referrer_agent_id
        ).where(Referral.customer_id.in_(ids))
    ):
        if customer_id in out:
            out[customer_id]["referrer_customer_id"] = by_customer
            out[customer_id]["referrer_agent_id"] = by_agent
    return out


def resources() -> list[Resource]:
    return [LeadsResource()]
