"""``guanxi backup`` and ``guanxi restore`` (core/backup.py, docs/operations.md).

On the test database of the session (SQLite, or the PostgreSQL database core/testing.py made):
every row comes back (count and checksum per table) into a fresh database and into the same one;
a backup taken while another connection writes is the database as of one commit; a file that is
not a backup, a backup of a newer schema or of the other kind of database, and a non-empty
target without ``--force`` are refused with nothing changed; an older backup is restored and
``guanxi db upgrade`` brings it up to date.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
from faker import Faker
from sqlalchemy import create_engine, inspect, make_url, text

from core import backup
from core.cli import main as cli


def snapshot(url_or_engine: Any) -> dict[str, tuple[int, str]]:
    """Row count and a checksum of the rows (in any order) of every table."""
    engine = create_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    out: dict[str, tuple[int, str]] = {}
    try:
        with engine.connect() as conn:
            for name in sorted(inspect(conn).get_table_names()):
                rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
                digest = hashlib.sha256()
                for line in sorted(repr(tuple(row)) for row in rows):
                    digest.update(line.encode() + b"\n")
                out[name] = (len(rows), digest.hexdigest())
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
    return out


@pytest.fixture
def fresh_database(app: Any, tmp_path: Path) -> Any:
    """``fresh_database()``: the URL of a new, empty database of the test database's kind
    (a SQLite file that does not exist yet, or a PostgreSQL database dropped afterwards)."""
    base = app.config["SQLALCHEMY_DATABASE_URI"]
    made: list[str] = []
    admin = (
        create_engine(base, isolation_level="AUTOCOMMIT") if base.startswith("postgres") else None
    )

    def factory() -> str:
        name = f"guanxi_restore_{uuid.uuid4().hex[:10]}"
        if admin is None:
            return f"sqlite:///{tmp_path / name}.db"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return make_url(base).set(database=name).render_as_string(hide_password=False)

    yield factory
    if admin is not None:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def filled(app: Any, db: Any) -> dict[str, tuple[int, str]]:
    """Two companies with every plugin and the demo's core rows (fewer), marketing and surveys
    demo rows; returns the snapshot of the database."""
    from core import demo
    from core.models import Company
    from core.plugins import current
    from core.tenancy import company_scope

    manager = current()
    for code in ("bk-a", "bk-b"):
        fake = Faker("zh_CN")
        fake.seed_instance(len(code))
        company = Company(code=code, name=f"备份测试{code}")
        db.session.add(company)
        db.session.flush()
        for plugin in manager.manifests:
            manager.enable(company, plugin)
        boss = demo._user(f"boss@{code}.test", "老板")
        with company_scope(company.id):
            demo._populate(company, code, boss, fake, random.Random(code), 8, 6)
            for name in ("marketing", "surveys"):
                manager.hooks(frozenset({name})).guanxi_demo_data(company=company, fake=fake)
            db.session.commit()
    db.session.remove()
    return snapshot(db.engine)


def invoke(app: Any, *args: str, **kwargs: Any) -> Any:
    """Run ``guanxi ARGS`` against ``app``'s database."""
    from core.db import db

    with app.app_context():
        result = app.test_cli_runner().invoke(cli, list(args), **kwargs)
        db.session.remove()
    return result


