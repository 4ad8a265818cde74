"""Questionnaires: building them in code or on the editor page, and checking answers to them.

Python API (other plugins call these; the caller commits)::

    from plugins.surveys import questionnaires

    q = questionnaires.create_questionnaire(
        "住户满意度调查",
        dimensions=[("cleaning", "Cleaning", "保洁"), ("safety", "Safety", "安全")],
        sections=[
            {
                "title": "服务评价",
                "questions": [
                    {"text": "您对保洁服务满意吗？", "kind": "rating", "dimension": "cleaning"},
                    {"text": "您对小区安全满意吗？", "kind": "rating", "dimension": "safety"},
                    {"text": "您向亲友推荐我们的可能性有多大？", "kind": "nps"},
                    {"text": "您最希望改进哪些方面？", "kind": "multiple",
                     "options": ["保洁", "绿化", "安保"], "required": False},
                    {"text": "其他意见", "kind": "text", "required": False},
                ],
            }
        ],
    )

- :func:`create_questionnaire` builds a questionnaire with its dimensions, sections and
  questions in one call, or raises :class:`QuestionnaireRefused` with messages by place
  (``"name"``, ``"dimensions"``, ``"sections.0.questions.2.kind"``…);
- :func:`add_dimension`, :func:`add_section`, :func:`add_question` change one (the editor page
  uses them); :func:`remove_question` refuses a question that has answers;
- :func:`check_answers` validates a mapping of answers (question id → value) and returns the
  cleaned values and the messages by question id.

Question kinds (:data:`plugins.surveys.models.KINDS`): ``rating`` (1-5), ``nps`` (0-10),
``single`` (one of ``options``), ``multiple`` (any of ``options``), ``text`` (at most
:data:`MAX_TEXT` characters).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select

from core import audit
from core.extend import db
from core.i18n import pick
from plugins.surveys.models import KINDS, Answer, Dimension, Question, Questionnaire, Section

#: Longest text answer.
MAX_TEXT = 2000
#: Most options a choice question may have, and the longest option.
MAX_OPTIONS, MAX_OPTION = 30, 200
#: Bounds of the scored kinds.
BOUNDS = {"rating": (1, 5), "nps": (0, 10)}
KIND_LABELS: tuple[tuple[str, str, str], ...] = (
    ("rating", "Rating 1-5", "评分（1-5）"),
    ("nps", "Recommend 0-10 (NPS)", "推荐意愿（0-10，NPS）"),
    ("single", "Single choice", "单选"),
    ("multiple", "Multiple choice", "多选"),
    ("text", "Text", "文字"),
)
_CODE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class QuestionnaireRefused(ValueError):
    """A questionnaire (or a part of one) refused: ``errors`` by place."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def kind_label(kind: str) -> str:
    """The label of a question kind in the user's language."""
    for value, text, zh in KIND_LABELS:
        if value == kind:
            return pick(text, zh)
    return kind


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > limit or "\x00" in value:
        return None
    return value


def _dimension_problems(code: Any, label: Any, label_zh: Any, taken: Iterable[str]) -> str | None:
    if not isinstance(code, str) or not code or len(code) > 40 or set(code) - _CODE_CHARS:
        return _("A code of lowercase letters, digits and underscores (at most 40).")
    if code in set(taken):
        return _("This questionnaire has a dimension %(code)s already.", code=code)
    if _text(label, 120) is None:
        return _("Give the dimension a label (at most 120 characters).")
    if label_zh not in (None, "") and _text(label_zh, 120) is None:
        return _("At most %(n)s characters.", n=120)
    return None


