"""The OpenAPI 3 document of ``/api/v1``, generated with apispec from the resources' schemas.

The document is the company's own: it lists the resources of the plugins the company enabled,
the extension fields its records carry and the values its choice lists allow. It is built once
per set of enabled plugins and kept (declarations only change when the application restarts).

Responses are described by type only (:func:`core.api.schemas.without_checks`): a stored record
need not satisfy today's input rules (a choice value of a plugin since disabled, a text longer
than a later limit), and the document must never call a real answer invalid.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from core import __version__
from core import fields as ext
from core.api import schemas
from core.api.resources import BULK_MAX, MAX_LIMIT, Resource
from core.keyset import MAX_ID

DESCRIPTION = """\
The JSON API of Guanxi (关系). Authenticate with a personal token
(`Authorization: Bearer gx_…`, created under *API tokens* in the web UI or with
`guanxi tokens create`); a logged-in browser session works too. The token acts as its user,
with the user's role and record rules, in the token's company.

Lists page by cursor: pass the `next_after` of a page as `after` to get the next one.
Decimals are strings. Times are RFC 3339 with an offset and come back in UTC.
Every error has the shape `{"error": {"code", "message", "fields"}}`.
"""

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": True},
            },
        }
    },
}

_MESSAGES = {
    200: "OK",
    201: "Created",
    400: "Malformed request or invalid query parameter",
    401: "Not authenticated",
    403: "Not allowed for this role, or hidden by the record rule",
    404: "No such record in this company",
    409: "Conflict: stale version in the body, or a workflow refusal",
    412: "If-Match names an old version",
    413: "Request body too large",
    415: "Writes must be application/json",
    422: "Invalid fields",
    429: "Too many requests (see Retry-After)",
}


def _money(self: Any, field: ma.fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict:
    """Decimals travel as strings: describe them so, with the digits the column holds."""
    if not (isinstance(field, ma.fields.Decimal) and getattr(field, "as_string", False)):
        return {}
    ret.pop("minimum", None)
    ret.pop("maximum", None)
    out: dict[str, Any] = {"type": "string", "format": "decimal"}
    bounds = [v.max for v in field.validators if isinstance(v, ma.validate.Range) and v.max]
    if bounds:
        digits = len(str(int(bounds[0]))) - 1
        places = -field.places.as_tuple().exponent if field.places is not None else 0
        fraction = rf"(\.[0-9]{{1,{places}}})?" if places else ""
        out["pattern"] = rf"^-?[0-9]{{1,{digits}}}{fraction}$"
    return out


def _errors(*codes: int) -> dict[int, Any]:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in sorted({*codes, 414})}


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class Builder:
    """Builds one document; :func:`document` is the entry point."""

    def __init__(
        self,
        resources: list[Resource],
        transitions: dict[str, list[str]],
        inputs: dict[str, list[str]] | None = None,
    ) -> None:
        self.resources = resources
        self.transitions = transitions
        self.inputs = inputs or {}
        plugin = MarshmallowPlugin()
        self.spec = APISpec(
            title="Guanxi API",
            version=__version__,
            openapi_version="3.0.3",
            plugins=[plugin],
            info={"description": DESCRIPTION},
        )
        plugin.converter.add_attribute_function(_money)  # type: ignore[union-attr]
        self.spec.components.security_scheme(
            "token", {"type": "http", "scheme": "bearer", "description": "Personal API token"}
        )
        self.spec.components.security_scheme(
            "session", {"type": "apiKey", "in": "cookie", "name": "session"}
        )
        self.spec.components.schema("Error", ERROR)
        self.spec.components.response(
            "E414",
            {
                "description": "Request line too long (answered by the web server, in HTML)",
                "content": {"text/html": {"schema": {"type": "string"}}},
            },
        )
        for code, text in _MESSAGES.items():
            if code >= 400:
                self.spec.components.response(
                    f"E{code}",
                    {
                        "description": text,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                )

    def build(self) -> dict[str, Any]:
        for resource in self.resources:
            self._resource(resource)
        document = self.spec.to_dict()
        document["security"] = [{"token": []}, {"session": []}]
        return document

    def _schemas(self, resource: Resource) -> str:
        title = _title(resource.name)
        fields = resource.extension_fields()
        out = {k: schemas.without_checks(f) for k, f in resource.declared_fields().items()}
        out.update({f.key: schemas.without_checks(ext.marshmallow_field(f)) for f in fields})
        for field in out.values():
            field.required = True  # every answer carries every field (maybe null)
        self.spec.components.schema(title, schema=ma.Schema.from_dict(out, name=title))
        ext_fields = {f.key: ext.marshmallow_field(f) for f in fields}
        create = {**resource.input_fields(partial=False), **ext_fields}
        update = {k: schemas.optional(f) for k, f in create.items()}
        for name, group in ((f"{title}Create", create), (f"{title}Update", update)):
            self.spec.components.schema(name, schema=ma.Schema.from_dict(group, name=name))
        self.spec.components.schema(
            f"{title}Page",
            {
                "type": "object",
                "required": ["data", "next_after", "count", "count_capped"],
                "properties": {
                    "data": {"type": "array", "items": {"$ref": f"#/components/schemas/{title}"}},
                    "next_after": {"type": "string", "nullable": True},
                    "count": {"type": "integer", "minimum": 0},
                    "count_capped": {"type": "boolean"},
                },
            },
        )
        return title

    def _list_parameters(self, resource: Resource) -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = [
            _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Page size"),
            _query(
                "after",
                {"type": "string", "maxLength": 600, "pattern": "^[A-Za-z0-9_-]*$"},
                "next_after of the last page",
            ),
            _query("sort", {"type": "string", "enum": list(resource.sort_orders())}, "Order"),
        ]
        if resource.searchable:
            params.append(_query("q", {"type": "string", "maxLength": 100}, "Search text"))
        fields = resource.declared_fields()
        inputs = resource.input_fields(partial=True)
        converter = self.spec.plugins[0].converter  # type: ignore[attr-defined]
        for name in resource.filters:
            field = inputs.get(name) or fields[name]
            prop = converter.field2property(field)
            prop = {k: v for k, v in prop.items() if k not in ("nullable", "readOnly")}
            if prop.get("type") == "string" and "enum" not in prop:
                prop["maxLength"] = min(prop.get("maxLength", 200), 200)
            params.append(
                _query(
                    name,
                    {"type": "array", "items": prop, "maxItems": 10},
                    f"{name} is any of",
                    explode=True,
                )
            )
            if f"{name}__min" in resource.list_params():
                for suffix in ("__min", "__max"):
                    params.append(_query(name + suffix, prop, f"{name} bound"))
        for name, schema in resource.extra_params().items():
            params.append(_query(name, schema, schema.get("description", name)))
        for f in resource.extension_fields():
            prop = converter.field2property(ext.marshmallow_field(f))
            prop = {k: v for k, v in prop.items() if k not in ("nullable",)}
            if f.type == "customer":  # a customer id, or text of the customer's name
                prop = {"type": "string", "x-references": "customer"}
            params.append(_query(f.key, prop, f.label))
            if f.type in ("integer", "decimal", "date"):
                for suffix in ("__min", "__max"):
                    params.append(_query(f.key + suffix, prop, f"{f.label} bound"))
        return params

    def _resource(self, resource: Resource) -> None:
        title = self._schemas(resource)
        name = resource.name
        base = f"/api/v1/{name}"
        tag = resource.name
        self.spec.tag({"name": tag, "description": f"{resource.label} · {resource.label_zh}"})
        ref = f"#/components/schemas/{title}"
        record_id = {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        }
        if_match = {
            "name": "If-Match",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "maxLength": 100},
            "description": 'The ETag of the version you read ("3"); 412 if it changed since',
        }
        one = _ok(ref, etag=True)
        operations: dict[str, Any] = {
            "get": {
                "tags": [tag],
                "summary": f"List {name}",
                "operationId": f"list_{name}",
                "parameters": self._list_parameters(resource),
                "responses": {200: _ok(f"{ref}Page"), **_errors(400, 401, 403, 429)},
            }
        }
        if not resource.read_only:
            operations["post"] = {
                "tags": [tag],
                "summary": f"Create one of {name}",
                "operationId": f"create_{name}",
                "requestBody": _body(f"{ref}Create"),
                "responses": {
                    201: {**one, "description": "Created"},
                    **_errors(400, 401, 403, 413, 415, 422, 429),
                },
            }
        self.spec.path(path=base, operations=operations)
        item: dict[str, Any] = {
            "get": {
                "tags": [tag],
                "summary": f"One of {name}",
                "operationId": f"get_{name}",
                "parameters": [record_id],
                "responses": {200: one, **_errors(400, 401, 403, 404, 429)},
            }
        }
        if not resource.read_only:
            item["patch"] = {
                "tags": [tag],
                "summary": f"Change one of {name} (only the fields sent)",
                "operationId": f"update_{name}",
                "parameters": [record_id, if_match],
                "requestBody": _body(f"{ref}Update"),
                "responses": {
                    200: one,
                    **_errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 429),
                },
            }
        self.spec.path(path=base + "/{id}", operations=item)
        if resource.bulk_key and not resource.read_only:
            self._bulk(resource, title, tag)
        names = self.transitions.get(name)
        if names:
            self._transitions(resource, names, ref, tag, record_id, if_match)

    def _bulk(self, resource: Resource, title: str, tag: str) -> None:
        key = resource.bulk_key
        self.spec.path(
            path=f"/api/v1/{resource.name}/bulk",
            operations={
                "post": {
                    "tags": [tag],
                    "summary": f"Create or update up to {BULK_MAX} {resource.name} by {key}",
                    "description": (
                        f"Each item whose `{key}` names an existing record updates it (only the "
                        "fields sent); every other item creates a record. All or nothing: one "
                        "invalid item and nothing is written; the error lists each bad item "
                        'by position under `fields.items` (`{"3": {"name": [...]}}`).'
                    ),
                    "operationId": f"bulk_{resource.name}",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["items"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "items": {
                                            "type": "array",
                                            "minItems": 1,
                                            "maxItems": BULK_MAX,
                                            "items": {
                                                "$ref": f"#/components/schemas/{title}Update"
                                            },
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        200: {
                            "description": "Written",
                            "content": {"application/json": {"schema": BULK_RESULT}},
                        },
                        **_errors(400, 401, 403, 413, 415, 422, 429),
                    },
                }
            },
        )

    def _transitions(
        self,
        resource: Resource,
        names: list[str],
        ref: str,
        tag: str,
        record_id: dict[str, Any],
        if_match: dict[str, Any],
    ) -> None:
        base = f"/api/v1/{resource.name}/{{id}}/transitions"
        self.spec.path(
            path=base,
            operations={
                "get": {
                    "tags": [tag],
                    "summary": "Transitions you may take now",
                    "operationId": f"transitions_{resource.name}",
                    "parameters": [record_id],
                    "responses": {
                        200: {
                            "description": "OK",
                            "content": {"application/json": {"schema": TRANSITIONS}},
                        },
                        **_errors(400, 401, 403, 404, 429),
                    },
                }
            },
        )
        name_param = {
            "name": "transition",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": names},
        }
        self.spec.path(
            path=base + "/{transition}",
            operations={
                "post": {
                    "tags": [tag],
                    "summary": "Take a workflow transition",
                    "operationId": f"transition_{resource.name}",
                    "parameters": [record_id, name_param, if_match],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": transition_input(self.inputs.get(resource.name, []))
                            }
                        },
                    },
                    "responses": {
                        200: _ok(ref, etag=True),
                        **_errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 429),
                    },
                }
            },
        )


BULK_RESULT = {
    "type": "object",
    "required": ["created", "updated", "items"],
    "properties": {
        "created": {"type": "integer"},
        "updated": {"type": "integer"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "result"],
                "properties": {
                    "id": {"type": "integer"},
                    "result": {"type": "string", "enum": ["created", "updated"]},
                },
            },
        },
    },
}

TRANSITIONS = {
    "type": "object",
    "required": ["state", "transitions"],
    "properties": {
        "state": {"type": "string"},
        "transitions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "label", "to", "inputs"],
                "properties": {
                    "name": {"type": "string"},
                    "label": {"type": "string"},
                    "to": {"type": "string"},
                    "inputs": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}

TRANSITION_INPUT = {
    "type": "object",
    "properties": {
        "comment": {"type": "string", "maxLength": 10000},
        "assignee_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    },
}


def transition_input(inputs: list[str]) -> dict[str, Any]:
    """The body of a transition request: a comment, an assignee, and the inputs the resource's
    transitions declare (e.g. ``lost_reason``), each text."""
    schema = {"type": "object", "properties": dict(TRANSITION_INPUT["properties"])}
    for name in inputs:
        schema["properties"].setdefault(name, {"type": "string", "maxLength": 200})
    return schema


def _query(name: str, schema: dict[str, Any], description: str, explode: bool = False) -> dict:
    param = {"name": name, "in": "query", "required": False, "schema": schema}
    param["description"] = description
    if explode:
        param.update({"style": "form", "explode": True})
    return param


def _ok(ref: str, etag: bool = False) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": ref}}},
    }
    if etag:
        answer["headers"] = {
            "ETag": {"schema": {"type": "string"}, "description": "The record's version"}
        }
    return answer


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def document(
    resources: list[Resource],
    transitions: dict[str, list[str]],
    inputs: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI document of ``resources`` (those the company sees); ``transitions`` maps a
    resource name to the names of the transitions its workflows have, ``inputs`` to the names
    of the inputs those transitions declare."""
    return Builder(resources, transitions, inputs).build()