def rewrite(source: Path, target: Path, manifest: Any = None, rename: dict | None = None) -> Path:
    """A copy of the backup ``source`` with ``manifest(data)`` applied and members renamed."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == backup.MANIFEST and manifest:
                parsed = json.loads(data)
                manifest(parsed)
                data = json.dumps(parsed).encode()
            new.writestr((rename or {}).get(item.filename, item.filename), data)
    return target


def test_round_trip_brings_every_row_back(app, db, filled, make_app, fresh_database, tmp_path):
    file = tmp_path / "nightly.zip"
    result = invoke(app, "backup", str(file))
    assert result.exit_code == 0, result.output
    assert str(file) in result.output and "rows" in result.output
    manifest = backup.read_manifest(file)
    assert manifest.kind == db.engine.dialect.name
    assert manifest.tables == {name: count for name, (count, _) in filled.items()}
    assert f"{len(manifest.tables)} tables, {manifest.rows:,} rows" in result.output
    with db.engine.connect() as conn:
        heads = sorted(r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")))
    assert manifest.alembic_heads == heads
    assert file.stat().st_mode & 0o077 == 0  # personal data: readable by its owner only
    assert sum(1 for count, _ in filled.values() if count) >= 40 and filled["customer"][0] >= 16

    url = fresh_database()
    target = make_app(SQLALCHEMY_DATABASE_URI=url)
    result = invoke(target, "restore", str(file))
    assert result.exit_code == 0, result.output
    assert f"restored {len(filled)} tables" in result.output and "db upgrade" not in result.output
    assert snapshot(url) == filled

    # Into the same database after it changed: --force (and --yes, no terminal here).
    db.session.execute(text("DELETE FROM interaction"))
    db.session.execute(text("UPDATE customer SET name = 'changed'"))
    db.session.commit()
    assert snapshot(db.engine) != filled
    result = invoke(app, "restore", str(file), "--force", "--yes")
    assert result.exit_code == 0, result.output
    assert snapshot(db.engine) == filled
    from core.models import Company

    db.session.add(Company(code="after", name="之后"))  # ids continue after the restored ones
    db.session.commit()


def test_a_backup_taken_during_writes_is_one_commit_of_the_database(
    app, db, company, make_app, fresh_database, tmp_path
):
    from core.models import CompanySetting

    owner_id = company().id
    table = CompanySetting.__table__
    writer_engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    committed, errors, stop = [0], [], threading.Event()

    def write() -> None:  # pairs of rows, each pair one transaction
        try:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                i = committed[0]
                with writer_engine.begin() as conn:
                    conn.execute(
                        table.insert(),
                        [
                            {"company_id": owner_id, "key": f"w{i}a", "value": i},
                            {"company_id": owner_id, "key": f"w{i}b", "value": i},
                        ],
                    )
                committed[0] = i + 1
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while committed[0] < 20 and thread.is_alive():
            time.sleep(0.01)
        taken = []
        for n in range(3):
            before = committed[0]
            result = invoke(app, "backup", str(tmp_path / f"during{n}.zip"))
            after = committed[0]
            assert result.exit_code == 0, result.output
            rows = backup.read_manifest(tmp_path / f"during{n}.zip").tables["company_setting"]
            taken.append((before, rows, after))
    finally:
        stop.set()
        thread.join()
        writer_engine.dispose()
    assert not errors, errors
    for before, rows, after in taken:
        assert rows % 2 == 0 and 2 * before <= rows <= 2 * (after + 1), taken
    assert any(after > before for before, _, after in taken), "no write overlapped a backup"

    url = fresh_database()
    result = invoke(make_app(SQLALCHEMY_DATABASE_URI=url), "restore", str(tmp_path / "during2.zip"))
    assert result.exit_code == 0, result.output
    engine = create_engine(url)
    with engine.connect() as conn:
        keys = set(conn.execute(text("SELECT key FROM company_setting")).scalars())
    engine.dispose()
    pairs = taken[-1][1] // 2
    assert keys == {f"w{i}{half}" for i in range(pairs) for half in "ab"}


def test_restore_refuses_and_changes_nothing(app, db, company, tmp_path):
    company(code="keep", plugins=("sales",))
    file = tmp_path / "good.zip"
    assert invoke(app, "backup", str(file)).exit_code == 0
    before = snapshot(db.engine)

    def refused(path: Path, *options: str, says: str, **kwargs: Any) -> None:
        result = invoke(app, "restore", str(path), *options, **kwargs)
        assert result.exit_code != 0, result.output
        assert says in result.output, result.output
        assert snapshot(db.engine) == before

    text_file = tmp_path / "notes.zip"
    text_file.write_text("not a zip", encoding="utf-8")
    refused(text_file, "--force", "--yes", says="is not a Guanxi backup")
    other_zip = tmp_path / "photos.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("photo.jpg", b"\xff\xd8")
    refused(other_zip, "--force", "--yes", says="is not a Guanxi backup")

    def other_format(data: dict) -> None:
        data["format"] = "something-else"

    refused(rewrite(file, tmp_path / "f.zip", other_format), "--force", "--yes", says="not a")

    def newer(data: dict) -> None:
        data["alembic_heads"] = [*data["alembic_heads"], "core_9999"]

    refused(
        rewrite(file, tmp_path / "newer.zip", newer),
        "--force",
        "--yes",
        says="newer schema than this code: its revision(s) core_9999",
    )

    kind = db.engine.dialect.name
    other = "postgresql" if kind == "sqlite" else "sqlite"

    def other_kind(data: dict) -> None:
        data["kind"] = other

    renamed = {backup.MEMBERS[kind]: backup.MEMBERS[other]}
    refused(
        rewrite(file, tmp_path / "kind.zip", other_kind, renamed),
        "--force",
        "--yes",
        says="same kind of database only",
    )

    # The database has rows: refused without --force; --force asks, and "no" changes nothing.
    refused(file, says="is not empty")
    refused(file, "--force", says="Aborted", input="n\n")

    # A damaged file: the ZIP's checksum catches it before the database is touched.
    raw = bytearray(file.read_bytes())
    with zipfile.ZipFile(file) as archive:
        info = archive.getinfo(backup.MEMBERS[kind])
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[middle : middle + 16] = bytes(16)
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(raw))
    refused(damaged, "--force", "--yes", says="damaged")

    # And what it refused, it does after "yes".
    result = invoke(app, "restore", str(file), "--force", input="y\n")
    assert result.exit_code == 0, result.output
    assert snapshot(db.engine) == before


def test_an_older_backup_is_restored_then_upgraded(app, make_app, fresh_database, tmp_path):
    from core.db import db
    from core.migrations import upgrade
    from core.models import Company

    old_url, new_url = fresh_database(), fresh_database()
    old = make_app(SQLALCHEMY_DATABASE_URI=old_url)
    with old.app_context():
        upgrade("core_0004")
        db.session.add(Company(code="old", name="老公司"))
        db.session.commit()
    file = tmp_path / "old.zip"
    result = invoke(old, "backup", str(file))
    assert result.exit_code == 0, result.output
    assert backup.read_manifest(file).alembic_heads == ["core_0004"]

    new = make_app(SQLALCHEMY_DATABASE_URI=new_url)
    result = invoke(new, "restore", str(file))
    assert result.exit_code == 0, result.output
    assert "older than this code" in result.output and "core_0005" in result.output
    assert "run `guanxi db upgrade`" in result.output
    result = invoke(new, "db", "upgrade")
    assert result.exit_code == 0, result.output
    with new.app_context():
        assert db.session.execute(text("SELECT name FROM company")).scalars().all() == ["老公司"]
        file2 = tmp_path / "upgraded.zip"
        assert invoke(new, "backup", str(file2)).exit_code == 0
        assert backup.check(db.engine, file2).schema == "current"


def test_backup_names_the_file_by_default_and_reports_what_it_cannot_do(
    app, db, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = invoke(app, "backup")
    assert result.exit_code == 0, result.output
    (written,) = tmp_path.glob("guanxi-backup-*.zip")
    assert str(written) in result.output and backup.read_manifest(written).rows >= 1
    result = invoke(app, "backup", str(tmp_path / "no" / "such" / "folder.zip"))
    assert result.exit_code != 0 and "no folder" in result.output
    assert "Traceback" not in result.output
    if db.engine.dialect.name == "sqlite":
        result = invoke(app, "backup", db.engine.url.database)
        assert result.exit_code != 0 and "the database's own file" in result.output
    else:  # PostgreSQL's own tools are used, never re-implemented: without them, a clear stop
        monkeypatch.setattr(backup.shutil, "which", lambda name: None)
        result = invoke(app, "backup", str(tmp_path / "x.zip"))
        assert result.exit_code != 0 and "pg_dump was not found" in result.output
        result = invoke(app, "restore", str(written), "--force", "--yes")
        assert result.exit_code != 0 and "pg_restore was not found" in result.output
