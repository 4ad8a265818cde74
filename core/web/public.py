"""Public pages: pages for people who do not log in to Guanxi.

A resident filing a complaint, a customer answering a survey by link: they have no account,
so the company cannot come from a session. A plugin returns a :class:`PublicBlueprint` from
``guanxi_blueprints``; its routes live under ``/p/<company code>/`` and, for every request to
them, the core (``core.app``):

* looks the company up by its code (404 when there is none, or when the blueprint's plugin is
  not enabled for it),
* scopes the request to that company (``current_company_id()`` is it) and ignores whoever may
  be logged in: a staff member of another company opening a public link reads it as anyone
  would,
* fills the code in when a view builds a URL to the same blueprint with ``url_for``.

Views receive no ``company`` argument; :func:`public_url` builds a link to a public page of
the current company from anywhere (a staff page showing a resident's tracking link, a job
sending survey invitations). Rate-limit what anonymous people may post with
:func:`core.ratelimit.allow`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, url_for

#: The URL part before the company code.
PREFIX = "/p"


class PublicBlueprint(Blueprint):
    """A blueprint of pages without login, under ``/p/<company code>/<url_prefix>``."""

    def __init__(self, name: str, import_name: str, url_prefix: str = "", **kwargs: Any) -> None:
        super().__init__(name, import_name, url_prefix=f"{PREFIX}/<company>{url_prefix}", **kwargs)
        self.url_value_preprocessor(_take_company)
        self.url_defaults(_give_company)
        self.context_processor(_context)


def _take_company(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if values is not None:
        g.public_company_code = values.pop("company", None)


def _give_company(endpoint: str, values: dict[str, Any]) -> None:
    if "company" not in values and g.get("public_company_code"):
        values["company"] = g.public_company_code


def _context() -> dict[str, Any]:
    """``public_company`` (name and code) for ``public_base.html``."""
    from sqlalchemy import select

    from core.db import db
    from core.models import Company
    from core.tenancy import current_company_id

    company = db.session.scalar(select(Company).where(Company.id == current_company_id()))
    return {"public_company": company}


def company_code() -> str:
    """The code of the company in scope (the public URL's, or the logged-in user's)."""
    from sqlalchemy import select

    from core.db import db
    from core.models import Company
    from core.tenancy import require_company

    code = g.get("public_company_code")
    if code:
        return code
    return db.session.scalar(select(Company.code).where(Company.id == require_company()))


def public_url(endpoint: str, *, external: bool = False, **values: Any) -> str:
    """The URL of public page ``endpoint`` for the company in scope."""
    if "company" not in values:
        values["company"] = company_code()
    return url_for(endpoint, _external=external, **values)
