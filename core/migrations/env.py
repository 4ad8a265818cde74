"""Alembic environment of Guanxi (run through ``guanxi db …`` inside the application)."""

from __future__ import annotations

import logging

from alembic import context
from flask import current_app

from core import search
from core.migrations import table_owner

log = logging.getLogger("alembic.env")
config = context.config
manager = current_app.extensions["guanxi.plugins"]
target_metadata = current_app.extensions["migrate"].db.metadata
only_plugin = context.get_x_argument(as_dictionary=True).get("plugin")


def include_object(obj, name, type_, reflected, compare_to):  # noqa: ANN001, ANN201
    """Compare only installed tables, and only one plugin's when ``-x plugin=NAME`` is given."""
    if search.is_index_object(name, type_):
        return False  # the search index is SQL of its own (core.search), not a model
    if type_ != "table":
        return True
    if name == "alembic_version":
        return False
    owner = table_owner(name, list(manager.manifests))
    if only_plugin:
        return owner == only_plugin
    return reflected or owner == "core" or owner in manager.manifests


def run_migrations_offline() -> None:
    context.configure(
        url=str(current_app.extensions["migrate"].db.engine.url),
        target_metadata=target_metadata,
        literal_binds=True,
        include_object=include_object,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    def process_revision_directives(context, revision, directives):  # noqa: ANN001
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            log.info("No changes in schema detected.")

    connectable = current_app.extensions["migrate"].db.engine
    with connectable.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch operation rebuilds a SQLite table (copy, drop, rename); with foreign keys
            # on, the drop would delete (ON DELETE CASCADE) or unlink (SET NULL) every row that
            # references the table. Off for the run (the pragma is ignored inside a
            # transaction, so before it), checked before the commit, on again after.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                include_object=include_object,
                process_revision_directives=process_revision_directives,
                render_as_batch=True,
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migrations left foreign keys broken: {broken[:10]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
