"""Migrations: the core's and every plugin's histories build exactly the models' schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from core import search
from core.db import db
from core.migrations import alembic_config, table_owner


def test_migrated_schema_matches_the_models(app):
    manager = app.extensions["guanxi.plugins"]
    core_tables = {
        m.local_table.name for m in db.Model.registry.mappers if m.class_.__module__[:5] == "core."
    }

    def include_object(obj, name, type_, reflected, compare_to):
        """Core tables and installed plugins' tables (not those of plugins other tests made)."""
        if search.is_index_object(name, type_):
            return False
        if type_ != "table":
            return True
        return name in core_tables or table_owner(name, list(manager.manifests)) != "core"

    with db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_every_plugin_has_its_own_history_depending_on_the_core(app):
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    branches = {r.revision.split("_")[0] for r in script.walk_revisions()}
    assert {"core", "sales", "surveys", "marketing", "pharma", "insurance", "property"} <= branches
    assert len(heads) == len(branches)  # one head per history
    for revision in script.walk_revisions():
        if revision.revision.endswith("_0001") and not revision.revision.startswith("core"):
            assert "core_0001" in (revision.dependencies or ())


def test_db_upgrade_from_the_command_line_creates_a_database(tmp_path):
    import subprocess
    import sys

    env_db = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "db", "upgrade"],
        env={
            "GUANXI_DATABASE_URL": env_db,
            "GUANXI_INSTANCE_PATH": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    import sqlite3

    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "fresh.db").execute(
            "select name from sqlite_master where type='table'"
        )
    }
    assert {"company", "customer", "service_ticket", "pharma_customer_ext"} <= tables
    assert (tmp_path / "secret_key").exists()
