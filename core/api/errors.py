"""The one error shape of the API, and the handlers that make every failure take it.

Every answer of ``/api/...`` that is not a success looks like::

    {"error": {"code": "invalid", "message": "some fields are invalid",
               "fields": {"email": ["Not a valid email address."]}}}

``code`` is stable and meant for programs; ``message`` is for people; ``fields`` (present only
when it applies) maps a body field, query parameter or header to its messages (bulk requests key
items by position: ``{"items": {"3": {"name": [...]}}}``).

=====  ===========================  ========================================================
HTTP   code                         when
=====  ===========================  ========================================================
400    bad_request, bad_parameter   malformed JSON, an unknown or bad query parameter
401    unauthorized                 no session and no valid bearer token
403    forbidden, record_rule       the role may not do this / the record rule hides it
404    not_found                    no such record in *this* company (other companies' records
                                    are never found, so their existence does not leak)
405    method_not_allowed
409    conflict, stale, ...         a workflow refusal, a stale ``version`` in the body
412    precondition_failed          ``If-Match`` names an old version
413    payload_too_large            body over ``MAX_CONTENT_LENGTH``
415    unsupported_media_type       a write that is not ``application/json``
422    invalid                      the body is JSON but its fields are wrong
429    rate_limited                 too many requests for this token (``Retry-After`` says when)
=====  ===========================  ========================================================
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger("guanxi.api")

PREFIX = "/api/"

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


class ApiError(Exception):
    """Raise anywhere below an API view to answer with the error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields, self.headers = fields, headers or {}


def response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON error answer."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    answer = jsonify({"error": body})
    answer.status_code = status
    answer.headers.update(headers or {})
    return answer


def _api_request() -> bool:
    return request.path.startswith(PREFIX)


def init_app(app: Flask) -> None:
    """Answer every error under ``/api/`` in the error shape (other paths keep their pages)."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return response(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not _api_request():
            return exc
        status = exc.code or 500
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        if status == 405 and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        message = exc.description or exc.name
        if status == 429:
            message = f"too many requests ({exc.description}); slow down"
        return response(
            status, _CODES.get(status, exc.name.lower().replace(" ", "_")), message, None, headers
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        if not _api_request():
            raise exc
        log.exception("API request failed: %s %s", request.method, request.path)
        return response(500, "internal_error", "the server failed; the error was logged")
