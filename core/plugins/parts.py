"""A plugin made of parts: modules that each offer some of the plugin's functions.

A large plugin keeps one module per concern (the sales plugin: funnel, orders, value,
targets) and lets each of its hook implementations gather what the parts return::

    parts = Parts(funnel, orders, value)

    @hookimpl
    def guanxi_reports():
        return parts.gather("reports")

A part offers a function by defining it under that name; parts without it add nothing, and
so does a name that is not a function (a part that did ``from core import choices``).
"""

from __future__ import annotations

from types import FunctionType, ModuleType
from typing import Any


class Parts:
    """The part modules of one plugin, in the order their results are gathered."""

    def __init__(self, *modules: ModuleType) -> None:
        self.modules = modules

    def gather(self, function: str, *args: Any) -> list[Any]:
        """Concatenate what each part's ``function(*args)`` returns."""
        items: list[Any] = []
        for part in self.modules:
            fn = getattr(part, function, None)
            if isinstance(fn, FunctionType):
                items.extend(fn(*args))
        return items

    def each(self, function: str, *args: Any) -> None:
        """Call each part's ``function(*args)`` that exists, in order."""
        for part in self.modules:
            fn = getattr(part, function, None)
            if isinstance(fn, FunctionType):
                fn(*args)
