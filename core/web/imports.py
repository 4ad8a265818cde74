"""Import pages (``/imports``): upload a CSV or XLSX file, map its columns, follow the progress.

1. ``/imports/`` -- choose what to import and the file (at most ``IMPORT_MAX_MB``, default 50);
   the file is kept in the import folder (:func:`core.importer.folder`) under an unguessable
   name that carries the company, so no other company can open it;
2. ``/imports/file/<token>`` -- the first rows and the suggested mapping of every column (the
   company's plugin fields included), what duplicates do, all or nothing or in batches; "Start"
   runs the import as a background task (:mod:`core.tasks`);
3. ``/imports/<task>`` -- a progress bar that polls ``/imports/<task>/status`` (a few lines of
   ``core/static/imports.js``), then the result: counts, the first errors, the error report to
   download (``/imports/<task>/errors.csv``), and "Resume" for a batched import that stopped.

Admins and managers import; other roles get 403.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from core import audit, importer, tabular, tasks
from core.db import db
from core.models import BackgroundTask
from core.permissions import abort_without
from core.tenancy import current_company_id
from core.web.helpers import check_csrf, csrf_checked_in_view, require_member

bp = Blueprint("imports", __name__, url_prefix="/imports")

#: Roles that may import.
#: Rows shown on the mapping page.
PREVIEW_ROWS = 5
#: Files with more rows than this are imported in batches unless the person chooses otherwise
#: (an all-or-nothing import holds SQLite's write lock, and so every other writer, until it ends).
BATCHED_FROM = 20_000
_TOKEN = re.compile(r"^c(\d+)-([0-9a-f]{32})\.(csv|xlsx)$")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    abort_without("import")


def _limit() -> int:
    return int(float(current_app.config.get("IMPORT_MAX_MB") or 50) * 2**20)


def _stored(token: str) -> tuple[Path, str]:
    """The uploaded file ``token`` names, if it is the current company's; else 404."""
    match = _TOKEN.match(token)
    if match is None or int(match.group(1)) != current_company_id():
        abort(404)
    path = importer.folder() / token
    if not path.is_file():
        abort(404)
    return path, match.group(3)


def _kinds() -> list[tuple[str, str]]:
    return sorted(
        ((name, importer.resource_label(r)) for name, r in importer.resources().items()),
        key=lambda pair: (pair[0] not in ("customers", "contacts", "channels"), pair[0]),
    )


