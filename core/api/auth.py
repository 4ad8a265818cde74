"""Bearer tokens for the API, read by Flask-Login's request loader.

A request to ``/api/`` with ``Authorization: Bearer gx_…`` and no session is authenticated as the
token's user; the token's company becomes the request's company (see ``_enter_company`` in
:mod:`core.app`), so the role and record rules are those the user has there. A browser request
that carries a session cookie is authenticated by the session, as on every page. Tokens count
only on ``/api/``: they never open a web page.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, g

from core.api.errors import PREFIX


def load_user_from_request(req: Request) -> Any:
    """The user of a valid bearer token on an API path, else ``None`` (→ 401)."""
    if not req.path.startswith(PREFIX):
        return None
    header = req.headers.get("Authorization", "")
    scheme, _sep, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    from core import tokens

    token = tokens.authenticate(secret.strip())
    if token is None:
        return None
    g.api_token = token
    return token.user


def init_app(app: Flask) -> None:
    from core.app import login_manager

    login_manager.request_loader(load_user_from_request)
