"""The plugin system: hook specifications, manifests and the manager.

Plugins need only ``hookimpl`` and ``Manifest`` from here (both re-exported by ``core.api``)."""

from __future__ import annotations

import pluggy
from flask import current_app

from core.plugins.manager import CORE, PluginManager, Registry
from core.plugins.manifest import Manifest, PluginError

hookimpl = pluggy.HookimplMarker("guanxi")


def current() -> PluginManager:
    """The plugin manager of the current Flask application."""
    return current_app.extensions["guanxi.plugins"]


__all__ = ["CORE", "Manifest", "PluginError", "PluginManager", "Registry", "current", "hookimpl"]
