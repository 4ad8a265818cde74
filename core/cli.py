"""The ``guanxi`` command line.

``serve``, ``demo``, ``db upgrade|current|revision``, ``backup``, ``restore``,
``plugins list|enable|disable``,
``plugin new`` (a plugin package to start from),
``jobs list|run-due``, ``import``, ``users create`` and ``tokens create|list|revoke``, plus
Flask's own ``routes`` and ``shell``.
"""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo, pass_script_info, with_appcontext
from sqlalchemy import select

from core.db import db
from core.plugins import PluginError


def _create_app():  # noqa: ANN202 - FlaskGroup factory
    from core.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main() -> None:
    """Guanxi (关系): a pluggable CRM."""


# -- serve and demo -----------------------------------------------------------------------------


@main.command(with_appcontext=False)
@click.option("--demo", is_flag=True, help="Create the demo companies first (once).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int, help="gunicorn workers")
@click.option("--dev", is_flag=True, help="Flask's debug server with reload instead of gunicorn.")
@pass_script_info
def serve(info: ScriptInfo, demo: bool, host: str, port: int, workers: int, dev: bool) -> None:
    """Upgrade the database and serve Guanxi (gunicorn by default).

    The server runs outside any application context: each request pushes its own, so ``g``
    (the logged-in user, the language, the company) never carries over between requests.
    """
    from core import demo as demo_data
    from core.migrations import upgrade

    app = info.load_app()
    with app.app_context():
        upgrade()
        if demo:
            demo_data.ensure(echo=click.echo)
        db.engine.dispose()  # each worker opens its own connections
    click.echo(f"Guanxi on http://{host}:{port}/")
    if dev:
        # app.run() is a no-op under a Flask CLI command, so call werkzeug's server directly.
        from werkzeug.serving import run_simple

        app.debug = True
        run_simple(host, port, app, use_reloader=True, use_debugger=True, threaded=True)
        return
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")
            # Room for the API's documented query strings (gunicorn's default is 4094 bytes).
            self.cfg.set("limit_request_line", 8190)

        def load(self):  # noqa: ANN202
            return app

    Server().run()


@main.command()
@with_appcontext
def demo() -> None:
    """Create the three demo companies with users and data (once)."""
    from core import demo as demo_data
    from core.migrations import upgrade

    upgrade()
    demo_data.ensure(echo=click.echo)


# -- database ---------------------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Create, upgrade and inspect the database schema."""


@db_group.command("upgrade")
@click.argument("revision", default="heads")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create the database or bring it up to date (core and every installed plugin)."""
    from core.migrations import upgrade

    upgrade(revision)
    click.echo("database is up to date")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Show the current revision of every history."""
    from alembic import command

    from core.migrations import alembic_config

    command.current(alembic_config(), verbose=False)


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--plugin", help="Write into this plugin's history (default: the core's).")
@click.option("--empty", is_flag=True, help="Do not autogenerate.")
@with_appcontext
def db_revision(message: str, plugin: str | None, empty: bool) -> None:
    """Autogenerate a migration for the core or for one plugin."""
    from core.migrations import revision

    try:
        revision(message, plugin=plugin, autogenerate=not empty)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


# -- backup and restore -------------------------------------------------------------------------


@main.command("backup")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@with_appcontext
def backup_command(file: str | None) -> None:
    """Write a consistent copy of the database to FILE while Guanxi keeps serving
    (default: ./guanxi-backup-YYYYMMDD-HHMMSS.zip, UTC); see docs/operations.md."""
    from pathlib import Path

    from core import backup as engine

    path = Path(file) if file else engine.default_path()
    try:
        done = engine.backup(db.engine, path)
    except engine.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    m = done.manifest
    click.echo(f"wrote {done.path} ({engine.human_size(done.size)}) in {done.seconds:.1f} s")
    click.echo(f"  {engine.KIND_NAMES[m.kind]} database {m.source}, by {m.tool}")
    click.echo(f"  {len(m.tables)} tables, {m.rows:,} rows; revisions {', '.join(m.alembic_heads)}")


