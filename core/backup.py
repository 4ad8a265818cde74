"""Backup and restore of the live database: ``guanxi backup [FILE]`` and ``guanxi restore FILE``.

A backup is taken while Guanxi keeps serving; a restore replaces the whole database with the
backup's contents, or changes nothing.

The file
    A ZIP archive (``guanxi-backup-YYYYMMDD-HHMMSS.zip`` by default, written with mode 0600: it
    holds every company's personal data, password hashes and token hashes) of two members:

    ``manifest.json``
        ``format`` (``"guanxi-backup"``) and ``format_version``; ``kind`` (``sqlite`` or
        ``postgresql``, the database it was taken from); ``alembic_heads``, the revisions in the
        database's ``alembic_version`` at that moment (core's and each plugin's); ``tables``,
        every table with its row count; ``created_at`` (UTC), ``guanxi_version``, ``tool`` (what
        made the copy) and ``source`` (the database URL, password hidden).
    ``database.sqlite3`` (deflated) or ``database.pgdump`` (stored; already compressed)
        The database in its own native format: a SQLite database file made by SQLite's online
        backup API (:meth:`sqlite3.Connection.backup`), or a ``pg_dump --format=custom`` archive.

Consistency
    SQLite: the copy is one step of the online backup API, which reads the whole database in
    one read transaction; under WAL (how Guanxi opens SQLite) writers are not blocked and the
    copy is the database as of one commit. PostgreSQL: a ``REPEATABLE READ`` transaction exports
    its snapshot (``pg_export_snapshot()``), reads the revisions and row counts, and ``pg_dump
    --snapshot`` dumps exactly that snapshot; the web workers keep reading and writing
    (``pg_dump`` only takes ``ACCESS SHARE`` locks, and gives up after
    :data:`LOCK_WAIT_TIMEOUT_MS` when a migration holds a table). So the manifest's counts are
    those of the data in the file.

Restore
    :func:`check` refuses, before anything is changed, a file that is not a Guanxi backup (or is
    damaged, or of a later ``format_version``), a backup of the other kind of database, a backup
    whose revisions this code does not know (a newer Guanxi, or a plugin not installed here),
    and (in the command) a target database that has rows unless ``--force``. :func:`restore`
    then replaces the database:

    * SQLite: the extracted file is checked (``PRAGMA quick_check``, revisions and row counts
      against the manifest), then copied over the live database by the same backup API, one
      write transaction: the web workers see the old database or the new one.
    * PostgreSQL: ``pg_restore`` turns the archive into SQL, and ``psql --single-transaction``
      runs, in one transaction, the drop of every table, view, sequence and function of the
      database's schemas, that SQL, and a check that every table has the manifest's row count;
      any error rolls all of it back. Objects are owned by the restoring user (``--no-owner``) and
      privileges are not restored (``--no-privileges``): the roles of the source server need
      not exist on the target. The database itself must exist (``createdb``). Restoring waits at
      most :data:`LOCK_WAIT_TIMEOUT_MS` for each table lock, so stop the web workers first (a
      restore under traffic also throws away what users write meanwhile).

    A backup of an older schema is restored as it is, and the command tells the user to run
    ``guanxi db upgrade`` (``guanxi serve`` also upgrades when it starts): the restore puts back
    exactly what the file holds, and the upgrade stays an explicit step the user sees.

Not portable
    A backup restores into the same kind of database only: SQLite into SQLite, PostgreSQL into
    PostgreSQL (of a server version the client tools can write to). The native formats are what
    SQLite and PostgreSQL guarantee to copy exactly (types, sequences, constraints, indexes); a
    database-neutral export that moves the SQLite demo onto PostgreSQL is another tool.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

FORMAT = "guanxi-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: The member holding the database, per kind.
MEMBERS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
KIND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
VERSION_TABLE = "alembic_version"
#: How long ``pg_dump`` and a PostgreSQL restore wait for a table lock before giving up.
LOCK_WAIT_TIMEOUT_MS = 60_000
#: How long SQLite waits for a lock held by another connection.
SQLITE_TIMEOUT_S = 60.0


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why, for the user."""


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says about a backup."""

    kind: str
    alembic_heads: list[str]
    tables: dict[str, int]
    created_at: str
    tool: str
    source: str
    guanxi_version: str
    format_version: int = FORMAT_VERSION

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def to_json(self) -> str:
        data = {"format": FORMAT, "format_version": self.format_version, "kind": self.kind}
        data.update(
            alembic_heads=self.alembic_heads,
            created_at=self.created_at,
            guanxi_version=self.guanxi_version,
            tool=self.tool,
            source=self.source,
            tables=self.tables,
        )
        return json.dumps(data, ensure_ascii=False, indent=2)


@dataclass(frozen=True)
class Written:
    """A backup just written."""

    path: Path
    size: int
    manifest: Manifest
    seconds: float


@dataclass(frozen=True)
class Plan:
    """A restore that :func:`check` found possible."""

    path: Path
    manifest: Manifest
    #: The target database (URL, password hidden).
    target: str
    #: Tables of the target that have rows, with their counts (``alembic_version`` aside).
    target_tables: dict[str, int]
    #: ``"current"``: the backup is at this code's revisions; ``"older"``: it needs an upgrade.
    schema: str
    #: The revisions of this code the backup lacks (``guanxi db upgrade`` applies them).
    missing: list[str] = field(default_factory=list)

    @property
    def target_rows(self) -> int:
        return sum(self.target_tables.values())


@dataclass(frozen=True)
class Restored:
    plan: Plan
    seconds: float


# -- helpers ------------------------------------------------------------------------------------


def kind_of(engine: Engine) -> str:
    """``sqlite`` or ``postgresql``; any other database is refused."""
    name = engine.dialect.name
    if name not in MEMBERS:
        raise BackupError(f"backup and restore support SQLite and PostgreSQL, not {name}")
    return name


def describe(engine: Engine) -> str:
    """The database URL without its password."""
    return engine.url.render_as_string(hide_password=True)


def human_size(size: int) -> str:
    """``812 bytes``, ``855.1 KB``, ``1.2 GB``."""
    if size < 1024:
        return f"{size} bytes"
    value, unit = size / 1024, "KB"
    for bigger in ("MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def default_path(now: datetime | None = None) -> Path:
    """``./guanxi-backup-YYYYMMDD-HHMMSS.zip`` (UTC)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return Path.cwd() / f"guanxi-backup-{moment:%Y%m%d-%H%M%S}.zip"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError(f"cannot back up or restore the SQLite database {database or ':memory:'}")
    return Path(database).resolve()


