"""Per-company plugin settings with a typed schema declared in the plugin's manifest.

A plugin lists its settings once, ``Manifest(..., settings=(Setting(...), ...))``; each company
keeps its own values in ``company_plugin.settings`` (JSON). The plugins admin page draws a form
from the declarations, and the plugin reads the current company's values, defaults filled in,
with :func:`plugin_settings`::

    manifest = Manifest(
        ...,
        settings=(Setting("hot_score", "integer", "Hot lead from score", "热线索分数线",
                          default=70, min=0, max=100),),
    )

    threshold = plugin_settings("dealer")["hot_score"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select

#: The types a setting may have.
TYPES = ("string", "integer", "decimal", "boolean", "choice")


@dataclass(frozen=True)
class Setting:
    """One typed setting of a plugin.

    ``choices`` (for ``choice``) are ``(value, label, label_zh)`` triples; ``min``/``max`` bound
    numbers, ``max_length`` strings. ``default`` is what a company that never saved the form gets.
    """

    name: str
    type: str
    label: str
    label_zh: str = ""
    default: Any = None
    choices: tuple[tuple[str, str, str], ...] = ()
    min: float | None = None
    max: float | None = None
    max_length: int = 200
    help: str = ""
    help_zh: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"setting {self.name!r}: type must be one of {', '.join(TYPES)}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"setting {self.name!r}: a choice setting needs choices")

    def coerce(self, raw: Any) -> Any:
        """``raw`` (form text or JSON) as this setting's type; :class:`ValueError` if it is not."""
        if raw is None or (isinstance(raw, str) and not raw.strip() and self.type != "boolean"):
            return self.default
        if self.type == "boolean":
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "y", "yes", "on")
        if self.type == "choice":
            value = str(raw).strip()
            if value not in {c[0] for c in self.choices}:
                raise ValueError(f"{self.name}: not one of the choices")
            return value
        if self.type == "string":
            value = str(raw).strip()
            if len(value) > self.max_length:
                raise ValueError(f"{self.name}: at most {self.max_length} characters")
            return value
        try:
            number: Any = (
                int(str(raw).strip()) if self.type == "integer" else Decimal(str(raw).strip())
            )
        except (ValueError, InvalidOperation) as exc:
            raise ValueError(f"{self.name}: not a number") from exc
        if isinstance(number, Decimal) and not number.is_finite():
            raise ValueError(f"{self.name}: not a number")
        if self.min is not None and number < self.min:
            raise ValueError(f"{self.name}: at least {self.min:g}")
        if self.max is not None and number > self.max:
            raise ValueError(f"{self.name}: at most {self.max:g}")
        return str(number) if isinstance(number, Decimal) else number

    def load(self, stored: Any) -> Any:
        """A stored JSON value as Python (decimals are stored as text)."""
        if stored is None:
            return self.default
        if self.type == "decimal":
            return Decimal(str(stored))
        return stored


def plugin_settings(plugin: str, company_id: int | None = None) -> dict[str, Any]:
    """``plugin``'s settings for ``company_id`` (default: the company in scope), defaults filled
    in for values never saved. Unknown plugins raise :class:`KeyError`."""
    from core.db import db
    from core.models import CompanyPlugin
    from core.plugins import current
    from core.tenancy import require_company, unscoped

    declared = current().manifests[plugin].settings
    company_id = require_company() if company_id is None else company_id
    with unscoped():
        stored = db.session.scalar(
            select(CompanyPlugin.settings).where(
                CompanyPlugin.company_id == company_id, CompanyPlugin.plugin == plugin
            )
        )
    stored = stored if isinstance(stored, Mapping) else {}
    return {s.name: s.load(stored.get(s.name)) for s in declared}


def save_settings(company: Any, plugin: str, raw: Mapping[str, Any]) -> dict[str, str]:
    """Check ``raw`` against ``plugin``'s schema and store it for ``company``.

    Returns ``{setting: message}`` for refused values (nothing is stored then); the caller commits.
    """
    from core import audit
    from core.db import db
    from core.models import CompanyPlugin
    from core.plugins import current
    from core.tenancy import company_scope

    declared = current().manifests[plugin].settings
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for setting in declared:
        try:
            values[setting.name] = setting.coerce(raw.get(setting.name))
        except ValueError as exc:
            errors[setting.name] = str(exc)
    if errors:
        return errors
    with company_scope(company.id):
        row = db.session.scalar(select(CompanyPlugin).filter_by(plugin=plugin))
        if row is None:
            row = CompanyPlugin(plugin=plugin, company_id=company.id, enabled=False)
            db.session.add(row)
        row.settings = values
        audit.record("update", "plugin", None, {"plugin": plugin, "settings": values})
        db.session.flush()
    return {}
