"""Upgrades (issue 11): a database at the first released schema, with rows in every table, is
brought to head by ``guanxi db upgrade`` with no row lost; downgrading the last revision of every
history and upgrading again loses nothing either.

**The first released schema** is :data:`FIRST_RELEASE`: the base revision of each history --
``core_0001`` and the ``<plugin>_0001`` of every built-in plugin. Guanxi has no release tag yet
(0.1.0 will be the first), so we take the oldest schema every history can start from: it is the
strictest choice, since every later revision of every history then runs over rows. A history
added after the first release (a new plugin) starts empty and is covered by the round trip below.

**The fixture** is built here, not committed: an empty scratch database (a SQLite file, or a
PostgreSQL database created and dropped by the test) is migrated to :data:`FIRST_RELEASE`, and
:func:`fill` puts :data:`ROWS` rows into every table of the reflected schema, parents before
children: ids 1..3, foreign keys pointing at the parent's row of the same rank, a value of the
column's type in every column (Chinese text, JSON, dates, times, decimals, booleans) that differs
per row so unique constraints hold, and the last row with NULL in every nullable column. A row a
check constraint refuses is retried with one nullable column at a time set to NULL (checked in
SQL before inserting). Nothing is hard-coded per table, so a new table or column is filled too.

**The test** upgrades with the real command (``guanxi db upgrade``) and compares a snapshot of
every table (all values of all rows, ordered by primary key): every table and column of the
fixture must still exist (unless listed in :data:`DROPPED`), with the same rows and the same
values; new tables and columns are allowed. A table a revision replaces on purpose is listed in
:data:`MOVED` with where its rows go, and they must be found there. Then every table that is
still empty (those the later revisions created) is filled, so every model of the core and of the
built-in plugins has rows, and the **last revision of every history** (each head, downgraded with
``<branch>@-1``) is downgraded and upgraded again: the tables and columns the downgrade keeps must
keep every row and value, and the upgrade after it must lose nothing and reach the heads again.
The tables a head revision creates are dropped by its downgrade by design and come back empty,
except what a downgrade moves back (``insurance_0002`` returns the agents' licences to the
channel fields they came from).

What it found when written: on SQLite a batch operation that rebuilds a table (``core_0002``'s
``service_ticket``) emptied ``property_service_ticket_ext`` and unlinked ``interaction.ticket_id``
through their ON DELETE actions -- ``core/migrations/env.py`` now turns foreign keys off for a
migration run and checks them before the commit; on PostgreSQL ``marketing_0002`` ran before the
``sales_order`` table it references existed -- it now ``depends_on = "sales_0002"``.
Runs in about 25 s on either database.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import to_tuple

from core.cli import main as cli
from core.db import db
from core.migrations import alembic_config

FIRST_RELEASE = (
    "core_0001",
    "sales_0001",
    "surveys_0001",
    "marketing_0001",
    "pharma_0001",
    "insurance_0001",
    "property_0001",
)
"""The revisions of the first released schema: the base of the core's and each plugin's history."""

MOVED = {
    # insurance_0002: the licence moves from the channel's extension fields to the agent profile
    # (one agent per channel that had a licence number or expiry).
    "insurance_channel_ext": (
        "insurance_agent",
        {
            "id": "channel_id",
            "licence_number": "licence_number",
            "licence_expiry": "licence_expires_on",
        },
    ),
    # marketing_0003: consent moves to the core's table, shared with the surveys plugin.
    "marketing_consent": (
        "consent",
        {
            "customer_id": "customer_id",
            "channel": "channel",
            "purpose": "purpose",
            "granted": "granted",
            "source": "source",
        },
    ),
}
"""Tables a revision drops after copying their rows elsewhere: ``{table: (target, {column:
target column})}``; every row with a value besides its key must be found in the target."""

DROPPED: dict[str, set[str]] = {
    **{table: set() for table in MOVED},
    # surveys_0003: the field surveys__opt_out becomes refusals in ``consent`` (checked by
    # tests/test_consent.py::test_surveys_opt_out_becomes_refusals).
    "surveys_customer_ext": {"opt_out"},
}
"""Tables (``name: set()``) or columns (``name: {column, ...}``) a revision drops on purpose."""

ROWS = 3
"""Rows per table; the last has NULL in every nullable column."""

Snapshot = dict[str, dict[str, list[Any]]]


# -- the scratch database --------------------------------------------------------------------------


@pytest.fixture
def upgrade_app(tmp_path: Any) -> Iterator[Any]:
    """An app on an empty scratch database (SQLite file or a new PostgreSQL database)."""
    from core.app import create_app

    base = os.environ.get("GUANXI_TEST_DATABASE_URL", "")
    admin = name = None
    if base.startswith("postgresql"):
        name = f"guanxi_upgrade_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'upgrade.db'}"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "test-secret",
            "TESTING": True,
        }
    )
    try:
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


# -- filling every table ---------------------------------------------------------------------------


def reflect() -> sa.MetaData:
    """The database's tables as they are now (without Alembic's own)."""
    metadata = sa.MetaData()
    metadata.reflect(db.engine)
    if "alembic_version" in metadata.tables:
        metadata.remove(metadata.tables["alembic_version"])
    return metadata


def value(column: sa.Column, i: int) -> Any:
    """A value of ``column``'s type for row ``i``, different for every row."""
    kind = column.type
    if isinstance(kind, sa.Enum):
        return kind.enums[i % len(kind.enums)]
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.JSON):
        return {
            "名称": f"关系{i}",
            "n": i,
            "list": [1, 2.5, None, True],
            "嵌套": {"日期": f"2026-01-0{i + 1}"},
        }
    if isinstance(kind, sa.DateTime):
        return datetime(2025, 12, 31, 23, 59, 58, 123000) + timedelta(days=i, seconds=i)
    if isinstance(kind, sa.Date):
        return date(2025, 12, 30) + timedelta(days=i)
    if isinstance(kind, sa.Time):
        return time(9, 30 + i, 15)
    if isinstance(kind, sa.Interval):
        return timedelta(hours=i + 1)
    if isinstance(kind, sa.Float):
        return i + 0.5
    if isinstance(kind, sa.Numeric):
        scale = kind.scale or 0
        return Decimal(i + 1) + (Decimal("0.25") if scale >= 2 else Decimal(0))
    if isinstance(kind, sa.Integer):
        return i + 1
    if isinstance(kind, sa.Uuid):
        return uuid.uuid5(uuid.NAMESPACE_URL, f"guanxi:{column.table.name}:{i}")
    if isinstance(kind, sa.LargeBinary):
        return f"{i}关系".encode()
    if isinstance(kind, sa.String):
        text = f"{i}·关系客户·{column.name}"
        return text[: kind.length] if kind.length else text
    raise AssertionError(f"no test value for {column.table.name}.{column.name} ({kind!r})")


