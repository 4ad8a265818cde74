"""Counting requests against a limit, for pages and calls open to anyone.

The JSON API limits every caller as a whole (``core.api.v1``); public pages limit single
actions -- how many complaints one address may file in an hour -- with :func:`allow`::

    if not ratelimit.allow("property.complaint", "5/hour", key=f"{company_id}:{address}"):
        abort(429)

Limits are Flask-Limiter's strings (``"10/minute"``, ``"5 per hour"``). Counts live where the
API's do (``RATELIMIT_STORAGE_URI``: memory for one process, Redis for several workers);
``memory://`` is served by :class:`ProcessCounts`.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from limits.storage import MemoryStorage

EXTENSION = "guanxi.limiter"
#: How often (seconds) :class:`ProcessCounts` drops the counts of windows that have ended.
SWEEP_SECONDS = 60.0


class ProcessCounts(MemoryStorage):
    """The counts of one process (``memory://``), without a thread per request.

    limits' :class:`~limits.storage.MemoryStorage` starts a 10 ms timer thread on a hit
    whenever its last one has ended, and the thread walks every key to drop ended windows. In
    a worker that answers a request every few milliseconds that is a thread started per
    request (a few tenths of a millisecond, more on a busy machine). Here a hit restarts its
    own key's ended window (as ``get`` always did) and ended windows of other keys are
    dropped at most every :data:`SWEEP_SECONDS`, in the request that notices.
    """

    STORAGE_SCHEME = ["guanxi-memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.swept_at = time.time()

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        """Count ``amount`` hits of ``key`` in a window of ``expiry`` seconds; the new count."""
        now = time.time()
        if now - self.swept_at >= SWEEP_SECONDS:
            self.swept_at = now
            for name, ends in list(self.expirations.items()):
                if ends <= now:
                    self.clear(name)
        self.get(key)  # drops the key's count when its window has ended
        with self.locks[key]:
            self.storage[key] += amount
            if self.storage[key] == amount:
                self.expirations[key] = now + expiry
        return self.storage.get(key, 0)


def storage_uri(configured: str) -> str:
    """The storage URI to give Flask-Limiter for the configured one (``memory://`` →
    :class:`ProcessCounts`; Redis and others as they are)."""
    return "guanxi-memory://" if configured == "memory://" else configured


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
