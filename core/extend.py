"""The public surface for plugin authors: import from here, not from core internals.

Everything named in ``__all__`` keeps its name and meaning across minor versions of the core.
"""

from collections.abc import Sequence
from typing import Any

from core import consent
from core.access import has_permission
from core.api.resources import Resource, customer_joined
from core.api.schemas import model_schema
from core.choices import Choice
from core.clocks import ObligationKind
from core.consent import Purpose as ConsentPurpose
from core.db import UTCDateTime, db, utcnow
from core.fields import Field
from core.i18n import pick
from core.jobs import Job, daily, every, monthly
from core.keyset import Sort
from core.models import Company, Customer, User
from core.permissions import Permission, abort_without
from core.plugins import Manifest, PluginError, hookimpl
from core.plugins.parts import Parts
from core.plugins.settings import Setting, plugin_settings
from core.ratelimit import allow as rate_allow
from core.reports import Column as ReportColumn
from core.reports import Param as ReportParam
from core.reports import Report, date_range
from core.tenancy import TenantMixin, company_scope, current_company_id, require_company
from core.web.helpers import MenuItem, check_csrf, csrf_checked_in_view, require_member
from core.web.panels import Panel, TimelineEntry
from core.web.public import PublicBlueprint, public_url
from core.workflow import State, Transition, Workflow, WorkflowError, transition
from core.workflow import available as available_transitions


def field_values(
    model: str, ids: Sequence[int], plugin: str | None = None
) -> dict[int, dict[str, Any]]:
    """Extension field values on core ``model`` rows ``ids`` -- of ``plugin``'s fields, or of
    every installed plugin's -- as ``{id: {"<plugin>__<name>": value}}`` (one query per side
    table; rows without values get ``None``)."""
    from core import fields
    from core.plugins import current

    declared = [
        f
        for f in current().registry.fields
        if f.model == model and (plugin is None or f.plugin == plugin)
    ]
    return fields.load(declared, list(ids))


__all__ = [
    "abort_without",
    "check_csrf",
    "csrf_checked_in_view",
    "Choice",
    "ConsentPurpose",
    "Company",
    "Customer",
    "Field",
    "Job",
    "Manifest",
    "MenuItem",
    "ObligationKind",
    "Panel",
    "Parts",
    "Permission",
    "PluginError",
    "PublicBlueprint",
    "Report",
    "ReportColumn",
    "ReportParam",
    "Resource",
    "Setting",
    "Sort",
    "State",
    "TenantMixin",
    "TimelineEntry",
    "Transition",
    "UTCDateTime",
    "User",
    "Workflow",
    "WorkflowError",
    "available_transitions",
    "company_scope",
    "consent",
    "current_company_id",
    "customer_joined",
    "daily",
    "date_range",
    "db",
    "every",
    "field_values",
    "has_permission",
    "hookimpl",
    "model_schema",
    "monthly",
    "pick",
    "plugin_settings",
    "public_url",
    "rate_allow",
    "require_company",
    "require_member",
    "transition",
    "utcnow",
]