def _parent_values(conn: sa.Connection, fk: sa.ForeignKey) -> list[Any]:
    parent = fk.column
    order = list(parent.table.primary_key.columns) or [parent]
    return list(conn.scalars(sa.select(parent).order_by(*order)))


def _row(table: sa.Table, i: int, parents: dict[str, list[Any]], last: bool) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in table.columns:
        nullable = column.nullable and not column.primary_key
        if last and nullable:
            row[column.name] = None
        elif column.name in parents:
            options = parents[column.name]
            if not options:
                raise AssertionError(f"{table.name}.{column.name}: its parent table is empty")
            row[column.name] = options[i % len(options)]
        elif column.primary_key and isinstance(column.type, sa.Integer):
            row[column.name] = i + 1
        else:
            row[column.name] = value(column, i)
    return row


def _passes_checks(conn: sa.Connection, table: sa.Table, checks: list[str], row: dict) -> bool:
    for check in checks:
        names = [c for c in row if re.search(rf"\b{re.escape(c)}\b", check)]
        values = sa.select(*(sa.literal(row[n], table.c[n].type).label(n) for n in names)).subquery(
            "t"
        )
        if conn.scalar(sa.select(sa.literal(1)).select_from(values).where(sa.text(check))) is None:
            return False
    return True


def _checked(conn: sa.Connection, table: sa.Table, checks: list[str], row: dict) -> dict:
    """``row``, or the first variant with one nullable column flipped that passes the checks."""
    if not checks or _passes_checks(conn, table, checks, row):
        return row
    for column in table.columns:
        if column.nullable and not column.primary_key:
            variant = dict(row)
            variant[column.name] = value(column, 0) if row[column.name] is None else None
            if _passes_checks(conn, table, checks, variant):
                return variant
    raise AssertionError(f"no row of {table.name} passes its check constraints {checks}")


def fill(only_empty: bool = False) -> set[str]:
    """Put :data:`ROWS` rows into every table (or every empty one); the names of those filled."""
    metadata = reflect()
    inspector = sa.inspect(db.engine)
    filled = set()
    with db.engine.begin() as conn:
        for table in metadata.sorted_tables:
            if only_empty and conn.scalar(sa.select(sa.func.count()).select_from(table)):
                continue
            checks = [c["sqltext"] for c in inspector.get_check_constraints(table.name)]
            for i in range(ROWS):
                parents = {}
                for fk in table.foreign_keys:
                    options = _parent_values(conn, fk)
                    if fk.column.table is table and not options:
                        options = [None]  # the first row of a tree has no parent
                    parents[fk.parent.name] = options
                row = _row(table, i, parents, last=i == ROWS - 1)
                conn.execute(table.insert(), _checked(conn, table, checks, row))
            filled.add(table.name)
        if conn.dialect.name == "postgresql":
            for table in metadata.sorted_tables:
                if "id" in table.c:
                    conn.execute(
                        sa.text(
                            "SELECT setval(s, (SELECT max(id) FROM "
                            + conn.dialect.identifier_preparer.quote(table.name)
                            + ")) FROM pg_get_serial_sequence(:t, 'id') s WHERE s IS NOT NULL"
                        ),
                        {"t": conn.dialect.identifier_preparer.quote(table.name)},
                    )
    return filled


