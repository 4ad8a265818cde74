"""Scratch databases and the environment of ``guanxi`` subprocesses, for bench/load.py and
bench/import_kill.py.

``scratch_database("sqlite")`` yields the URL of a new SQLite file in a temporary folder;
``scratch_database("postgresql")`` creates a database ``guanxi_bench_<random>`` on the local
server (127.0.0.1:5432, trust authentication, user ``postgres``; ``GUANXI_BENCH_PG`` names
another server URL without a database) and drops it afterwards, whatever happened.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("GUANXI_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
GUANXI = str(Path(sys.executable).with_name("guanxi"))


@dataclass
class Scratch:
    """Where a scratch run keeps its database and files."""

    kind: str
    url: str
    folder: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a ``guanxi`` subprocess working on this database."""
        env = dict(os.environ)
        env.update(
            GUANXI_DATABASE_URL=self.url,
            GUANXI_INSTANCE_PATH=str(self.folder),
            GUANXI_SECRET_KEY="bench-" + self.folder.name,
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql)


@contextmanager
def scratch_database(kind: str) -> Iterator[Scratch]:
    """A fresh, empty database of ``kind`` (``sqlite`` or ``postgresql``) and a temporary
    instance folder; both are removed on exit (also on Ctrl-C and errors)."""
    folder = Path(tempfile.mkdtemp(prefix=f"guanxi-bench-{kind}-"))
    name = None
    try:
        if kind == "sqlite":
            url = f"sqlite:///{folder / 'guanxi.db'}"
        elif kind == "postgresql":
            name = f"guanxi_bench_{secrets.token_hex(4)}"
            _pg_admin(f'CREATE DATABASE "{name}"')
            url = f"{PG_SERVER.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
        else:
            raise ValueError(f"unknown database {kind!r}")
        yield Scratch(kind, url, folder)
    finally:
        if name is not None:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def interruptible() -> None:
    """Ctrl-C and SIGTERM unwind through the ``finally`` blocks (server, subprocess, scratch
    database), also when the script was started in the background (SIGINT ignored)."""

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
