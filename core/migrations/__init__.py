"""Alembic migrations: the core's history (branch ``core``) plus one history per plugin.

Each plugin's first revision carries ``branch_labels = ("<plugin>",)`` and
``depends_on = "core_0001"`` (or a later core revision it needs); ``guanxi db upgrade`` upgrades
all heads. ``guanxi db revision --plugin NAME -m MESSAGE`` autogenerates into that plugin's
folder and compares only that plugin's tables (those named ``<plugin>_…``).
"""

from __future__ import annotations

import os
from typing import Any

from flask import current_app


def table_owner(name: str, plugin_names: list[str]) -> str:
    """The plugin owning table ``name`` (by its prefix), or ``core``."""
    for plugin in sorted(plugin_names, key=len, reverse=True):
        if name.startswith(f"{plugin}_"):
            return plugin
    return "core"


def configure(config: Any) -> Any:
    """Flask-Migrate configure callback: point Alembic at every version folder."""
    manager = current_app.extensions["guanxi.plugins"]
    core_versions = os.path.join(os.path.dirname(__file__), "versions")
    dirs = [core_versions, *manager.migration_dirs()]
    config.set_main_option("version_locations", os.pathsep.join(dirs))
    return config


def alembic_config(x_arg: list[str] | None = None, opts: list[str] | None = None) -> Any:
    """The Alembic config of the current app (all version folders set)."""
    return current_app.extensions["migrate"].migrate.get_config(x_arg=x_arg, opts=opts)


def upgrade(revision: str = "heads") -> None:
    """Create or upgrade the database of the current app to ``revision`` (all heads)."""
    from alembic import command

    command.upgrade(alembic_config(), revision)


def revision(message: str, plugin: str | None = None, autogenerate: bool = True) -> Any:
    """Write the next revision of the core's history, or of ``plugin``'s.

    Autogenerate compares only the tables of that history (``<plugin>_…`` for a plugin).
    Revision ids read ``<branch>_0001``, ``<branch>_0002``…; a plugin's first revision
    depends on ``core_0001``.
    """
    from alembic import command
    from alembic.script import ScriptDirectory

    manager = current_app.extensions["guanxi.plugins"]
    branch = plugin or "core"
    if plugin:
        if plugin not in manager.manifests:
            raise ValueError(f"no installed plugin {plugin!r}")
        folder = next(
            (d for d in manager.migration_dirs() if f"{os.sep}{plugin}{os.sep}" in d), None
        )
        if folder is None:
            raise ValueError(f"plugin {plugin!r} has no migrations/versions folder")
    else:
        folder = os.path.join(os.path.dirname(__file__), "versions")
    config = alembic_config([f"plugin={branch}"], ["autogenerate"] if autogenerate else [])
    script = ScriptDirectory.from_config(config)
    existing = [r for r in script.walk_revisions() if r.revision.startswith(f"{branch}_")]
    kwargs: dict[str, Any] = {"version_path": folder, "rev_id": f"{branch}_{len(existing) + 1:04d}"}
    if existing:
        kwargs["head"] = f"{branch}@head"
    else:
        kwargs.update(head="base", branch_label=branch)
        if plugin:
            kwargs["depends_on"] = "core_0001"
    return command.revision(config, message=message, autogenerate=autogenerate, **kwargs)