# -- snapshots and upgrades ------------------------------------------------------------------------


def snapshot() -> Snapshot:
    """Every table's values, column by column, in primary-key order."""
    out: Snapshot = {}
    with db.engine.connect() as conn:
        for table in reflect().sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows = conn.execute(sa.select(table).order_by(*order)).mappings().all()
            out[table.name] = {c.name: [r[c.name] for r in rows] for c in table.columns}
    return out


def compare(before: Snapshot, after: Snapshot) -> tuple[list[str], list[str]]:
    """What of ``before`` is gone from ``after``: (tables and columns dropped, rows or values
    lost or changed in what remains). Tables and columns ``after`` adds are not reported."""
    dropped, changed = [], []
    for name, columns in before.items():
        if name not in after:
            dropped.append(name)
            continue
        kept = [c for c in columns if c in after[name]]
        dropped += [f"{name}.{c}" for c in columns if c not in after[name]]
        if kept and len(after[name][kept[0]]) != len(columns[kept[0]]):
            changed.append(
                f"{name}: {len(columns[kept[0]])} rows, then {len(after[name][kept[0]])}"
            )
            continue
        for column in kept:
            if after[name][column] != columns[column]:
                changed.append(f"{name}.{column}: {columns[column]!r} -> {after[name][column]!r}")
    return dropped, changed


def lost(before: Snapshot, after: Snapshot) -> list[str]:
    """All of ``before`` missing or changed in ``after``, but the drops in :data:`DROPPED`."""
    dropped, changed = compare(before, after)
    allowed = {name for name, cols in DROPPED.items() if not cols}
    allowed |= {f"{name}.{c}" for name, cols in DROPPED.items() for c in cols}
    return [f"{d} dropped" for d in dropped if d not in allowed] + changed


def not_moved(before: Snapshot, after: Snapshot) -> list[str]:
    """The rows of the :data:`MOVED` tables of ``before`` that ``after`` lacks in their target."""
    missing = []
    for table, (target, columns) in MOVED.items():
        if table not in before or table in after:
            continue
        source = list(zip(*(before[table][c] for c in columns), strict=True))
        found = set(zip(*(after[target][c] for c in columns.values()), strict=True))
        missing += [
            f"{table} {row} not in {target}"
            for row in source
            if any(v is not None for v in row[1:]) and row not in found
        ]
    return missing


def guanxi_db_upgrade(app: Any) -> None:
    """Run ``guanxi db upgrade`` (the command itself) on ``app``'s database."""
    result = app.test_cli_runner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "database is up to date" in result.output
    db.session.remove()


def applied(script: ScriptDirectory) -> set[str]:
    """The revisions applied to the database: those in ``alembic_version`` and what they need."""
    with db.engine.connect() as conn:
        current = tuple(conn.scalars(sa.text("SELECT version_num FROM alembic_version")))
    return {r.revision for r in script.revision_map.iterate_revisions(current, "base")}


def depends_on_heads(script: ScriptDirectory) -> set[str]:
    """Revisions that are not heads but depend on one (``depends_on``), and what follows them."""
    heads = set(script.get_heads())
    todo = [
        r.revision
        for r in script.walk_revisions()
        if r.revision not in heads and set(to_tuple(r.dependencies) or ()) & heads
    ]
    found: set[str] = set()
    while todo:
        revision = todo.pop()
        if revision not in heads and revision not in found:
            found.add(revision)
            todo.extend(script.get_revision(revision).nextrev)
    return found


def downgrade_last_revisions(script: ScriptDirectory) -> None:
    """Downgrade every history by its last revision (``<branch>@-1``); a head already undone,
    because it depends on another head (``insurance_0002`` on ``sales_0002``), is skipped."""
    for head in sorted(script.get_heads()):
        if head in applied(script):
            branch = next(iter(script.get_revision(head).branch_labels))
            command.downgrade(alembic_config(), f"{branch}@-1")


# -- the tests -------------------------------------------------------------------------------------


def test_first_release_is_the_base_of_every_history(app):
    script = ScriptDirectory.from_config(alembic_config())
    bases = {r.revision for r in script.walk_revisions() if not r.down_revision}
    assert set(FIRST_RELEASE) <= bases


