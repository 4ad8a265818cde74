"""What plugins put on the core's pages: dashboard widgets, record panels, timeline entries.

Plugins return these from ``guanxi_dashboard_widgets``, ``guanxi_record_panels`` and
``guanxi_timeline``; the core's pages collect them from the company's enabled plugins only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

from core.i18n import pick


@dataclass(frozen=True)
class Panel:
    """A box on the dashboard or on a record's detail page.

    ``render()`` returns the box's body as HTML (usually ``render_template(...)`` of the
    plugin's own template, which Jinja has already escaped); it is called only when the page is
    drawn. Boxes are shown by ``order``, then title.
    """

    title: str
    render: Callable[[], str]
    title_zh: str = ""
    order: int = 100

    @property
    def text(self) -> str:
        return pick(self.title, self.title_zh)

    def html(self) -> Markup:
        return Markup(self.render())


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened with a customer, for the customer's timeline.

    ``at`` is an aware UTC datetime; ``kind`` a short tag shown as a badge (e.g. ``visit``);
    ``link`` an optional URL of the record.
    """

    at: datetime
    kind: str
    title: str
    detail: str = ""
    link: str | None = None


def record_panels(subject_type: str, subject: object) -> list[Panel]:
    """The enabled plugins' panels for a record's page (``guanxi_record_panels``), by order then
    title. Every detail page of the core (customer, ticket, channel) shows them."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    panels: list[Panel] = []
    hooks = current().hooks(enabled_plugins())
    for found in hooks.guanxi_record_panels(subject_type=subject_type, subject=subject):
        panels.extend(p for p in found or [] if isinstance(p, Panel))
    return sorted(panels, key=lambda p: (p.order, p.text))
