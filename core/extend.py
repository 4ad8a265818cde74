"""The public surface for plugin authors: import from here, not from core internals.

Everything named in ``__all__`` keeps its name and meaning across minor versions of the core.
"""

from core.api.resources import Resource, customer_joined
from core.api.schemas import model_schema
from core.choices import Choice
from core.clocks import ObligationKind
from core.db import UTCDateTime, db, utcnow
from core.fields import Field
from core.jobs import Job, daily, every, monthly
from core.keyset import Sort
from core.plugins import Manifest, PluginError, hookimpl
from core.plugins.parts import Parts
from core.ratelimit import allow as rate_allow
from core.reports import Column as ReportColumn
from core.reports import Param as ReportParam
from core.reports import Report, date_range
from core.tenancy import TenantMixin, company_scope, current_company_id, require_company
from core.web.helpers import MenuItem
from core.web.panels import Panel, TimelineEntry
from core.web.public import PublicBlueprint, public_url
from core.workflow import State, Transition, Workflow

__all__ = [
    "Choice",
    "Field",
    "Job",
    "Manifest",
    "MenuItem",
    "ObligationKind",
    "Panel",
    "Parts",
    "PluginError",
    "PublicBlueprint",
    "Report",
    "ReportColumn",
    "ReportParam",
    "Resource",
    "Sort",
    "State",
    "TenantMixin",
    "TimelineEntry",
    "Transition",
    "UTCDateTime",
    "Workflow",
    "company_scope",
    "customer_joined",
    "current_company_id",
    "daily",
    "date_range",
    "db",
    "every",
    "hookimpl",
    "model_schema",
    "monthly",
    "public_url",
    "rate_allow",
    "require_company",
    "utcnow",
]