def _sqlite_tables(conn: sqlite3.Connection) -> dict[str, int]:
    names = [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' "
            "ESCAPE '\\' ORDER BY name"
        )
    ]
    return {
        name: conn.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0] for name in names
    }


def _pg_table_names(rows: Callable[[str], list[Any]]) -> list[str]:
    """Every ordinary table outside the system schemas and extensions; ``schema.name`` outside
    ``public``."""
    found = rows(
        "SELECT n.nspname, c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname <> 'information_schema'"
        " AND left(n.nspname, 3) <> 'pg_'"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        " AND d.objid = c.oid AND d.deptype = 'e')"
        " ORDER BY 1, 2"
    )
    return [name if schema == "public" else f"{schema}.{name}" for schema, name in found]


def _pg_qualified(key: str) -> str:
    schema, _, name = key.partition(".") if "." in key else ("public", "", key)
    return f"{_quote(schema)}.{_quote(name)}"


def _pg_tables(rows: Callable[[str], list[Any]]) -> dict[str, int]:
    return {
        key: rows(f"SELECT count(*) FROM {_pg_qualified(key)}")[0][0]
        for key in _pg_table_names(rows)
    }


@contextmanager
def _reaching(engine: Engine) -> Iterator[None]:
    """A database that cannot be reached is a :class:`BackupError`, not a traceback."""
    try:
        yield
    except OperationalError as exc:
        raise BackupError(f"cannot use the database {describe(engine)}: {exc.orig}") from exc


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(
            f"{name} was not found: install PostgreSQL's client tools (Debian: postgresql-client) "
            "of the server's major version or later"
        )
    return found


def _libpq(engine: Engine) -> tuple[str, dict[str, str]]:
    """A libpq connection URI for the command-line tools (password in the environment, never on
    the command line, where other users of the machine could read it)."""
    url = engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _run(args: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-2000:]
        raise BackupError(f"{what} failed (exit {done.returncode}): {detail}")
    return done.stdout


