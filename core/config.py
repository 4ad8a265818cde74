"""Configuration from the environment.

=========================  ==========================================================
``GUANXI_INSTANCE_PATH``   folder for the SQLite file, the secret key, uploads (``./instance``)
``GUANXI_DATABASE_URL``    SQLAlchemy URL; default ``sqlite:///<instance>/guanxi.db``
``GUANXI_SECRET_KEY``      session signing key; generated into ``<instance>/secret_key`` when unset
``GUANXI_BROKER_URL``      Celery broker (Redis) for background work; unset: local threads
``GUANXI_BROKER_QUEUE``    the Celery queue's name (``guanxi``); deployments sharing one Redis
                           each need their own
``GUANXI_TRACE_HOOKS``     ``1`` logs every plugin hook call
``GUANXI_PLUGINS``         extra plugin modules to load, comma-separated dotted paths
``GUANXI_MAIL_SERVER``     SMTP host for notification e-mail; unset: in-app notifications only
``GUANXI_MAIL_*``          ``PORT`` (25), ``USE_TLS`` (``1``: STARTTLS), ``USERNAME``, ``PASSWORD``,
                           ``DEFAULT_SENDER``, ``BASE_URL`` (site address for links in e-mail)
``GUANXI_API_RATE_LIMIT``  requests per token (or user, or address) to ``/api``: ``600/minute``
``GUANXI_RATELIMIT_STORAGE``  where the counts live: ``memory://`` (one process) or
                           ``redis://127.0.0.1:6379/1`` (shared by several gunicorn workers)
``GUANXI_MAX_BODY_MB``     largest request body in MB (``8``); bigger ones are refused with 413
``GUANXI_IMPORT_MAX_MB``   largest spreadsheet the import page takes, in MB (``50``)
``GUANXI_IMPORT_FOLDER``   where uploads and error reports wait (``<instance>/imports``)
``GUANXI_IMPORT_KEEP_DAYS``  days uploads and error reports are kept (``7``)
``GUANXI_PROXY_COUNT``     reverse proxies in front (nginx: ``1``); their ``X-Forwarded-*``
                           headers then give the client's address and scheme (``0``: ignored)
``GUANXI_HTTPS``           ``1``: the site is served over HTTPS; session and remember-me
                           cookies are sent with ``Secure`` and links use ``https``
=========================  ==========================================================

A mapping passed to :func:`core.app.create_app` overrides all of these (tests use it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


def instance_path(overrides: dict[str, Any] | None = None) -> Path:
    """The instance folder, created when missing."""
    raw = (overrides or {}).get("INSTANCE_PATH") or os.environ.get("GUANXI_INSTANCE_PATH")
    path = Path(raw or "instance").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def secret_key(folder: Path) -> str:
    """``GUANXI_SECRET_KEY``, else the key stored in the instance folder, generated once."""
    if os.environ.get("GUANXI_SECRET_KEY"):
        return os.environ["GUANXI_SECRET_KEY"]
    key_file = folder / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def load(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from the environment plus ``overrides``."""
    overrides = dict(overrides or {})
    folder = instance_path(overrides)
    https = os.environ.get("GUANXI_HTTPS", "").lower() in ("1", "true", "yes")
    config: dict[str, Any] = {
        "INSTANCE_PATH": str(folder),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("GUANXI_DATABASE_URL")
        or f"sqlite:///{folder / 'guanxi.db'}",
        "SECRET_KEY": None,
        "BROKER_URL": os.environ.get("GUANXI_BROKER_URL"),
        "BROKER_QUEUE": os.environ.get("GUANXI_BROKER_QUEUE") or "guanxi",
        "TRACE_HOOKS": os.environ.get("GUANXI_TRACE_HOOKS") == "1",
        "BABEL_DEFAULT_LOCALE": "zh_CN",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
        # Absolute, so the catalogs are found from an installed wheel and from any cwd.
        "BABEL_TRANSLATION_DIRECTORIES": str(Path(__file__).resolve().parent / "translations"),
        "LANGUAGES": {"zh_CN": "中文", "en": "English"},
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PREFERRED_URL_SCHEME": "https" if https else "http",
        "PROXY_COUNT": int(os.environ.get("GUANXI_PROXY_COUNT") or 0),
        "SESSION_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,
        "LIST_PAGE_SIZE": 50,
        "COUNT_CAP": 10_000,
        # Extra plugin modules to load besides the built-ins and entry points (dotted paths).
        "PLUGINS": [p for p in os.environ.get("GUANXI_PLUGINS", "").split(",") if p],
        # Entry-point discovery of third-party plugins; tests may turn it off.
        "LOAD_ENTRY_POINTS": True,
        # Notification e-mail (core/notify.py); no MAIL_SERVER: in-app notifications only.
        "MAIL_SERVER": os.environ.get("GUANXI_MAIL_SERVER") or None,
        "MAIL_PORT": int(os.environ.get("GUANXI_MAIL_PORT") or 25),
        "MAIL_USE_TLS": os.environ.get("GUANXI_MAIL_USE_TLS", "").lower() in ("1", "true", "yes"),
        "MAIL_USERNAME": os.environ.get("GUANXI_MAIL_USERNAME") or None,
        "MAIL_PASSWORD": os.environ.get("GUANXI_MAIL_PASSWORD") or None,
        "MAIL_DEFAULT_SENDER": os.environ.get("GUANXI_MAIL_DEFAULT_SENDER") or "guanxi@localhost",
        "MAIL_BASE_URL": os.environ.get("GUANXI_MAIL_BASE_URL") or "",
        # JSON API (core/api): rate limit per token, its storage, largest request body.
        "API_RATE_LIMIT": os.environ.get("GUANXI_API_RATE_LIMIT") or "600/minute",
        "RATELIMIT_STORAGE_URI": os.environ.get("GUANXI_RATELIMIT_STORAGE") or "memory://",
        "MAX_CONTENT_LENGTH": int(float(os.environ.get("GUANXI_MAX_BODY_MB") or 8) * 2**20),
        # Spreadsheet imports (core/importer.py, core/web/imports.py).
        "IMPORT_MAX_MB": float(os.environ.get("GUANXI_IMPORT_MAX_MB") or 50),
        "IMPORT_FOLDER": os.environ.get("GUANXI_IMPORT_FOLDER") or None,
        "IMPORT_KEEP_DAYS": int(os.environ.get("GUANXI_IMPORT_KEEP_DAYS") or 7),
    }
    config.update(overrides)
    if not config["SECRET_KEY"]:
        config["SECRET_KEY"] = secret_key(folder)
    return config
