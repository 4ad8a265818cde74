"""Security headers on every response.

``Content-Security-Policy`` (config ``CONTENT_SECURITY_POLICY``, :data:`POLICY` by default):
scripts, fonts, images and connections from this site only -- no inline script, no ``eval``,
no other origin (the static assets are vendored) -- no plugins (``object-src 'none'``), forms
posting only here, and no framing by other sites. Styles too come from this site's stylesheets
only (``style-src 'self'``): no ``<style>`` element and no ``style=""`` attribute, in templates,
in the server-drawn SVG charts or in markup our scripts build (``tests/test_csp.py`` checks the
templates and, in a browser, that pages log no CSP violation). Widths that vary (bars, meters)
and tree indents are classes from small generated sets in ``core/static/guanxi.css``
(``w-0`` … ``w-100``, ``depth-0`` … ``depth-32``); scripts may still set ``element.style``
through the CSSOM, which the policy allows.

Also ``X-Content-Type-Options: nosniff`` (uploads and exports are served as what they are),
``Referrer-Policy: same-origin`` (a tracking or survey link's code does not leak to other
sites) and ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``.
"""

from __future__ import annotations

from flask import Flask, Response, current_app

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _headers(response: Response) -> Response:
    policy = current_app.config.get("CONTENT_SECURITY_POLICY", POLICY)
    if policy:
        response.headers.setdefault("Content-Security-Policy", policy)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_app(app: Flask) -> None:
    """Add the security headers to every response of ``app``."""
    app.after_request(_headers)
