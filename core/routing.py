"""URL rules that compile their URL builders when a URL is first built, not when registered.

Werkzeug compiles two Python functions per rule as it is added to the map (one to build a URL
with only the rule's arguments, one that appends unknown ones as a query string). Guanxi
registers some 300 rules, most of which a worker never builds a URL for; compiling all of them
took about a quarter of a second of every application start -- each gunicorn worker, each
``guanxi`` command, each test. :class:`LazyBuildRule` keeps Werkzeug's compiler and only defers
it to the rule's first ``url_for``. Matching (which does not use the builders) is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from werkzeug.routing import Rule


class LazyBuildRule(Rule):
    """A :class:`werkzeug.routing.Rule` whose builders are compiled on first use."""

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        compile_now = super()._compile_builder
        built: Callable[..., tuple[str, str]] | None = None

        def build(rule: Rule, **values: Any) -> tuple[str, str]:
            nonlocal built
            if built is None:
                built = compile_now(append_unknown)
            return built(rule, **values)

        return build
