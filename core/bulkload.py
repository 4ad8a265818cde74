"""What makes a large import fast, around the row loop of :mod:`core.importer`.

* :func:`paused_gc` -- Python's cyclic garbage collector paused while an import runs.
* :func:`cache_settings` -- on SQLite, a 64 MB page cache on the import's connection.
* :class:`IndexRebuild` -- on SQLite, an all-or-nothing import that brings at least as many
  rows as a table holds drops the table's indexes in its transaction and builds them again
  just before it commits: building an index from all its keys at once sorts them, while
  inserting 100,000 random names and phone numbers into six B-trees one by one costs three
  times the rows themselves. Other connections read the old snapshot, indexes included, until
  the import commits (WAL), and a failed import's rollback brings the indexes back untouched.
  Not on PostgreSQL, where ``DROP INDEX`` locks the table against every reader until commit.
* :func:`in_child_process` -- reading and converting the file in a second process while the
  first writes (Linux, large files): the row loop and the database then take turns on two
  cores instead of one. Threads do not help here: the writer releases and takes back Python's
  lock for every row it inserts.

docs/benchmarks.md has the measurements behind each.
"""

from __future__ import annotations

import gc
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, scoped_session

T = TypeVar("T")

#: Page cache of an SQLite import connection, in KiB (negative: SQLite's unit for KiB).
BULK_CACHE_KB = -65536
#: An import of fewer rows (as the file's size estimates them) runs in one process and keeps
#: every index: forking and rebuilding cost more than they save below this.
MIN_ROWS = 20_000

_gc_lock = threading.Lock()
_gc_pausers = 0


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an import runs.

    An import keeps a chunk of rows alive (lists, row objects) while it allocates the next, and
    each collection of the oldest generation walks every live object of the process: about half
    the time of converting rows went there. Reference counting still frees everything as it
    goes; the collector only finds cycles, and resumes when the last import ends."""
    global _gc_pausers
    with _gc_lock:
        _gc_pausers += 1
        was = gc.isenabled()
        gc.disable()
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and was:
                gc.enable()


@contextmanager
def cache_settings(session: Session | scoped_session[Session]) -> Iterator[None]:
    """Settings of the connection of ``session`` for bulk writing, restored afterwards (on the
    session's connection then: a rollback may have handed it another): on SQLite a 64 MB page
    cache (index pages of a large import stay in memory instead of being spilled and read
    back)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    previous = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size={BULK_CACHE_KB}")
    try:
        yield
    finally:
        with suppress(Exception):  # the connection went with a failed transaction
            session.connection().exec_driver_sql(f"PRAGMA cache_size={int(previous)}")


class IndexRebuild:
    """The indexes of some tables, dropped inside the open transaction of an SQLite
    connection, to be created again by :meth:`restore` before it commits.

    Unique indexes are kept (they guard the rows as they arrive), and so are the indexes
    SQLite makes itself for primary keys and ``UNIQUE`` constraints."""

    def __init__(self, connection: Connection, dropped: list[tuple[str, str]]) -> None:
        self.connection = connection
        #: ``(name, CREATE INDEX statement)`` of each dropped index.
        self.dropped = dropped

    @classmethod
    def start(cls, connection: Connection, tables: list[str], rows: int | None) -> IndexRebuild:
        """Drop the indexes of ``tables`` when this is worth it: SQLite, ``rows`` (the file's
        estimate) at least :data:`MIN_ROWS` and at least as many as the first table holds, of
        every company. Begins the write transaction (``BEGIN IMMEDIATE``) if none is open, so
        the drop is part of it. Returns a rebuild with nothing dropped otherwise."""
        rows = rows or 0
        if connection.dialect.name != "sqlite" or rows < MIN_ROWS:
            return cls(connection, [])
        held = connection.exec_driver_sql(f"SELECT count(*) FROM {tables[0]}").scalar() or 0
        if rows < held:
            return cls(connection, [])
        driver = connection.connection.driver_connection
        if not driver.in_transaction:  # type: ignore[union-attr]
            driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
        marks = ", ".join("?" * len(tables))
        found = driver.execute(  # type: ignore[union-attr]
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            f" AND tbl_name IN ({marks}) AND upper(sql) NOT LIKE 'CREATE UNIQUE%'",
            tables,
        ).fetchall()
        for name, _sql in found:
            driver.execute(f'DROP INDEX "{name}"')  # type: ignore[union-attr]
        return cls(connection, [(name, sql) for name, sql in found])

    def restore(self) -> None:
        """Create the dropped indexes again (in the same transaction)."""
        driver = self.connection.connection.driver_connection
        for _name, sql in self.dropped:
            driver.execute(sql)  # type: ignore[union-attr]
        self.dropped = []


class ReaderFailed(RuntimeError):
    """The process reading the file stopped without saying why (killed, out of memory)."""


def can_fork() -> bool:
    """Whether :func:`in_child_process` may fork here: Linux (elsewhere forking a process
    that has threads is unsafe or unavailable), and not inside a daemonic process of
    :mod:`multiprocessing`, which may not have children."""
    return sys.platform.startswith("linux") and not multiprocessing.current_process().daemon


def in_child_process(produce: Callable[[], Iterator[T]]) -> Iterator[T]:
    """Yield what ``produce()`` yields, computed in a forked child process.

    The child starts as a copy of this process (the open file, the import's plan and its
    duplicate indexes included), runs ``produce()`` and sends each item through a pipe,
    pickled; the pipe holds about one item, so the child stays at most a step ahead and
    memory stays flat. An exception in the child is raised here; a child that dies raises
    :class:`ReaderFailed`. When the caller stops early (an error while writing, a closed
    generator) the child is killed.

    The child must not use the database: it shares this process's connections (sockets, file
    handles). It leaves with ``os._exit``, which closes nothing of them."""
    for stream in (sys.stdout, sys.stderr):  # else the child prints this process's buffer
        with suppress(Exception):
            stream.flush()
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(
        target=_child, args=(produce, send), name="guanxi-import-reader", daemon=True
    )
    child.start()
    send.close()
    try:
        while True:
            try:
                kind, item = receive.recv()
            except EOFError:
                raise ReaderFailed(
                    f"the process reading the file stopped (exit code {child.exitcode})"
                ) from None
            if kind == "item":
                yield item
            elif kind == "done":
                break
            else:
                raise item
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join()


def _child(produce: Callable[[], Iterator[Any]], send: Any) -> None:
    try:
        for item in produce():
            send.send(("item", item))
        send.send(("done", None))
    except BaseException as exc:  # everything, KeyboardInterrupt included, goes to the parent
        with suppress(Exception):
            try:
                send.send(("error", exc))
            except Exception:  # an exception that does not pickle
                send.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        send.close()
