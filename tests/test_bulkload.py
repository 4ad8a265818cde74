"""Large imports (core.bulkload): the file read in a second process, indexes rebuilt once.

tests/test_import.py runs every import test both ways; these check what only the large way
has: the reading process itself, its failures, and the indexes around an import."""

from __future__ import annotations

import csv
import multiprocessing
import os

import pytest
from sqlalchemy import inspect, select, text

from core import bulkload, importer, tabular
from core.db import db as handle
from core.models import AuditLog, Customer
from core.tenancy import company_scope

pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin")


@pytest.fixture
def shop(company, make_user, monkeypatch):
    """A company with the pharma plugin and its admin; every file counts as large."""
    monkeypatch.setattr(bulkload, "MIN_ROWS", 0)
    co = company(plugins=["pharma"])
    return co, make_user("admin", co)


@pytest.fixture
def piped(monkeypatch):
    """How many imports read their file in a second process."""
    calls: list[int] = []
    original = bulkload.in_child_process

    def counted(produce):
        calls.append(os.getpid())
        yield from original(produce)

    monkeypatch.setattr(bulkload, "in_child_process", counted)
    return calls


def write_rows(path, n, *, bad_line=None, tail=""):
    rows = [["编号", "客户名称", "手机", "床位数"]]
    rows += [[f"K{i:05d}", f"客户{i}", f"139{i:08d}", str(i % 900)] for i in range(n)]
    if bad_line is not None:
        rows[bad_line - 1][2] = "not a phone"
    with path.open("w", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(rows)
    if tail:
        with path.open("ab") as out:
            out.write(tail)
    return path


def indexes():
    """Every index of the tables an import of customers writes, as the database lists it."""
    found = inspect(handle.engine)
    return {
        table: sorted((i["name"], tuple(i["column_names"])) for i in found.get_indexes(table))
        for table in ("customer", "pharma_customer_ext")
    }


def count(table):
    return handle.session.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def test_a_large_import_is_read_in_another_process_and_keeps_its_indexes(shop, tmp_path, piped):
    co, user = shop
    before = indexes()
    path = write_rows(tmp_path / "big.csv", 5000)
    with company_scope(co.id):
        outcome = importer.import_file(path, "customers", user_id=user.id)
        assert outcome["status"] == "done" and outcome["created"] == 5000, outcome["errors"]
        found = handle.session.execute(select(Customer.code).order_by(Customer.id)).scalars()
        assert list(found) == [f"K{i:05d}" for i in range(5000)]
        assert count("pharma_customer_ext") == 5000  # 0 beds is a value
    assert piped == [os.getpid()]
    assert indexes() == before
    if handle.engine.dialect.name == "sqlite":
        with handle.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM customer WHERE company_id = 1 AND name = 'x'"
            ).fetchall()
            assert "ix_customer_company_id_name" in str(plan)


def test_a_refused_large_import_writes_nothing_and_keeps_its_indexes(shop, tmp_path, piped):
    co, user = shop
    before = indexes()
    path = write_rows(tmp_path / "bad.csv", 3000, bad_line=2500)
    with company_scope(co.id):
        outcome = importer.import_file(path, "customers", user_id=user.id)
        assert outcome["status"] == "failed"
        assert [(e["line"], e["column"]) for e in outcome["errors"]] == [(2500, "手机")]
        assert count("customer") == 0 and count("pharma_customer_ext") == 0
    assert piped and indexes() == before


def test_a_database_failure_in_a_large_import_writes_nothing(shop, tmp_path, piped, failing_import):
    co, user = shop
    before = indexes()
    path = write_rows(tmp_path / "big.csv", 9000)
    failing_import(3, RuntimeError("disk full"))
    with company_scope(co.id), pytest.raises(RuntimeError, match="disk full"):
        importer.import_file(path, "customers", user_id=user.id)
    assert multiprocessing.active_children() == []  # the reader was stopped
    with company_scope(co.id):
        assert count("customer") == 0
        audit = handle.session.scalars(select(AuditLog).where(AuditLog.action == "import")).one()
        assert audit.data["status"] == "interrupted"
    assert indexes() == before


def test_a_file_that_breaks_half_way_stops_the_import_with_the_readers_error(shop, tmp_path, piped):
    co, user = shop
    too_long = b'K99999,"' + b"x" * 200_000 + b'",13900000000\n'  # csv: over its field limit
    path = write_rows(tmp_path / "broken.csv", 3000, tail=too_long)
    with company_scope(co.id), pytest.raises(tabular.TableError) as raised:
        importer.import_file(path, "customers", user_id=user.id)
    assert "line 3002" in str(raised.value) and "field larger" in str(raised.value)
    with company_scope(co.id):
        assert count("customer") == 0
    assert piped


