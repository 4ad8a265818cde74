"""Questionnaire pages (on :data:`plugins.surveys.blueprint.bp`).

- ``/surveys/questionnaires`` -- the company's questionnaires with their numbers of questions,
  dimensions and campaigns (one query);
- ``/surveys/questionnaires/new`` -- name and description (managers);
- ``/surveys/questionnaires/<id>`` -- the editor: dimensions, sections and their questions, with
  forms to add each (managers); a question with answers cannot be removed.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from core import audit
from core.extend import db
from plugins.surveys import questionnaires as svc
from plugins.surveys.blueprint import bp, is_manager, require_manager
from plugins.surveys.models import Campaign, Dimension, Question, Questionnaire


def _get(questionnaire_id: int) -> Questionnaire:
    found = (
        db.session.get(Questionnaire, questionnaire_id) if 0 < questionnaire_id < 2**31 else None
    )
    if found is None:
        abort(404)
    return found


@bp.route("/questionnaires")
def questionnaires() -> Any:
    """Every questionnaire with its counts (one query with correlated counts)."""

    def count(model: Any) -> Any:
        return (
            select(func.count(model.id))
            .where(model.questionnaire_id == Questionnaire.id)
            .correlate(Questionnaire)
            .scalar_subquery()
        )

    rows = db.session.execute(
        select(
            Questionnaire,
            count(Question).label("questions"),
            count(Dimension).label("dimensions"),
            count(Campaign).label("campaigns"),
        ).order_by(Questionnaire.id.desc())
    ).all()
    return render_template("surveys/questionnaires.html", rows=rows, manager=is_manager())


@bp.route("/questionnaires/new", methods=["GET", "POST"])
def questionnaire_new() -> Any:
    require_manager()
    values = {"name": "", "description": ""}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in values}
        try:
            q = svc.create_questionnaire(
                values["name"], description=values["description"], user=current_user
            )
            db.session.commit()
        except svc.QuestionnaireRefused as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            flash(_("Questionnaire saved; now add its dimensions, sections and questions."))
            return redirect(url_for("surveys.questionnaire", questionnaire_id=q.id))
    status = 422 if errors else 200
    return render_template("surveys/questionnaire_new.html", values=values, errors=errors), status


def _editor(q: Questionnaire, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    by_section: dict[int | None, list[Question]] = {}
    for question in svc.questions_of(q.id):
        by_section.setdefault(question.section_id, []).append(question)
    dims = {d.id: d for d in q.dimensions}
    return (
        render_template(
            "surveys/questionnaire.html",
            q=q,
            by_section=by_section,
            dims=dims,
            kinds=[(k, svc.kind_label(k)) for k, _t, _z in svc.KIND_LABELS],
            kind_label=svc.kind_label,
            answered=svc.has_answers(q.id),
            manager=is_manager(),
            errors=errors or {},
            form=request.form if request.method == "POST" else {},
        ),
        status,
    )


@bp.route("/questionnaires/<int:questionnaire_id>")
def questionnaire(questionnaire_id: int) -> Any:
    return _editor(_get(questionnaire_id))


def _change(questionnaire_id: int, action: Any) -> Any:
    require_manager()
    q = _get(questionnaire_id)
    try:
        action(q)
        # One row per edit of the questionnaire (renamed, a section, dimension or question
        # added); the old → new values of a rename come from the ORM's history.
        audit.record("update", Questionnaire.__tablename__, q.id, {"edit": request.endpoint})
        db.session.commit()
    except svc.QuestionnaireRefused as exc:
        db.session.rollback()
        return _editor(_get(questionnaire_id), exc.errors, 422)
    flash(_("Questionnaire saved."))
    return redirect(url_for("surveys.questionnaire", questionnaire_id=q.id))


@bp.route("/questionnaires/<int:questionnaire_id>/edit", methods=["POST"])
def questionnaire_edit(questionnaire_id: int) -> Any:
    def act(q: Questionnaire) -> None:
        errors = svc.rename(q, request.form.get("name", ""), request.form.get("description"))
        if errors:
            raise svc.QuestionnaireRefused(errors)

    return _change(questionnaire_id, act)


@bp.route("/questionnaires/<int:questionnaire_id>/dimensions", methods=["POST"])
def dimension_add(questionnaire_id: int) -> Any:
    return _change(
        questionnaire_id,
        lambda q: svc.add_dimension(
            q,
            request.form.get("code", ""),
            request.form.get("label", ""),
            request.form.get("label_zh"),
        ),
    )


@bp.route("/questionnaires/<int:questionnaire_id>/sections", methods=["POST"])
def section_add(questionnaire_id: int) -> Any:
    return _change(questionnaire_id, lambda q: svc.add_section(q, request.form.get("title", "")))


@bp.route("/questionnaires/<int:questionnaire_id>/questions", methods=["POST"])
def question_add(questionnaire_id: int) -> Any:
    raw_section = request.form.get("section_id", "")
    section_id = int(raw_section) if raw_section.isascii() and raw_section.isdigit() else None

    def act(q: Questionnaire) -> None:
        svc.add_question(
            q,
            section_id,
            text=request.form.get("text", ""),
            kind=request.form.get("kind", ""),
            options=request.form.get("options", ""),
            required=bool(request.form.get("required")),
            dimension=request.form.get("dimension") or None,
        )

    return _change(questionnaire_id, act)


@bp.route("/questions/<int:question_id>/delete", methods=["POST"])
def question_delete(question_id: int) -> Any:
    require_manager()
    question = db.session.get(Question, question_id) if 0 < question_id < 2**31 else None
    if question is None:
        abort(404)
    q_id = question.questionnaire_id
    problem = svc.remove_question(question)
    if problem:
        db.session.rollback()
        return _editor(_get(q_id), {"delete": problem}, 409)
    audit.record("delete", Question.__tablename__, question_id, {"questionnaire_id": q_id})
    db.session.commit()
    flash(_("Question removed."))
    return redirect(url_for("surveys.questionnaire", questionnaire_id=q_id))