def _heads(rows: Callable[[str], list[Any]], tables: Iterable[str]) -> list[str]:
    if VERSION_TABLE not in tables:
        raise BackupError("the database has no schema yet (no alembic_version): nothing to back up")
    return sorted(r[0] for r in rows(f"SELECT version_num FROM {VERSION_TABLE}"))


# -- backup -------------------------------------------------------------------------------------


def backup(engine: Engine, path: Path) -> Written:
    """Write a backup of ``engine``'s database to ``path`` (replaced atomically if it exists)."""
    from core import __version__

    started = time.monotonic()
    kind = kind_of(engine)
    path = Path(path).resolve()
    if not path.parent.is_dir():
        raise BackupError(f"no folder {path.parent} to write the backup into")
    if path.is_dir():
        raise BackupError(f"{path} is a folder; give a file name")
    if kind == "sqlite":
        live = _sqlite_path(engine)
        if path in {
            live,
            *(live.with_name(live.name + end) for end in ("-wal", "-shm", "-journal")),
        }:
            raise BackupError(f"{path} is the database's own file; choose another name")
    with tempfile.TemporaryDirectory(prefix="guanxi-backup-") as work:
        copy = Path(work) / MEMBERS[kind]
        if kind == "sqlite":
            heads, tables, tool = _sqlite_backup(engine, copy)
        else:
            with _reaching(engine):
                heads, tables, tool = _pg_backup(engine, copy)
        manifest = Manifest(
            kind=kind,
            alembic_heads=heads,
            tables=tables,
            created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            tool=tool,
            source=describe(engine),
            guanxi_version=__version__,
        )
        _write_zip(path, manifest, copy, compress=kind == "sqlite")
    return Written(path, path.stat().st_size, manifest, time.monotonic() - started)


def _sqlite_backup(engine: Engine, copy: Path) -> tuple[list[str], dict[str, int], str]:
    source_path = _sqlite_path(engine)
    if not source_path.is_file():
        raise BackupError(f"no SQLite database at {source_path}")
    source = sqlite3.connect(source_path, timeout=SQLITE_TIMEOUT_S)
    target = sqlite3.connect(copy)
    try:
        # pages=-1: one step, so one read transaction: the copy is the database as of one commit
        # (copying in several steps would restart whenever another connection writes).
        source.backup(target, pages=-1)
        tables = _sqlite_tables(target)
        heads = _heads(lambda sql: target.execute(sql).fetchall(), tables)
    finally:
        source.close()
        target.close()
    return heads, tables, f"sqlite3 online backup API (SQLite {sqlite3.sqlite_version})"


def _pg_backup(engine: Engine, dump: Path) -> tuple[list[str], dict[str, int], str]:
    pg_dump = _tool("pg_dump")
    uri, env = _libpq(engine)
    version = _run([pg_dump, "--version"], env, "pg_dump --version").strip()
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:

        def rows(sql: str) -> list[Any]:
            return list(conn.exec_driver_sql(sql).all())

        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        tables = _pg_tables(rows)
        heads = _heads(rows, tables)
        # The exported snapshot lives as long as this transaction: pg_dump runs inside it.
        _run(
            [
                pg_dump,
                "--format=custom",
                f"--snapshot={snapshot}",
                f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT_MS}",
                f"--file={dump}",
                f"--dbname={uri}",
            ],
            env,
            "pg_dump",
        )
        conn.rollback()
    return heads, tables, version


def _write_zip(path: Path, manifest: Manifest, copy: Path, compress: bool) -> None:
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)  # mkstemp made it 0600; ZipFile reopens it by name
    try:
        method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(partial, "w", allowZip64=True) as archive:
            archive.comment = FORMAT.encode()
            archive.writestr(MANIFEST, manifest.to_json(), compress_type=zipfile.ZIP_DEFLATED)
            archive.write(copy, MEMBERS[manifest.kind], compress_type=method)
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


# -- restore ------------------------------------------------------------------------------------