@bp.route("/", methods=["GET", "POST"])
def upload() -> Any:
    """Choose the kind of record and the file.

    The upload may be larger than the application's ``MAX_CONTENT_LENGTH`` (which guards the
    API): the limit is raised to ``IMPORT_MAX_MB`` for this request before the body is read,
    so the view is exempt from the app-wide CSRF check and checks the token itself."""
    kinds = dict(_kinds())
    problems: list[str] = []
    kind = request.args.get("kind") or "customers"
    too_big = False
    if request.method == "POST":
        request.max_content_length = _limit()
        try:
            form, files = request.form, request.files
        except RequestEntityTooLarge:
            too_big = True
            problems.append(_("The file is larger than %(n)d MB; split it.", n=_limit() // 2**20))
        else:
            check_csrf(form.get("csrf_token"))
            kind = form.get("kind") or kind
            upload = files.get("file")
            if kind not in kinds:
                problems.append(_("Choose what to import."))
            elif upload is None or not upload.filename:
                problems.append(_("Choose a CSV or Excel (XLSX) file."))
            else:
                token, problem = _store(upload)
                if problem:
                    problems.append(problem)
                else:
                    name = Path(upload.filename).name[:200]
                    return redirect(url_for(".mapping", token=token, kind=kind, name=name))
    html = render_template(
        "imports/upload.html",
        kinds=kinds,
        kind=kind,
        problems=problems,
        recent=_recent(),
        limit_mb=_limit() // 2**20,
    )
    if not problems:
        return html
    return html, 413 if too_big else 422


def _store(upload: Any) -> tuple[str, str | None]:
    """Keep an uploaded file in the import folder; ``(token, problem)``."""
    try:
        fmt = tabular.format_of(upload.filename)
    except tabular.TableError:
        return "", _("Only CSV and Excel (XLSX) files can be imported.")
    importer.prune(current_app.config.get("IMPORT_KEEP_DAYS") or 7)
    token = f"c{current_company_id()}-{uuid.uuid4().hex}.{fmt}"
    path = importer.folder() / token
    upload.save(path)
    try:
        tabular.preview(path, 1)
    except tabular.TableError as exc:
        path.unlink(missing_ok=True)
        return "", _("The file cannot be read: %(why)s", why=str(exc))
    return token, None


def _recent() -> list[BackgroundTask]:
    stmt = (
        select(BackgroundTask)
        .where(BackgroundTask.kind == "import")
        .order_by(BackgroundTask.id.desc())
        .limit(10)
    )
    return list(db.session.scalars(stmt))


@bp.route("/file/<token>", methods=["GET", "POST"])
def mapping(token: str) -> Any:
    """The preview, the suggested mapping and the options; POST starts the import."""
    path, fmt = _stored(token)
    kind = request.values.get("kind") or "customers"
    filename = (request.values.get("name") or f"import.{fmt}")[:200]
    try:
        resource = importer.resource_for(kind)
    except importer.MappingError:
        abort(404)
    try:
        header, rows = tabular.preview(path, PREVIEW_ROWS)
        with tabular.open_table(path) as table:
            estimated = table.estimated_rows or 0
    except tabular.TableError as exc:
        flash(_("The file cannot be read: %(why)s", why=str(exc)))
        return redirect(url_for(".upload", kind=kind))
    columns = importer.columns(resource)
    suggested = importer.suggest(header, resource)
    chosen = dict(suggested)
    options = {
        "on_duplicate": request.form.get("on_duplicate", "skip"),
        "mode": request.form.get("mode", "batched" if estimated > BATCHED_FROM else "atomic"),
        "batch": request.form.get("batch", str(importer.DEFAULT_BATCH)),
    }
    problems: list[str] = []
    if request.method == "POST":
        known = {c.key for c in columns}
        chosen = {}
        for index, name in enumerate(header):
            value = request.form.get(f"map-{index}", "")
            chosen[name] = value if value in known else None
        batch = options["batch"].strip()
        if options["on_duplicate"] not in importer.ON_DUPLICATE:
            problems.append(_("Choose what duplicates do."))
        if options["mode"] not in importer.MODES:
            problems.append(_("Choose all or nothing, or batches."))
        elif options["mode"] == "batched" and not (
            batch.isascii() and batch.isdigit() and 1 <= int(batch) <= importer.MAX_BATCH
        ):
            problems.append(_("A batch is 1 to %(n)d rows.", n=importer.MAX_BATCH))
        if not problems:
            try:
                importer.compile_plan(
                    resource, header, chosen, on_duplicate=options["on_duplicate"]
                )
            except importer.MappingError as exc:
                problems.extend(exc.problems)
        if not problems:
            task = importer.start(
                path,
                kind,
                mapping=chosen,
                on_duplicate=options["on_duplicate"],
                mode=options["mode"],
                batch=int(batch) if options["mode"] == "batched" else importer.DEFAULT_BATCH,
                filename=filename,
                user_id=current_user.id,
            )
            return redirect(url_for(".show", task_id=task.id))
    html = render_template(
        "imports/mapping.html",
        token=token,
        kind=kind,
        label=importer.resource_label(resource),
        filename=filename,
        header=header,
        rows=rows,
        columns=columns,
        chosen=chosen,
        options=options,
        keyed=bool(importer.key_columns(resource)) or importer.rules_for(resource).dedupe_phone,
        creates_duplicates=importer.rules_for(resource).creates_duplicates,
        key_labels=importer.key_labels(resource),
        problems=problems,
        default_batch=importer.DEFAULT_BATCH,
    )
    return html, 422 if problems else 200


def _task(task_id: int) -> BackgroundTask:
    task = tasks.get(task_id, kind="import")
    if task is None:
        abort(404)
    return task


@bp.get("/<int:task_id>")
def show(task_id: int) -> str:
    """Progress while the import runs, the result when it has ended."""
    task = _task(task_id)
    params = task.params or {}
    result = task.result or {}
    kind = params.get("resource", "")
    resource = importer.resources().get(kind)
    return render_template(
        "imports/show.html",
        task=task,
        state=tasks.snapshot(task),
        params=params,
        result=result,
        label=importer.resource_label(resource) if resource else kind,
        list_url=_list_url(kind),
        resumable=task.status == "failed"
        and params.get("mode") == "batched"
        and result.get("status") != "failed",
    )


def _list_url(kind: str) -> str | None:
    endpoint = {"customers": "customers.index", "channels": "channels.index"}.get(kind)
    return url_for(endpoint) if endpoint else None


@bp.get("/<int:task_id>/status")
def status(task_id: int) -> Any:
    """The task's progress as JSON (polled by the progress page)."""
    task = _task(task_id)
    state = tasks.snapshot(task)
    if state["finished"]:
        result = task.result or {}
        state["counts"] = {
            k: result.get(k, 0) for k in ("rows", "created", "updated", "skipped", "failed")
        }
    response = jsonify(state)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<int:task_id>/errors.csv")
def errors(task_id: int) -> Any:
    """The error report: the rows with errors, ``line`` and ``errors`` first."""
    task = _task(task_id)
    report = (task.result or {}).get("error_file")
    if not report or not Path(report).is_file():
        abort(404)
    base = Path((task.params or {}).get("filename") or "import").stem
    return send_file(
        report,
        mimetype="text/csv; charset=utf-8",
        as_attachment=True,
        download_name=f"{base}-errors.csv",
        max_age=0,
    )


@bp.post("/<int:task_id>/resume")
def resume(task_id: int) -> Any:
    """Run a batched import that stopped again, from its first uncommitted batch."""
    task = _task(task_id)
    params = task.params or {}
    if task.status != "failed" or params.get("mode") != "batched":
        flash(_("Only a batched import that stopped can be resumed."))
        return redirect(url_for(".show", task_id=task.id))
    if not Path(params.get("path", "")).is_file():
        flash(_("The uploaded file is gone; upload it again."))
        return redirect(url_for(".show", task_id=task.id))
    task.status = "queued"
    audit.record(
        "update", "background_task", task.id, {"resource": params.get("resource"), "resumed": True}
    )
    db.session.commit()
    tasks.start(task.id)
    return redirect(url_for(".show", task_id=task.id))


csrf_checked_in_view(upload)
