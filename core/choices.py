"""Choice lists (customer kinds, channel types, ticket types, …) that plugins extend.

The core's values come from :mod:`core.defaults`; plugins add theirs with the
``guanxi_choices`` hook. :func:`options` gives a company's list, labelled in the user's language.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.i18n import pick

LISTS = (
    "customer_kind",
    "channel_type",
    "ticket_type",
    "ticket_priority",
    "intake_channel",
    "contact_channel",
    "interaction_kind",
    "decision_role",
)


@dataclass(frozen=True)
class Choice:
    """One value of a choice list, with its English and Chinese labels."""

    list: str
    value: str
    label: str
    label_zh: str = ""
    plugin: str = ""

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


def options(list_name: str, enabled: frozenset[str] | None = None) -> list[tuple[str, str]]:
    """``(value, label)`` pairs of ``list_name`` for the current company's enabled plugins."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    enabled = enabled if enabled is not None else enabled_plugins()
    return [(c.value, c.text) for c in current().registry.choices_for(list_name, enabled)]


def label(list_name: str, value: str | None) -> str:
    """The label of ``value`` in ``list_name`` (any installed plugin's), or the value itself."""
    from core.plugins import current

    for choice in current().registry.choices:
        if choice.list == list_name and choice.value == value:
            return choice.text
    return value or ""