def _not_a_backup(path: Path, why: str) -> BackupError:
    return BackupError(f"{path} is not a Guanxi backup ({why}); nothing was changed")


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup at ``path``; :class:`BackupError` when it is not one."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if MANIFEST not in names:
                raise _not_a_backup(path, f"no {MANIFEST}")
            data = json.loads(archive.read(MANIFEST).decode("utf-8"))
    except (zipfile.BadZipFile, OSError) as exc:
        raise _not_a_backup(path, f"not a readable ZIP file: {exc}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise _not_a_backup(path, f"{MANIFEST} is not JSON") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _not_a_backup(path, f"its {MANIFEST} is not of format {FORMAT!r}")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupError(
            f"{path} is a backup of format version {version}, newer than this Guanxi reads "
            f"({FORMAT_VERSION}); upgrade Guanxi to restore it. Nothing was changed"
        )
    kind, heads, tables = data.get("kind"), data.get("alembic_heads"), data.get("tables")
    if kind not in MEMBERS or MEMBERS[kind] not in names:
        raise _not_a_backup(path, "no database of a known kind in it")
    if not (
        isinstance(heads, list)
        and heads
        and all(isinstance(h, str) for h in heads)
        and isinstance(tables, dict)
        and all(isinstance(k, str) and isinstance(v, int) for k, v in tables.items())
    ):
        raise _not_a_backup(path, f"its {MANIFEST} lacks the revisions or the tables")
    return Manifest(
        kind=kind,
        alembic_heads=sorted(heads),
        tables=tables,
        created_at=str(data.get("created_at", "")),
        tool=str(data.get("tool", "")),
        source=str(data.get("source", "")),
        guanxi_version=str(data.get("guanxi_version", "")),
        format_version=version,
    )


def _script() -> Any:
    """Alembic's view of every migration this code has (the core's and the loaded plugins')."""
    from alembic.script import ScriptDirectory

    from core.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config())