def test_upgrade_from_the_first_release_then_downgrade_the_last_revisions(upgrade_app):
    script = ScriptDirectory.from_config(alembic_config())
    every = {r.revision for r in script.walk_revisions()}
    heads = set(script.get_heads())
    for revision in FIRST_RELEASE:
        command.upgrade(alembic_config(), revision)
    assert applied(script) == set(FIRST_RELEASE)
    fixture = fill()
    first = snapshot()
    assert set(first) == fixture
    assert all(len(rows) == ROWS for columns in first.values() for rows in columns.values())

    guanxi_db_upgrade(upgrade_app)
    assert applied(script) == every
    upgraded = snapshot()
    problems = lost(first, upgraded) + not_moved(first, upgraded)
    assert problems == [], "\n".join(problems)

    later = fill(only_empty=True)  # the tables the later revisions created
    assert later, "no revision after the first release created a table?"
    full = snapshot()
    assert [t for t, columns in full.items() if not next(iter(columns.values()))] == []
    models = {
        m.local_table.name
        for m in db.Model.registry.mappers
        if m.class_.__module__.startswith(("core.", "plugins."))
    }
    assert models - set(full) == set()  # every model of the core and the built-in plugins

    downgrade_last_revisions(script)
    # a revision that depends on a head goes with it (marketing_0002 needs sales_0002)
    assert applied(script) == every - heads - depends_on_heads(script)
    down = snapshot()
    dropped, changed = compare(full, down)
    assert changed == [], "\n".join(changed)
    assert {d for d in dropped if "." not in d} <= set(full) - set(first)  # the heads made them

    guanxi_db_upgrade(upgrade_app)
    assert applied(script) == every
    final = snapshot()
    problems = lost(down, final) + not_moved(down, final)
    assert problems == [], "\n".join(problems)
    assert compare(full, final)[0] == []  # every table and column is back


def test_consent_moves_into_the_core_table_and_back(upgrade_app):
    """marketing_0003 copies marketing_consent into ``consent``; surveys_0003 turns
    ``surveys__opt_out`` into a refusal of purpose ``survey`` on every contact channel; their
    downgrades give both back."""
    cfg = alembic_config()
    for revision in FIRST_RELEASE:
        command.upgrade(cfg, revision)
    fill()
    command.upgrade(cfg, "heads")
    command.downgrade(cfg, "marketing@-1")
    command.downgrade(cfg, "surveys@-1")
    fill(only_empty=True)  # marketing_consent and the other later tables
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM consent"))
        conn.execute(sa.text("UPDATE marketing_consent SET channel = 'sms', purpose = 'care'"))
        ids = sorted(conn.scalars(sa.text("SELECT id FROM surveys_customer_ext")))
        conn.execute(
            sa.text("UPDATE surveys_customer_ext SET opt_out = (id = :first)"), {"first": ids[0]}
        )
    before = snapshot()
    guanxi_db_upgrade(upgrade_app)
    after = snapshot()
    assert not_moved(before, after) == []
    with db.engine.connect() as conn:
        refused = {
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT customer_id, channel, source FROM consent"
                    " WHERE purpose = 'survey' AND granted = :no"
                ),
                {"no": False},
            )
        }
    channels = ("phone", "sms", "email", "wechat")
    assert refused == {(ids[0], channel, "surveys__opt_out") for channel in channels}

    command.downgrade(cfg, "surveys@-1")
    command.downgrade(cfg, "marketing@-1")
    back = snapshot()
    assert back["marketing_consent"]["customer_id"] == before["marketing_consent"]["customer_id"]
    assert back["marketing_consent"]["granted"] == before["marketing_consent"]["granted"]
    ext = back["surveys_customer_ext"]
    opted = dict(zip(ext["id"], ext["opt_out"], strict=True))
    assert [i for i, value in opted.items() if value] == [ids[0]]
    assert back["consent"]["id"] == []


def test_licences_move_to_the_agent_profile_and_back(upgrade_app):
    """insurance_0002 turns the channel fields licence number and expiry into agent profiles;
    its downgrade writes them back to the channel fields instead of losing them."""
    cfg = alembic_config()
    for revision in FIRST_RELEASE:
        command.upgrade(cfg, revision)
    fill()
    before = snapshot()["insurance_channel_ext"]
    had = {
        (i, n, e)
        for i, n, e in zip(
            before["id"], before["licence_number"], before["licence_expiry"], strict=True
        )
        if n is not None or e is not None
    }
    assert had
    guanxi_db_upgrade(upgrade_app)
    command.downgrade(cfg, "insurance@-1")
    back = snapshot()["insurance_channel_ext"]
    assert set(zip(back["id"], back["licence_number"], back["licence_expiry"], strict=True)) == had
