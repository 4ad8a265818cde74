"""The JSON API (``/api/v1``).

:class:`Resource` is what the core and plugins declare (hook ``guanxi_api_resources``);
:mod:`core.api.v1` serves them, :mod:`core.api.openapi` documents them, :mod:`core.api.errors`
keeps every failure in one shape and :mod:`core.api.auth` reads bearer tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["Resource", "init_app"]


def __getattr__(name: str) -> Any:
    if name == "Resource":
        from core.api.resources import Resource

        return Resource
    raise AttributeError(name)


def init_app(app: Flask) -> None:
    """Register the API on ``app``: error shape, bearer tokens, the ``/api/v1`` blueprint."""
    from core.api import auth, errors, v1
    from core.app import csrf

    errors.init_app(app)
    auth.init_app(app)
    bp = v1.blueprint(app)
    app.register_blueprint(bp)
    csrf.exempt(bp)
