"""The server-rendered web interface of the core."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Register the core's blueprints and template helpers on ``app``."""
    from core.web import apidocs, auth, customers, helpers

    app.register_blueprint(auth.bp)
    app.register_blueprint(customers.bp)
    from core.web import contacts

    app.register_blueprint(contacts.bp)
    from core.web import tickets

    app.register_blueprint(tickets.bp)
    from core.web import identify, settings

    app.register_blueprint(identify.bp)
    app.register_blueprint(settings.bp)
    from core.web import channels, dashboard

    app.register_blueprint(channels.bp)
    app.register_blueprint(dashboard.bp)
    from core.web import comments, imports, interactions, notifications, tokens

    app.register_blueprint(interactions.bp)
    app.register_blueprint(notifications.bp)
    app.register_blueprint(comments.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(imports.bp)
    app.context_processor(notifications.template_context)
    app.register_blueprint(apidocs.bp)
    from core.web import reports

    app.register_blueprint(reports.bp)
    from core.web import plugins_admin

    app.register_blueprint(plugins_admin.bp)
    from core.web import consent, privacy

    app.register_blueprint(privacy.bp)
    app.register_blueprint(consent.bp)
    from core.web import columns

    app.register_blueprint(columns.bp)
    from core.web import permissions

    app.register_blueprint(permissions.bp)
    from core.web import audit

    app.register_blueprint(audit.bp)
    from core import api

    api.init_app(app)
    helpers.init_app(app)
    from core.web import hardening

    hardening.init_app(app)
