"""The application factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, abort, request, session
from flask_babel import Babel
from flask_login import LoginManager, current_user
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from core import config as config_module
from core import tenancy
from core.db import db
from core.migrations import configure as configure_migrations
from core.plugins import PluginManager
from core.routing import LazyBuildRule

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build a Guanxi application.

    ``config`` overrides the environment (see :mod:`core.config`); tests pass e.g.
    ``{"SQLALCHEMY_DATABASE_URI": ..., "PLUGINS": ["tests.sample_plugin"]}``.
    """
    settings = config_module.load(config)
    app = Flask(
        "guanxi",
        instance_path=settings["INSTANCE_PATH"],
        template_folder=str(Path(__file__).parent / "templates"),
        static_folder=str(Path(__file__).parent / "static"),
        root_path=str(ROOT),
    )
    app.url_rule_class = LazyBuildRule
    app.config.update(settings)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    migrate.configure_callbacks[:] = [configure_migrations]
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_locale, timezone_selector=lambda: "Asia/Shanghai")

    manager = PluginManager(trace=app.config["TRACE_HOOKS"])
    plugins = app.config["PLUGINS"]
    if isinstance(plugins, str):
        plugins = [p for p in plugins.split(",") if p]
    with app.app_context():
        manager.load(
            builtin=app.config.get("LOAD_BUILTIN_PLUGINS", True),
            entry_point_plugins=app.config["LOAD_ENTRY_POINTS"],
            extra=plugins,
        )
    app.extensions["guanxi.plugins"] = manager

    from core.web import register as register_web

    register_web(app)
    for _plugin, blueprint in manager.registry.blueprints:
        app.register_blueprint(blueprint)

    if app.config.get("PROXY_COUNT"):
        # Trust exactly that many proxies' X-Forwarded-For/-Proto/-Host/-Port/-Prefix, so login
        # throttling and the audit see the client's address, not nginx's (and nobody else's
        # forged header is believed).
        hops = int(app.config["PROXY_COUNT"])
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    if app.config.get("BROKER_URL"):
        from core import worker

        worker.install(app)

    app.before_request(_enter_company)
    app.teardown_request(_leave_company)
    return app


@login_manager.user_loader
def _load_user(user_id: str) -> Any:
    from core.models import User

    return db.session.get(User, int(user_id))


def _locale() -> str:
    """The user's language; outside a request (jobs, CLI) the default (zh_CN)."""
    from flask import current_app, has_request_context

    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and current_user.locale:
        return current_user.locale
    if session.get("locale"):
        return session["locale"]
    return (
        request.accept_languages.best_match(
            ["zh_CN", "zh", "en"], default=current_app.config["BABEL_DEFAULT_LOCALE"]
        )
        .replace("zh", "zh_CN")
        .replace("zh_CN_CN", "zh_CN")
    )


def _enter_company() -> None:
    """Scope the request to the logged-in user's current company; hide disabled plugins."""
    from flask import current_app, g

    from core.models import Membership
    from core.web.context import enabled_plugins

    registry = current_app.extensions["guanxi.plugins"].registry
    owner = registry.blueprint_owner.get(request.blueprint or "")
    if "public_company_code" in g:
        _enter_public(owner)
        return
    authenticated = current_user.is_authenticated  # may read a bearer token (core.api.auth)
    token = g.get("api_token")
    if token is not None:
        # A live token's membership was loaded with it (core.tokens.authenticate).
        member = token.membership
        company_id = token.company_id if member is not None else None
    else:
        company_id, member = session.get("company_id"), None
        if company_id is not None and authenticated:
            with tenancy.unscoped():
                member = db.session.scalar(
                    db.select(Membership).where(
                        Membership.user_id == current_user.id, Membership.company_id == company_id
                    )
                )
            if member is None:
                session.pop("company_id", None)
                company_id = None
    if member is not None:
        g.membership = member
    g._tenancy_token = tenancy.activate(company_id)
    if owner and (company_id is None or owner not in enabled_plugins()):
        abort(404)


def _enter_public(owner: str | None) -> None:
    """Scope a public page (``core.web.public``) to the company its URL names, whoever is
    logged in; 404 for an unknown company or one that has not enabled the page's plugin."""
    from flask import g

    from core.models import Company
    from core.web.context import enabled_plugins

    with tenancy.unscoped():
        company_id = db.session.scalar(
            db.select(Company.id).where(Company.code == g.public_company_code)
        )
    if company_id is None:
        abort(404)
    g._tenancy_token = tenancy.activate(company_id)
    if owner and owner not in enabled_plugins():
        abort(404)


def _leave_company(exc: BaseException | None) -> None:
    from flask import g

    token = g.pop("_tenancy_token", None)
    if token is not None:
        tenancy.reset(token)