@main.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--force", is_flag=True, help="Replace the contents of a database that has rows.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (with --force).")
@with_appcontext
def restore_command(file: str, force: bool, yes: bool) -> None:
    """Replace the database's contents with the backup FILE (all or nothing); see
    docs/operations.md. Stop the web workers first."""
    from pathlib import Path

    from core import backup as engine

    try:
        plan = engine.check(db.engine, Path(file))
    except engine.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    m = plan.manifest
    if plan.target_rows:
        held = f"{plan.target_rows:,} rows in {len(plan.target_tables)} tables"
        if not force:
            raise click.ClickException(
                f"the database {plan.target} is not empty ({held}); nothing was changed. "
                "Restore with --force to replace its contents"
            )
        if not yes:
            click.confirm(
                f"replace the {held} of {plan.target} with the backup taken {m.created_at}?",
                abort=True,
            )
    db.session.remove()
    try:
        done = engine.restore(db.engine, plan)
    except engine.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"restored {len(m.tables)} tables, {m.rows:,} rows from {plan.path} "
        f"(taken {m.created_at}) into {plan.target} in {done.seconds:.1f} s"
    )
    if plan.schema == "older":
        click.echo(
            f"the backup's schema is older than this code (it lacks {', '.join(plan.missing)}): "
            "run `guanxi db upgrade` before serving"
        )


# -- plugins ----------------------------------------------------------------------------------


def _company(code: str):  # noqa: ANN202
    from core.models import Company

    company = db.session.scalar(select(Company).where(Company.code == code))
    if company is None:
        raise click.ClickException(f"no company with code {code!r}")
    return company


@main.group()
def plugins() -> None:
    """List, enable and disable plugins."""


@plugins.command("list")
@with_appcontext
def plugins_list() -> None:
    """Every installed plugin with version, dependencies and the companies that enabled it."""
    from core.models import Company, CompanyPlugin
    from core.plugins import current
    from core.tenancy import unscoped

    manager = current()
    with unscoped():
        rows = db.session.execute(
            select(CompanyPlugin.plugin, Company.code)
            .join(Company, Company.id == CompanyPlugin.company_id)
            .where(CompanyPlugin.enabled.is_(True))
            .order_by(Company.code)
        ).all()
    enabled: dict[str, list[str]] = {}
    for plugin, code in rows:
        enabled.setdefault(plugin, []).append(code)
    click.echo(f"{'plugin':<12} {'version':<9} {'depends':<16} enabled for")
    for name in manager.order:
        m = manager.manifests[name]
        deps = ",".join(m.depends) or "-"
        companies = ",".join(enabled.get(name, [])) or "-"
        click.echo(f"{name:<12} {m.version:<9} {deps:<16} {companies}")
    for name, reason in manager.incompatible.items():
        click.echo(f"{name:<12} {'-':<9} {'-':<16} not loaded: {reason}")


@plugins.command("enable")
@click.argument("name")
@click.option("--company", "code", required=True, help="Company code.")
@with_appcontext
def plugins_enable(name: str, code: str) -> None:
    """Enable a plugin (and what it depends on) for a company."""
    from core.plugins import PluginError, current

    try:
        switched = current().enable(_company(code), name)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"enabled for {code}: {', '.join(switched) or 'nothing new'}")


@plugins.command("disable")
@click.argument("name")
@click.option("--company", "code", required=True, help="Company code.")
@with_appcontext
def plugins_disable(name: str, code: str) -> None:
    """Disable a plugin for a company (its data stays)."""
    from core.plugins import PluginError, current

    try:
        current().disable(_company(code), name)
    except PluginError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"disabled for {code}: {name}")


@main.group()
def plugin() -> None:
    """Write a new plugin."""