def _known(script: Any, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic's CommandError / ResolutionError: not in any history here
        return False


def _applied(script: Any, heads: Iterable[str]) -> set[str]:
    """The revisions a database at ``heads`` has: the heads, their ancestors and dependencies."""
    seen: set[str] = set()
    todo = list(heads)
    while todo:
        for rev in script.get_revisions(todo.pop()):
            if rev is not None and rev.revision not in seen:
                seen.add(rev.revision)
                for more in (rev.down_revision, rev.dependencies):
                    todo.extend([more] if isinstance(more, str) else list(more or ()))
    return seen


def target_tables(engine: Engine) -> dict[str, int]:
    """The tables of ``engine``'s database that have rows (``alembic_version`` aside)."""
    if kind_of(engine) == "sqlite":
        path = _sqlite_path(engine)
        if not path.is_file():
            return {}
        conn = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
        try:
            tables = _sqlite_tables(conn)
        finally:
            conn.close()
    else:
        with engine.connect() as conn:
            tables = _pg_tables(lambda sql: list(conn.exec_driver_sql(sql).all()))
    return {name: n for name, n in tables.items() if n and name != VERSION_TABLE}


def check(engine: Engine, path: Path, script: Any = None) -> Plan:
    """Whether the backup at ``path`` can be restored into ``engine``'s database; raises
    :class:`BackupError` with the reason when it cannot. Changes nothing."""
    path = Path(path).resolve()
    manifest = read_manifest(path)
    kind = kind_of(engine)
    if manifest.kind != kind:
        raise BackupError(
            f"{path} is a backup of a {KIND_NAMES[manifest.kind]} database and this database is "
            f"{KIND_NAMES[kind]}: a backup restores into the same kind of database only "
            "(see docs/operations.md). Nothing was changed"
        )
    script = script if script is not None else _script()
    unknown = [rev for rev in manifest.alembic_heads if not _known(script, rev)]
    code_heads = sorted(script.get_heads())
    if unknown:
        raise BackupError(
            f"{path} is of a newer schema than this code: its revision(s) {', '.join(unknown)} "
            f"are unknown here (this code is at {', '.join(code_heads)}). Upgrade Guanxi (or "
            "install the plugin those revisions belong to) and restore again. Nothing was changed"
        )
    # A database records only its heads; a revision another branch depends on is applied but
    # not recorded (sales_0002 under property_0002), so compare everything the heads imply.
    missing = sorted(_applied(script, code_heads) - _applied(script, manifest.alembic_heads))
    schema = "older" if missing else "current"
    with _reaching(engine):
        target = target_tables(engine)
    return Plan(path, manifest, describe(engine), target, schema, missing)


def restore(engine: Engine, plan: Plan) -> Restored:
    """Replace ``engine``'s database with the backup ``plan`` was made for (see :func:`check`).

    All or nothing: on any error the database is as it was.
    """
    started = time.monotonic()
    kind = plan.manifest.kind
    with tempfile.TemporaryDirectory(prefix="guanxi-restore-") as work:
        copy = Path(work) / MEMBERS[kind]
        try:
            with (
                zipfile.ZipFile(plan.path) as archive,
                archive.open(MEMBERS[kind]) as member,
                open(copy, "wb") as out,
            ):
                shutil.copyfileobj(member, out, 1 << 20)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # a bad CRC shows here
            raise BackupError(f"{plan.path} is damaged ({exc}); nothing was changed") from exc
        engine.dispose()  # none of this process's pooled connections hold the old database
        if kind == "sqlite":
            _sqlite_restore(engine, plan, copy)
        else:
            _pg_restore(engine, plan, copy, Path(work))
        engine.dispose()
    return Restored(plan, time.monotonic() - started)


def _sqlite_restore(engine: Engine, plan: Plan, copy: Path) -> None:
    source = sqlite3.connect(copy)
    try:
        try:
            ok = source.execute("PRAGMA quick_check").fetchone()[0]
            tables = _sqlite_tables(source)
            heads = _heads(lambda sql: source.execute(sql).fetchall(), tables)
        except sqlite3.DatabaseError as exc:
            ok = str(exc)
        if ok != "ok":
            raise BackupError(f"{plan.path} holds a damaged database ({ok}); nothing was changed")
        if tables != plan.manifest.tables or heads != plan.manifest.alembic_heads:
            raise BackupError(
                f"{plan.path} does not match its manifest (tables, row counts or revisions); "
                "nothing was changed"
            )
        target = None
        try:
            target = sqlite3.connect(_sqlite_path(engine), timeout=SQLITE_TIMEOUT_S)
            # One write transaction on the target: other connections see the old or the new.
            source.backup(target, pages=-1)
            restored = _sqlite_tables(target)
        except sqlite3.Error as exc:
            raise BackupError(f"the restore failed ({exc}); the database is unchanged") from exc
        finally:
            if target is not None:
                target.close()
    finally:
        source.close()
    if restored != plan.manifest.tables:  # pragma: no cover - the backup API copies every page
        raise BackupError("the restored database does not have the backup's row counts")


#: Drops every table, view, sequence and function outside the system schemas (and extensions),
#: so that what a newer schema added does not survive the restore of an older backup, and the
#: backup's own functions (core.search's guanxi_name_grams) can be created again.
_PG_DROP_ALL = """
DO $guanxi$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT c.relkind, format('%I.%I', n.nspname, c.relname) AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
  LOOP
    EXECUTE 'DROP ' || CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
      WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END
      || ' IF EXISTS ' || r.name || ' CASCADE';
  END LOOP;
  FOR r IN
    SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
      AS name
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE p.prokind = 'f'
      AND n.nspname <> 'information_schema' AND left(n.nspname, 3) <> 'pg_'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')
  LOOP
    EXECUTE 'DROP FUNCTION IF EXISTS ' || r.name || ' CASCADE';
  END LOOP;
END
$guanxi$;
"""


def _pg_count_check(tables: dict[str, int]) -> str:
    """A DO block that fails (rolling the restore back) unless every table has its count."""
    lines = ["DO $guanxi$", "DECLARE n bigint;", "BEGIN"]
    for key, expected in sorted(tables.items()):
        label = key.replace("'", "''")
        lines += [
            f"  SELECT count(*) INTO n FROM {_pg_qualified(key)};",
            f"  IF n <> {int(expected)} THEN RAISE EXCEPTION 'guanxi restore: table % has % rows,"
            f" the backup %', '{label}', n, {int(expected)}; END IF;",
        ]
    lines += ["END", "$guanxi$;"]
    return "\n".join(lines)


def _pg_restore(engine: Engine, plan: Plan, dump: Path, work: Path) -> None:
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    uri, env = _libpq(engine)
    script = work / "restore.sql"
    # The archive as SQL first: a damaged archive fails here, before the database is touched.
    _run(
        [pg_restore, "--no-owner", "--no-privileges", f"--file={script}", str(dump)],
        env,
        "pg_restore",
    )
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout={LOCK_WAIT_TIMEOUT_MS}".strip()
    _run(
        [
            psql,
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--single-transaction",
            f"--command={_PG_DROP_ALL}",
            f"--file={script}",
            f"--command={_pg_count_check(plan.manifest.tables)}",
            f"--dbname={uri}",
        ],
        env,
        "the restore (psql, rolled back)",
    )
