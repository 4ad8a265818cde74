"""Who and where the current request (or CLI command, or job) is: company, plugins, role."""

from __future__ import annotations

from flask import g, has_request_context

from core.tenancy import require_company


def enabled_plugins() -> frozenset[str]:
    """Plugins enabled for the company in scope (read once per request)."""
    from core.plugins import current

    company_id = require_company()
    if has_request_context():
        cached = g.get("_guanxi_enabled")
        if cached is not None and cached[0] == company_id:
            return cached[1]
    enabled = current().enabled(company_id)
    if has_request_context():
        g._guanxi_enabled = (company_id, enabled)
    return enabled


def forget_enabled() -> None:
    """Drop the request's cached plugin set (after enabling or disabling a plugin)."""
    if has_request_context():
        g.pop("_guanxi_enabled", None)