@plugin.command("new", with_appcontext=False)
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to create the plugin's project folder NAME in.",
)
def plugin_new(name: str, directory: str) -> None:
    """Create a plugin package NAME that passes its tests: `pip install -e . && pytest`."""
    from pathlib import Path

    from core.plugins import scaffold

    try:
        root = scaffold.create(name, Path(directory))
    except (ValueError, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {root}")
    click.echo(f"next: cd {root} && pip install -e . && pytest")


# -- jobs -------------------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """Scheduled jobs."""


@jobs.command("list")
@with_appcontext
def jobs_list() -> None:
    """Every registered job, its schedule and its latest run."""
    from sqlalchemy import func

    from core.models import JobRun
    from core.plugins import current

    latest = select(JobRun.job, func.max(JobRun.id).label("id")).group_by(JobRun.job).subquery()
    last = {
        run.job: run
        for run in db.session.scalars(select(JobRun).join(latest, JobRun.id == latest.c.id))
    }
    for job in current().registry.jobs.values():
        run = last.get(job.name)
        seen = f"last: {run.period} {run.scope} {run.status}" if run else "never run"
        click.echo(f"{job.name:<30} {job.plugin:<10} {_schedule_text(job.schedule):<22} {seen}")


def _schedule_text(schedule: object) -> str:
    minutes, at, day = (getattr(schedule, k) for k in ("minutes", "at", "day"))
    if minutes:
        return f"every {minutes} min"
    if day is not None:
        return f"monthly day {day} {at}"
    return f"daily {at}"


@jobs.command("run-due")
@click.option("--job", "only", help="Run only this job (if due).")
@click.option(
    "--inline", is_flag=True, help="Run the due jobs here even when Celery workers are configured."
)
@with_appcontext
def jobs_run_due(only: str | None, inline: bool) -> None:
    """Run every due job once per period (safe to start on several machines at once).

    With GUANXI_BROKER_URL set, the due runs are queued for the workers (``queued``)."""
    from core import jobs as engine

    known = current_app.extensions["guanxi.plugins"].registry.jobs
    if only and only not in known:
        raise click.ClickException(f"no job named {only!r}; known: {', '.join(sorted(known))}")
    for name, scope, status in engine.run_due(only=only, inline=inline):
        click.echo(f"{name} {scope} {status}")


@main.command(
    "worker",
    with_appcontext=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.option(
    "--beat", is_flag=True, help="Also run the scheduler: due jobs every minute (instead of cron)."
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@pass_script_info
def worker_command(info: ScriptInfo, beat: bool, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker for background tasks and jobs (needs GUANXI_BROKER_URL).

    Other arguments go to ``celery worker``, e.g. ``guanxi worker -c 4`` for four processes.
    Start ``--beat`` on one machine only (or use cron for ``guanxi jobs run-due``)."""
    from core import worker

    app = info.load_app()
    celery = app.extensions.get("celery")
    if celery is None:
        raise click.ClickException(
            "GUANXI_BROKER_URL is not set: without a broker, background tasks run in the web "
            "process and jobs from cron (guanxi jobs run-due); e.g. "
            "GUANXI_BROKER_URL=redis://127.0.0.1:6379/0 guanxi worker"
        )
    with app.app_context():
        db.engine.dispose()  # each pool process opens its own connections
    celery.worker_main(worker.argv(app, beat=beat, extra=celery_args))


# -- import -----------------------------------------------------------------------------------


@main.command("import")
@click.argument("kind")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--company", "code", required=True, help="Company code.")
@click.option("--mapping", help="JSON (or a JSON file): file column -> field; default: guessed.")
@click.option(
    "--on-duplicate",
    type=click.Choice(["skip", "update", "create"]),
    default="skip",
    show_default=True,
    help="What a row matching an existing record does.",
)
@click.option("--batch", type=click.IntRange(1, 100_000), help="Commit every N rows (resumable).")
@click.option("--resume", "resume_id", type=click.IntRange(1, 2**31 - 1), help="Task to resume.")
@click.option("--errors", "errors_out", type=click.Path(dir_okay=False), help="Error report CSV.")
@click.option("--user", "email", help="Import as this member (e-mail); audited as theirs.")
@with_appcontext
def import_command(
    kind: str,
    file: str,
    code: str,
    mapping: str | None,
    on_duplicate: str,
    batch: int | None,
    resume_id: int | None,
    errors_out: str | None,
    email: str | None,
) -> None:
    """Import customers, contacts, channels, interactions or a plugin's records from FILE
    (CSV or XLSX). All or nothing, unless --batch; see docs/import.md."""
    import json
    import shutil
    from pathlib import Path

    from core import importer, tabular, tasks
    from core.tenancy import company_scope

    company = _company(code)
    user = _user(email) if email else None
    path = Path(file).resolve()
    with company_scope(company.id):
        try:
            importer.resource_for(kind)
        except importer.MappingError as exc:
            names = ", ".join(sorted(importer.resources()))
            raise click.ClickException(f"{exc} (one of: {names})") from exc
        if resume_id:
            task = tasks.get(resume_id, kind="import")
            if task is None or task.status != "failed" or not task.params:
                raise click.ClickException(f"no failed import {resume_id} to resume in {code}")
            if task.params.get("resource") != kind:
                raise click.ClickException(f"import {resume_id} was of {task.params['resource']}")
            task.params = {**task.params, "path": str(path)}
            db.session.commit()
        else:
            chosen = None
            if mapping:
                text = Path(mapping).read_text("utf-8") if Path(mapping).is_file() else mapping
                try:
                    chosen = json.loads(text)
                except ValueError as exc:
                    raise click.ClickException(f"--mapping is not JSON: {exc}") from exc
                if not isinstance(chosen, dict):
                    raise click.ClickException("--mapping must map file columns to fields")
            task = tasks.create(
                "import",
                importer.run,
                user_id=user.id if user else None,
                path=str(path),
                resource=kind,
                mapping=chosen,
                on_duplicate=on_duplicate,
                mode="batched" if batch else "atomic",
                batch=batch or importer.DEFAULT_BATCH,
                filename=path.name,
            )
        try:
            with tabular.open_table(path) as table:
                total = table.estimated_rows or 0
        except tabular.TableError as exc:
            raise click.ClickException(str(exc)) from exc
        with click.progressbar(length=max(total, 1), label=f"importing {path.name}") as bar:

            def advance(done: int, _total: int | None) -> None:
                bar.update(max(0, min(done, bar.length) - bar.pos))

            ended = tasks.execute(task.id, listener=advance)
        result = ended.result or {}
    counts = ", ".join(f"{k} {result.get(k, 0)}" for k in ("rows", "created", "updated"))
    click.echo(
        f"import {ended.id}: {ended.status}; {counts}, "
        f"skipped {result.get('skipped', 0)}, with errors {result.get('failed', 0)}"
    )
    for error in (result.get("errors") or [])[:20]:
        click.echo(f"  line {error['line']}, {error['column']}: {error['message']}", err=True)
    report = result.get("error_file")
    if report and errors_out:
        shutil.copyfile(report, errors_out)
        report = errors_out
    if report:
        click.echo(f"error report: {report}", err=True)
    if ended.status != "done":
        click.echo(ended.error or "the import failed", err=True)
        if result.get("rows_committed") is not None and not result.get("status"):
            click.echo(
                f"resume with: guanxi import {kind} {file} --company {code} --resume {ended.id}",
                err=True,
            )
        raise SystemExit(1)


# -- users ------------------------------------------------------------------------------------


@main.group()
def companies() -> None:
    """Companies (tenants)."""


@companies.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--timezone", default="Asia/Shanghai", show_default=True)
@click.option("--plugin", "plugin_names", multiple=True, help="Enable this plugin (repeatable).")
@with_appcontext
def companies_create(code: str, name: str, timezone: str, plugin_names: tuple[str, ...]) -> None:
    """Create a company, optionally with plugins enabled."""
    from zoneinfo import available_timezones

    from core.models import Company

    if timezone not in available_timezones():
        raise click.ClickException(f"unknown time zone {timezone!r}")
    if db.session.scalar(select(Company).where(Company.code == code)):
        raise click.ClickException(f"a company with code {code!r} exists")
    company = Company(code=code, name=name, timezone=timezone)
    db.session.add(company)
    db.session.flush()
    manager = current_app.extensions["guanxi.plugins"]
    try:
        for name_ in plugin_names:
            manager.enable(company, name_)
    except PluginError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"created company {code} ({name})")


@main.group()
def users() -> None:
    """Users and memberships."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--company", "code", help="Company code to add the user to.")
@click.option("--role", default="viewer", show_default=True)
@with_appcontext
def users_create(email: str, name: str, password: str, code: str | None, role: str) -> None:
    """Create a user, optionally a member of a company with a role."""
    from core.models import Membership, User
    from core.security import ROLES
    from core.tenancy import unscoped

    if role not in ROLES:
        raise click.ClickException(f"role must be one of {', '.join(ROLES)}")
    if db.session.scalar(select(User).where(User.email == email.lower())):
        raise click.ClickException(f"a user with e-mail {email} exists")
    user = User(email=email.lower(), name=name)
    user.set_password(password)
    db.session.add(user)
    if code:
        company = _company(code)
        db.session.flush()
        with unscoped():
            db.session.add(Membership(user_id=user.id, company_id=company.id, role=role))
            db.session.commit()
    else:
        db.session.commit()
    click.echo(f"created {email}")


# -- API tokens -------------------------------------------------------------------------------


def _user(email: str):  # noqa: ANN202
    from core.models import User

    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with e-mail {email!r}")
    return user


def _moment(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@main.group()
def tokens() -> None:
    """Personal API tokens (see docs/tokens.md)."""


@tokens.command("create")
@click.option("--user", "email", required=True, help="E-mail of the token's user.")
@click.option("--company", "code", required=True, help="Company code.")
@click.option("--name", required=True, help="What the token is for.")
@click.option("--days", type=click.IntRange(1, 3650), help="Expire after this many days.")
@with_appcontext
def tokens_create(email: str, code: str, name: str, days: int | None) -> None:
    """Create a token and print its secret once (alone on the last line of stdout)."""
    from datetime import timedelta

    from core import tokens as engine
    from core.db import utcnow

    user, company = _user(email), _company(code)
    expires_at = utcnow() + timedelta(days=days) if days else None
    try:
        token, secret = engine.issue(user, company.id, name, expires_at)
    except engine.TokenError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.field}: {exc.message}") from exc
    token_id, prefix = token.id, token.prefix
    db.session.commit()
    expiry = f"expires {_moment(expires_at)} UTC" if expires_at else "does not expire"
    click.echo(
        f"created token {token_id} ({prefix}...) for {user.email} in {code}; {expiry}", err=True
    )
    click.echo("the secret is shown only this once; store it now:", err=True)
    click.echo(secret)


@tokens.command("list")
@click.option("--company", "code", help="Only this company (code).")
@click.option("--user", "email", help="Only this user (e-mail).")
@with_appcontext
def tokens_list(code: str | None, email: str | None) -> None:
    """Tokens with prefix, user and dates (UTC); never a secret or its hash."""
    from core.models import ApiToken, Company, User
    from core.tenancy import unscoped

    stmt = (
        select(ApiToken, Company.code, User.email)
        .join(Company, Company.id == ApiToken.company_id)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id)
    )
    if code:
        stmt = stmt.where(ApiToken.company_id == _company(code).id)
    if email:
        stmt = stmt.where(ApiToken.user_id == _user(email).id)
    with unscoped():
        rows = db.session.execute(stmt).all()
    click.echo(
        f"{'id':>5} {'company':<12} {'prefix':<12} {'user':<28} {'created':<16} "
        f"{'last used':<16} {'expires':<16} {'revoked':<16} name"
    )
    for token, company_code, user_email in rows:
        click.echo(
            f"{token.id:>5} {company_code:<12} {token.prefix + '...':<12} {user_email:<28} "
            f"{_moment(token.created_at):<16} {_moment(token.last_used_at):<16} "
            f"{_moment(token.expires_at):<16} {_moment(token.revoked_at):<16} {token.name}"
        )
    if not rows:
        click.echo("no tokens", err=True)


@tokens.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
@with_appcontext
def tokens_revoke(token_id: int) -> None:
    """Revoke a token by id (takes effect at the next request)."""
    from core import tokens as engine
    from core.models import ApiToken
    from core.tenancy import unscoped

    with unscoped():
        token = db.session.get(ApiToken, token_id)
        if token is None:
            raise click.ClickException(f"no token with id {token_id}")
        if not engine.revoke(token, None):
            click.echo(f"token {token_id} was already revoked on {_moment(token.revoked_at)} UTC")
            return
        done = f"revoked token {token_id} ({token.prefix}...) of {token.user.email}"
    db.session.commit()
    click.echo(done)


if __name__ == "__main__":
    main()
