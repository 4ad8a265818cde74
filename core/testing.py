"""Guanxi's pytest plugin: fixtures for the core's tests and for every plugin author's.

Installed with Guanxi (entry point ``pytest11``), so a plugin package gets, with no conftest:

``app``
    A Guanxi app on a test database, inside an app context. The database is created once per
    test session by running every migration (SQLite file by default; PostgreSQL when
    ``GUANXI_TEST_DATABASE_URL`` names a server, e.g.
    ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres`` -- a fresh database is created
    and dropped). Every row is deleted after each test.
    Extra plugin modules: ``@pytest.mark.guanxi_plugins("my_plugin", module, ...)``; their
    tables are created from their models if they have no migrations.
``db``
    The ``core.db.db`` handle (same database).
``client``
    A Flask test client.
``company(code=None, plugins=(), name=None)``
    Creates a company with the given plugins enabled (dependencies too) and returns it.
``make_user(role, company, email=None, password="secret")``
    Creates a user with a membership.
``login_as(role, company=None, client=None)``
    Creates a user with ``role`` in ``company`` (a new one when omitted), logs the test client
    in and switches it to that company; returns the user.
``make_app(**config)``
    Builds another app on the same database (for configurations a test must vary).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, inspect, make_url, text

_counter = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "guanxi_plugins(*modules): load these extra plugin modules into the app"
    )


@pytest.fixture(scope="session")
def guanxi_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the session's test database (created here, dropped at the end)."""
    base = os.environ.get("GUANXI_TEST_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    name = f"guanxi_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _config(url: str, tmp: Any, **extra: Any) -> dict[str, Any]:
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "INSTANCE_PATH": str(tmp),
        "SECRET_KEY": "test-secret",
        "TESTING": True,
        "WTF_CSRF_ENABLED": False,
        **extra,
    }


@pytest.fixture(scope="session")
def _guanxi_schema(guanxi_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Run every migration once on the session's database."""
    from core.app import create_app
    from core.db import db
    from core.migrations import upgrade

    app = create_app(_config(guanxi_database_url, tmp_path_factory.mktemp("instance")))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return guanxi_database_url


def _wipe(engine: Any) -> None:
    from core.db import db

    existing = set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            if table.name in existing:
                conn.execute(table.delete())


@pytest.fixture
def make_app(
    _guanxi_schema: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Any]]:
    """Factory of apps on the test database; extra plugins' tables are created as needed."""
    from core.db import db

    made: list[Any] = []

    def factory(**config: Any) -> Any:
        from core.app import create_app
        from core.migrations import table_owner

        marker = request.node.get_closest_marker("guanxi_plugins")
        plugins = list(config.pop("PLUGINS", ())) + list(marker.args if marker else ())
        app = create_app(
            _config(_guanxi_schema, tmp_path_factory.mktemp("instance"), PLUGINS=plugins, **config)
        )
        manager = app.extensions["guanxi.plugins"]
        migrated = {
            name
            for name in manager.order
            if any(f"{os.sep}{name}{os.sep}" in d for d in manager.migration_dirs())
        }
        with app.app_context():
            names = list(manager.manifests)
            tables = [
                t
                for t in db.metadata.sorted_tables
                if table_owner(t.name, names) in set(names) - migrated
            ]
            if tables:
                db.metadata.create_all(db.engine, tables=tables)
        made.append(app)
        return app

    yield factory
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Iterator[Any]:
    """A Guanxi app inside an app context; all rows are deleted afterwards."""
    from core.db import db

    application = make_app()
    with application.app_context():
        yield application
        db.session.rollback()
        db.session.remove()
        _wipe(db.engine)


@pytest.fixture
def db(app: Any) -> Any:
    from core.db import db as handle

    return handle


def _client_class() -> type:
    from flask import g, has_app_context
    from flask.testing import FlaskClient

    class GuanxiClient(FlaskClient):
        """A test client whose every request starts with an empty ``flask.g``.

        The ``app`` fixture keeps one app context open for the whole test (so tests and requests
        share the database session), and Flask reuses it for each request; without this, ``g``
        (Flask-Login's cached user, the cached plugin set) would leak from one request into the
        next, which never happens in a real server.
        """

        def open(self, *args: Any, **kwargs: Any) -> Any:
            if has_app_context():
                g.__dict__.clear()
            return super().open(*args, **kwargs)

    return GuanxiClient


@pytest.fixture
def client(app: Any) -> Any:
    """A Flask test client (each request sees a fresh ``flask.g``, as in a real server)."""
    app.test_client_class = _client_class()
    return app.test_client()


@pytest.fixture
def company(app: Any) -> Callable[..., Any]:
    """``company(code=None, plugins=(), name=None)``: a new company with plugins enabled."""
    from core.db import db
    from core.models import Company

    def factory(
        code: str | None = None, plugins: tuple[str, ...] | list[str] = (), name: str | None = None
    ) -> Any:
        n = next(_counter)
        code = code or f"co{n}"
        row = Company(code=code, name=name or f"测试公司{n}")
        db.session.add(row)
        db.session.commit()
        manager = app.extensions["guanxi.plugins"]
        for plugin in plugins:
            manager.enable(row, plugin)
        db.session.commit()
        return row

    return factory


@pytest.fixture
def make_user(app: Any) -> Callable[..., Any]:
    """``make_user(role, company, email=None, password="secret")``: a member of ``company``."""
    from core.db import db
    from core.models import Membership, User
    from core.tenancy import unscoped

    def factory(role: str, company: Any, email: str | None = None, password: str = "secret") -> Any:
        n = next(_counter)
        user = User(email=email or f"{role}{n}@example.com", name=f"{role} {n}")
        user.set_password(password)
        db.session.add(user)
        db.session.flush()
        with unscoped():
            db.session.add(Membership(user_id=user.id, company_id=company.id, role=role))
            db.session.commit()
        return user

    return factory


@pytest.fixture
def login_as(
    client: Any, company: Callable[..., Any], make_user: Callable[..., Any]
) -> Callable[..., Any]:
    """``login_as(role, company=None, client=None)``: log a new member in; returns the user."""

    new_company, default_client = company, client

    def factory(role: str = "admin", company: Any = None, client: Any = None) -> Any:
        target = company or new_company()
        user = make_user(role, target)
        with (client or default_client).session_transaction() as session:
            session["_user_id"] = str(user.id)
            session["_fresh"] = True
            session["company_id"] = target.id
        return user

    return factory


class QueryCounter:
    """Count the SQL statements ``engine`` runs inside a ``with`` block::

        with QueryCounter(db.engine) as counter:
            client.get("/customers/")
        assert counter.count <= 6

    Use it to show that a page's query count does not grow with its page size.
    """

    def __init__(self, engine: Any) -> None:
        self.engine, self.count = engine, 0

    def __enter__(self) -> QueryCounter:
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, *args: object) -> None:
        self.count += 1


def company_today(zone: str = "Asia/Shanghai") -> date:
    """Today where the test companies are (their default time zone), not on the machine.

    The app counts due dates and ages in the company's zone; a test that used
    ``date.today()`` would be a day off for eight hours a day on a UTC machine.
    """
    return datetime.now(ZoneInfo(zone)).date()