def _question_problems(
    spec: Mapping[str, Any], dimensions: Iterable[str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Messages by key and the cleaned question of ``spec``."""
    errors: dict[str, str] = {}
    text = _text(spec.get("text"), 500)
    if text is None:
        errors["text"] = _("Write the question (at most 500 characters).")
    kind = spec.get("kind")
    if kind not in KINDS:
        errors["kind"] = _("Must be one of: %(values)s.", values=", ".join(KINDS))
    options: list[str] = []
    raw = spec.get("options") or []
    if isinstance(raw, str):
        raw = raw.splitlines()
    if kind in ("single", "multiple"):
        options = [o.strip() for o in raw if isinstance(o, str) and o.strip()]
        if len(options) < 2 or len(options) > MAX_OPTIONS:
            errors["options"] = _("Give between 2 and %(n)s options.", n=MAX_OPTIONS)
        elif any(len(o) > MAX_OPTION or "\x00" in o for o in options):
            errors["options"] = _("An option has at most %(n)s characters.", n=MAX_OPTION)
        elif len(set(options)) != len(options):
            errors["options"] = _("Each option only once.")
    dimension = spec.get("dimension") or None
    if dimension is not None and dimension not in set(dimensions):
        errors["dimension"] = _("Choose a dimension of this questionnaire.")
    required = spec.get("required", True)
    return errors, {
        "text": text,
        "kind": kind,
        "options": options,
        "dimension": dimension,
        "required": bool(required),
    }


def create_questionnaire(
    name: str,
    *,
    dimensions: Sequence[tuple[str, str, str] | tuple[str, str]] = (),
    sections: Sequence[Mapping[str, Any]] = (),
    description: str | None = None,
    user: Any = None,
) -> Questionnaire:
    """A questionnaire with its ``dimensions`` (``(code, label, label_zh)``), ``sections``
    (mappings with ``title`` and ``questions``; a question is a mapping with ``text``,
    ``kind``, optional ``options`` (list), ``required`` (default true) and ``dimension`` (a
    code)). Raises :class:`QuestionnaireRefused` with messages by place; audited; the caller
    commits."""
    errors: dict[str, str] = {}
    clean_name = _text(name, 200)
    if clean_name is None:
        errors["name"] = _("Name the questionnaire (at most 200 characters).")
    if description is not None and len(description) > MAX_TEXT:
        errors["description"] = _("At most %(n)s characters.", n=MAX_TEXT)
    codes: list[str] = []
    for i, dim in enumerate(dimensions):
        code, label, label_zh = (list(dim) + [None])[:3]
        problem = _dimension_problems(code, label, label_zh, codes)
        if problem:
            errors[f"dimensions.{i}"] = problem
        else:
            codes.append(code)
    cleaned: list[tuple[str, list[dict[str, Any]]]] = []
    for s, section in enumerate(sections):
        title = _text(section.get("title"), 200)
        if title is None:
            errors[f"sections.{s}.title"] = _("Give the section a title (at most 200 characters).")
        questions = []
        for q, spec in enumerate(section.get("questions") or ()):
            problems, question = _question_problems(spec, codes)
            for key, message in problems.items():
                errors[f"sections.{s}.questions.{q}.{key}"] = message
            questions.append(question)
        cleaned.append((title or "", questions))
    if errors:
        raise QuestionnaireRefused(errors)
    questionnaire = Questionnaire(name=clean_name, description=(description or "").strip() or None)
    db.session.add(questionnaire)
    by_code = {}
    for position, dim in enumerate(dimensions):
        code, label, label_zh = (list(dim) + [None])[:3]
        row = Dimension(
            code=code, label=label.strip(), label_zh=(label_zh or "").strip() or None,
            position=position,
        )  # fmt: skip
        questionnaire.dimensions.append(row)
        by_code[code] = row
    db.session.flush()
    position = 0
    for s, (title, questions) in enumerate(cleaned):
        section = Section(questionnaire_id=questionnaire.id, title=title, position=s)
        db.session.add(section)
        db.session.flush()
        for question in questions:
            dim = by_code.get(question.pop("dimension"))
            db.session.add(
                Question(
                    questionnaire_id=questionnaire.id,
                    section_id=section.id,
                    dimension_id=dim.id if dim else None,
                    position=position,
                    **question,
                )
            )
            position += 1
    db.session.flush()
    audit.record(
        "create", Questionnaire.__tablename__, questionnaire.id, user_id=getattr(user, "id", None)
    )
    return questionnaire


def rename(questionnaire: Questionnaire, name: str, description: str | None) -> dict[str, str]:
    """Change the name and description; returns messages by field (nothing changed then)."""
    clean = _text(name, 200)
    if clean is None:
        return {"name": _("Name the questionnaire (at most 200 characters).")}
    if description is not None and len(description) > MAX_TEXT:
        return {"description": _("At most %(n)s characters.", n=MAX_TEXT)}
    questionnaire.name = clean
    questionnaire.description = (description or "").strip() or None
    db.session.flush()
    return {}


def add_dimension(
    questionnaire: Questionnaire, code: str, label: str, label_zh: str | None = None
) -> Dimension:
    """Add a dimension; raises :class:`QuestionnaireRefused` (key ``code``)."""
    taken = [d.code for d in questionnaire.dimensions]
    problem = _dimension_problems((code or "").strip(), label, label_zh, taken)
    if problem:
        raise QuestionnaireRefused({"code": problem})
    row = Dimension(
        questionnaire_id=questionnaire.id,
        code=code.strip(),
        label=label.strip(),
        label_zh=(label_zh or "").strip() or None,
        position=len(taken),
    )
    db.session.add(row)
    db.session.flush()
    return row


def add_section(questionnaire: Questionnaire, title: str) -> Section:
    """Add a section at the end; raises :class:`QuestionnaireRefused` (key ``title``)."""
    clean = _text(title, 200)
    if clean is None:
        raise QuestionnaireRefused(
            {"title": _("Give the section a title (at most 200 characters).")}
        )
    row = Section(
        questionnaire_id=questionnaire.id, title=clean, position=len(questionnaire.sections)
    )
    db.session.add(row)
    db.session.flush()
    return row


def add_question(questionnaire: Questionnaire, section_id: int | None, **spec: Any) -> Question:
    """Add a question at the end of section ``section_id`` (``spec`` as for
    :func:`create_questionnaire`); raises :class:`QuestionnaireRefused` by field."""
    codes = {d.code: d for d in questionnaire.dimensions}
    errors, question = _question_problems(spec, codes)
    if section_id not in {s.id for s in questionnaire.sections}:
        errors["section_id"] = _("Choose a section of this questionnaire.")
    if errors:
        raise QuestionnaireRefused(errors)
    last = db.session.scalar(
        select(func.max(Question.position)).where(Question.questionnaire_id == questionnaire.id)
    )
    dim = codes.get(question.pop("dimension"))
    row = Question(
        questionnaire_id=questionnaire.id,
        section_id=section_id,
        dimension_id=dim.id if dim else None,
        position=(last if last is not None else -1) + 1,
        **question,
    )
    db.session.add(row)
    db.session.flush()
    return row


def remove_question(question: Question) -> str | None:
    """Delete a question without answers; else the message why not."""
    if db.session.scalar(select(Answer.id).where(Answer.question_id == question.id).limit(1)):
        return _("This question has answers; it cannot be removed.")
    db.session.delete(question)
    db.session.flush()
    return None


def has_answers(questionnaire_id: int) -> bool:
    from plugins.surveys.models import Response

    return (
        db.session.scalar(
            select(Response.id).where(Response.questionnaire_id == questionnaire_id).limit(1)
        )
        is not None
    )


def questions_of(questionnaire_id: int) -> list[Question]:
    """The questions in order (sections in order, then position)."""
    return list(
        db.session.scalars(
            select(Question)
            .outerjoin(Section, Section.id == Question.section_id)
            .where(Question.questionnaire_id == questionnaire_id)
            .order_by(Section.position, Section.id, Question.position, Question.id)
        )
    )


def check_answers(
    questions: Sequence[Question], answers: Mapping[Any, Any]
) -> tuple[dict[int, Any], dict[int, str]]:
    """Validate ``answers`` (question id, as int or str, → value) against ``questions``:
    an int (or digit string) in bounds for rating/NPS, one option for single, a list of options
    for multiple, a string for text; empty values are skipped unless the question is required.
    Returns the cleaned values by question id and the messages by question id."""
    given = {str(k): v for k, v in answers.items()}
    known = {str(q.id) for q in questions}
    values: dict[int, Any] = {}
    errors: dict[int, str] = {}
    for question in questions:
        raw = given.get(str(question.id))
        if isinstance(raw, str):
            raw = raw.strip()
        empty = raw is None or raw == "" or raw == [] or raw == ()
        if empty:
            if question.required:
                errors[question.id] = _("Please answer this question.")
            continue
        if question.kind in BOUNDS:
            low, high = BOUNDS[question.kind]
            number = None
            if isinstance(raw, bool):
                number = None
            elif isinstance(raw, int):
                number = raw
            elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 4:
                number = int(raw)
            if number is None or not low <= number <= high:
                errors[question.id] = _(
                    "Choose a score from %(low)s to %(high)s.", low=low, high=high
                )
            else:
                values[question.id] = number
        elif question.kind == "single":
            if raw not in question.options:
                errors[question.id] = _("Choose one of the options.")
            else:
                values[question.id] = raw
        elif question.kind == "multiple":
            chosen = [raw] if isinstance(raw, str) else raw
            if not isinstance(chosen, list | tuple) or any(
                c not in question.options for c in chosen
            ):
                errors[question.id] = _("Choose among the options.")
            else:
                values[question.id] = [o for o in question.options if o in set(chosen)]
        else:
            if not isinstance(raw, str) or len(raw) > MAX_TEXT or "\x00" in raw:
                errors[question.id] = _("At most %(n)s characters of text.", n=MAX_TEXT)
            else:
                values[question.id] = raw
    unknown = set(given) - known
    if unknown:
        errors[0] = _(
            "These answers are to no question of this survey: %(ids)s.",
            ids=", ".join(sorted(unknown)),
        )
    return values, errors
