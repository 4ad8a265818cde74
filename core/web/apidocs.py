"""The readable API page (``/developer/api``): an introduction, then Swagger UI.

Swagger UI is vendored in ``core/static/vendor/swagger-ui/`` (see its ``VERSION`` file) and reads
the company's OpenAPI document at ``/api/v1/openapi.json`` with the visitor's session cookie, so
"Try it out" acts as the logged-in user in the current company and no token is asked for here.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask_login import login_required

from core.web.helpers import require_member

bp = Blueprint("apidocs", __name__, url_prefix="/developer")

#: Where the API lives and where its document is, relative to the site's root.
API_ROOT = "/api/v1"
OPENAPI_PATH = f"{API_ROOT}/openapi.json"
#: The page on which a user creates personal API tokens.
TOKENS_PATH = "/account/tokens"


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


@bp.get("/api")
def index() -> Any:
    """The API page: base URL, authentication, the error shape, and the interactive reference."""
    root = request.script_root
    return render_template(
        "apidocs/index.html",
        api_root=root + API_ROOT,
        api_base_url=request.host_url.rstrip("/") + root + API_ROOT,
        openapi_url=root + OPENAPI_PATH,
        tokens_url=root + TOKENS_PATH,
    )
