"""Counting requests against a limit, for pages and calls open to anyone.

The JSON API limits every caller as a whole (``core.api.v1``); public pages limit single
actions -- how many complaints one address may file in an hour -- with :func:`allow`::

    if not ratelimit.allow("property.complaint", "5/hour", key=f"{company_id}:{address}"):
        abort(429)

Limits are Flask-Limiter's strings (``"10/minute"``, ``"5 per hour"``). Counts live where the
API's do (``RATELIMIT_STORAGE_URI``: memory for one process, Redis for several workers).
"""

from __future__ import annotations

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse

EXTENSION = "guanxi.limiter"


def init_app(app: Flask, limiter: Limiter) -> None:
    """Make ``limiter`` (the app's Flask-Limiter) the one :func:`allow` counts with."""
    app.extensions[EXTENSION] = limiter


def allow(scope: str, limit: str, key: str | None = None) -> bool:
    """Count one hit of ``scope`` for ``key`` (default: the client's address); ``False`` when
    that makes more than ``limit`` (the hit is then not counted)."""
    limiter: Limiter = current_app.extensions[EXTENSION]
    return limiter.limiter.hit(parse(limit), "guanxi-action", scope, key or get_remote_address())


def exhausted(scope: str, limit: str, key: str | None = None) -> bool:
    """Whether ``key`` has used up ``limit`` for ``scope`` (counts nothing): for limits that
    count failures only, checked before the attempt and hit with :func:`allow` on failure."""
    limiter: Limiter = current_app.extensions[EXTENSION]
    return not limiter.limiter.test(
        parse(limit), "guanxi-action", scope, key or get_remote_address()
    )