def test_a_reading_process_that_dies_stops_the_import(shop, tmp_path, piped, monkeypatch):
    co, user = shop
    convert = importer.Job.convert
    parent = os.getpid()

    def dies(self, source, size, skip):
        for number, rows in enumerate(convert(self, source, size, skip)):
            if number == 1 and os.getpid() != parent:
                os._exit(3)
            yield rows

    monkeypatch.setattr(importer.Job, "convert", dies)
    path = write_rows(tmp_path / "big.csv", 6000)
    with company_scope(co.id), pytest.raises(bulkload.ReaderFailed, match="exit code 3"):
        importer.import_file(path, "customers", user_id=user.id)
    with company_scope(co.id):
        assert count("customer") == 0


def test_a_batched_large_import_resumes_without_duplicates(
    app, shop, tmp_path, piped, failing_import
):
    co, user = shop
    path = write_rows(tmp_path / "big.csv", 5000)
    failing_import(3, RuntimeError("connection lost"))
    progress = _Progress()
    with company_scope(co.id):
        with pytest.raises(RuntimeError):
            importer.import_file(
                path, "customers", user_id=user.id, mode="batched", batch=1000, progress=progress
            )
        assert count("customer") == 2000
        progress.previous = progress.state
        outcome = importer.import_file(
            path, "customers", user_id=user.id, mode="batched", batch=1000, progress=progress
        )
        assert outcome["created"] == 5000 and count("customer") == 5000
        codes = handle.session.execute(select(Customer.code).order_by(Customer.code)).scalars()
        assert list(codes) == [f"K{i:05d}" for i in range(5000)]
    assert len(piped) == 2


class _Progress:
    """What import_file needs of a task's progress: the checkpoint of committed batches."""

    def __init__(self):
        self.state, self.previous = {}, None

    def advance(self, done, total):
        pass

    def checkpoint(self, **state):
        self.state.update(state)


def test_indexes_are_rebuilt_only_when_the_file_outweighs_the_table(app, db):
    with db.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE bulk_probe (id INTEGER PRIMARY KEY, a TEXT, b TEXT)")
        conn.exec_driver_sql("CREATE INDEX ix_bulk_probe_a ON bulk_probe (a)")
        conn.exec_driver_sql("CREATE UNIQUE INDEX uq_bulk_probe_b ON bulk_probe (b)")
        conn.exec_driver_sql(
            "INSERT INTO bulk_probe (id, a, b) VALUES (1, 'x', 'x'), (2, 'y', 'y'), (3, 'z', 'z')"
        )
        conn.commit()
    try:
        with db.engine.connect() as conn:
            small = bulkload.IndexRebuild.start(conn, ["bulk_probe"], bulkload.MIN_ROWS - 1)
            assert small.dropped == []
        original = bulkload.MIN_ROWS
        bulkload.MIN_ROWS = 0
        try:
            with db.engine.connect() as conn:
                fewer = bulkload.IndexRebuild.start(conn, ["bulk_probe"], 2)
                assert fewer.dropped == []  # the table holds more rows than the file brings
            with db.engine.connect() as conn:
                rebuild = bulkload.IndexRebuild.start(conn, ["bulk_probe"], 3)
                names = [name for name, _sql in rebuild.dropped]
                if conn.dialect.name == "sqlite":
                    assert names == ["ix_bulk_probe_a"]  # the unique index stays on guard
                    with pytest.raises(Exception, match="UNIQUE"):
                        conn.exec_driver_sql("INSERT INTO bulk_probe (id, b) VALUES (4, 'x')")
                    conn.rollback()
                else:
                    assert names == []  # PostgreSQL: DROP INDEX would lock out every reader
            with db.engine.connect() as conn:
                rebuild = bulkload.IndexRebuild.start(conn, ["bulk_probe"], 3)
                conn.exec_driver_sql("INSERT INTO bulk_probe (id, a, b) VALUES (5, 'q', 'q')")
                rebuild.restore()
                conn.commit()
        finally:
            bulkload.MIN_ROWS = original
        names = sorted(i["name"] for i in inspect(db.engine).get_indexes("bulk_probe"))
        assert names == ["ix_bulk_probe_a", "uq_bulk_probe_b"]
    finally:
        with db.engine.connect() as conn:
            conn.exec_driver_sql("DROP TABLE bulk_probe")
            conn.commit()


def test_the_reading_process_yields_in_order_and_passes_errors_on():
    def numbers():
        yield from range(5)
        raise ValueError("cell 6 is not a number")

    got = []
    with pytest.raises(ValueError, match="cell 6"):
        for n in bulkload.in_child_process(numbers):
            got.append(n)
    assert got == [0, 1, 2, 3, 4]


def test_a_reading_process_left_early_is_stopped():
    def endless():
        n = 0
        while True:
            yield [n] * 1000
            n += 1

    reader = bulkload.in_child_process(endless)
    assert next(reader)[0] == 0
    reader.close()
    assert multiprocessing.active_children() == []
