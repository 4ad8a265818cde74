"""Survey results: averages by dimension over time, CSAT and NPS -- each one SQL statement.

Python API (read-only; ``subject`` is a :class:`~plugins.surveys.models.Campaign` or a
:class:`~plugins.surveys.models.Questionnaire`, counting every campaign of it)::

    from plugins.surveys import results

    results.results_by_dimension(campaign, period="quarter")   # [DimensionResult, ...]
    results.csat(campaign)                                      # Csat(answers, satisfied, value)
    results.nps(questionnaire, start=date(2026, 1, 1))          # Nps(answers, ..., value)

Definitions (docs/surveys.md):

**Dimension average**
    the mean of the 1-5 ``rating`` answers of the questions of that dimension; NPS, choice and
    text questions do not count toward dimensions (different scales).
**CSAT** (customer satisfaction)
    the share, in per cent, of ``rating`` answers that are 4 or 5 among all ``rating`` answers
    (``100 × satisfied / answers``); ``None`` without answers. Per dimension, the same over
    that dimension's questions.
**NPS** (net promoter score)
    over the answers to ``nps`` questions (0-10): per cent of promoters (9-10) minus per cent
    of detractors (0-6), from -100 to 100; passives (7-8) count in the total only; ``None``
    without answers.

Periods are the month (``2026-10``) or the quarter (``2026-Q4``) of the response's
``answered_at`` in the company's time zone; ``start``/``end`` (dates, end included) narrow the
responses the same way. Results read every response of the company (no record rule: they are
aggregates, not customer lists).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Float, Integer, String, and_, case, cast, func, literal, select, type_coerce

from core.extend import Report, ReportColumn, ReportParam, date_range, db
from core.i18n import pick
from core.reports import month, months, within
from plugins.surveys.models import Answer, Campaign, Dimension, Question, Questionnaire, Response

PERIODS = ("month", "quarter")
PERIOD_LABELS = (("month", "Month", "按月"), ("quarter", "Quarter", "按季度"))


@dataclass(frozen=True)
class DimensionResult:
    """One dimension in one period (``period`` ``None``: the whole range)."""

    period: str | None
    code: str
    label: str
    answers: int
    average: float | None
    csat: float | None


@dataclass(frozen=True)
class Csat:
    answers: int
    satisfied: int
    value: float | None


@dataclass(frozen=True)
class Nps:
    answers: int
    promoters: int
    passives: int
    detractors: int
    value: float | None


def period_expr(column: Any, period: str) -> Any:
    """SQL: the month (``YYYY-MM``) or quarter (``YYYY-Qn``) of UTC timestamp ``column`` in the
    company's time zone."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    m = month(column)
    if period == "month":
        return m
    quarter = (cast(func.substr(m, 6, 2), Integer) + 2) // 3
    return type_coerce(func.substr(m, 1, 4), String) + literal("-Q") + cast(quarter, String)


def _subject(subject: Any) -> Any:
    if isinstance(subject, Campaign):
        return Response.campaign_id == subject.id
    if isinstance(subject, Questionnaire):
        return Response.questionnaire_id == subject.id
    raise TypeError("subject must be a Campaign or a Questionnaire")


def _dates(start: date | None, end: date | None) -> list[Any]:
    return within(Response.answered_at, {"start": start, "end": end})


def percent(part: Any, whole: Any) -> Any:
    """SQL: ``100 × part / whole`` as a float, NULL when ``whole`` is 0."""
    return cast(part, Float) * 100.0 / func.nullif(whole, 0)


def _satisfied() -> Any:
    return func.sum(case((Answer.score >= 4, 1), else_=0))


def dimension_statement(conditions: list[Any], period: str | None) -> Any:
    """ONE GROUP BY: per (period and) dimension, the rating answers, their mean and CSAT."""
    n = func.count(Answer.id)
    columns = [
        Dimension.code.label("code"),
        Dimension.label.label("label"),
        Dimension.label_zh.label("label_zh"),
        Dimension.position.label("position"),
        n.label("answers"),
        func.avg(cast(Answer.score, Float)).label("average"),
        percent(_satisfied(), n).label("csat"),
    ]
    group = [Dimension.id, Dimension.code, Dimension.label, Dimension.label_zh, Dimension.position]
    if period is not None:
        when = period_expr(Response.answered_at, period)
        columns.insert(0, when.label("period"))
        group.insert(0, when)
    return (
        select(*columns)
        .select_from(Answer)
        .join(Response, Response.id == Answer.response_id)
        .join(Question, Question.id == Answer.question_id)
        .join(Dimension, Dimension.id == Question.dimension_id)
        .where(Question.kind == "rating", Answer.score.is_not(None), *conditions)
        .group_by(*group)
    )


def results_by_dimension(
    subject: Any,
    period: str | None = "month",
    start: date | None = None,
    end: date | None = None,
) -> list[DimensionResult]:
    """Per period (``"month"``, ``"quarter"``, or ``None`` for the whole range) and
    dimension: the number of rating answers, their mean (1-5, two decimals) and CSAT (per
    cent, one decimal); sorted by period, then the dimension's position. One query."""
    stmt = dimension_statement([_subject(subject), *_dates(start, end)], period)
    rows = db.session.execute(stmt).mappings().all()
    out = [
        DimensionResult(
            period=r["period"] if period is not None else None,
            code=r["code"],
            label=pick(r["label"], r["label_zh"]),
            answers=int(r["answers"]),
            average=round(float(r["average"]), 2) if r["average"] is not None else None,
            csat=round(float(r["csat"]), 1) if r["csat"] is not None else None,
        )
        for r in rows
    ]
    positions = {r["code"]: r["position"] for r in rows}
    return sorted(out, key=lambda r: (r.period or "", positions[r.code], r.code))


def csat(subject: Any, start: date | None = None, end: date | None = None) -> Csat:
    """CSAT of ``subject``: the share (per cent, one decimal) of 4-5 answers among its 1-5
    ratings. One query."""
    n = func.count(Answer.id)
    row = db.session.execute(
        select(n, _satisfied(), percent(_satisfied(), n))
        .select_from(Answer)
        .join(Response, Response.id == Answer.response_id)
        .join(Question, Question.id == Answer.question_id)
        .where(Question.kind == "rating", Answer.score.is_not(None), _subject(subject))
        .where(*_dates(start, end))
    ).one()
    return Csat(
        int(row[0]), int(row[1] or 0), round(float(row[2]), 1) if row[2] is not None else None
    )


def nps(subject: Any, start: date | None = None, end: date | None = None) -> Nps:
    """NPS of ``subject``: per cent promoters (9-10) minus per cent detractors (0-6) of its
    0-10 answers (one decimal). One query."""
    n = func.count(Answer.id)
    promoters = func.sum(case((Answer.score >= 9, 1), else_=0))
    detractors = func.sum(case((Answer.score <= 6, 1), else_=0))
    row = db.session.execute(
        select(n, promoters, detractors, percent(promoters - detractors, n))
        .select_from(Answer)
        .join(Response, Response.id == Answer.response_id)
        .join(Question, Question.id == Answer.question_id)
        .where(Question.kind == "nps", Answer.score.is_not(None), _subject(subject))
        .where(*_dates(start, end))
    ).one()
    total, pro, det = int(row[0]), int(row[1] or 0), int(row[2] or 0)
    value = round(float(row[3]), 1) if row[3] is not None else None
    return Nps(total, pro, total - pro - det, det, value)


def scores_statement(conditions: list[Any]) -> Any:
    """ONE GROUP BY over campaigns: invitations (a correlated count), responses, CSAT and NPS
    with their answer counts."""
    from plugins.surveys.models import Invitation

    rating = and_(Question.kind == "rating", Answer.score.is_not(None))
    recommend = and_(Question.kind == "nps", Answer.score.is_not(None))
    ratings = func.sum(case((rating, 1), else_=0))
    satisfied = func.sum(case((and_(rating, Answer.score >= 4), 1), else_=0))
    nps_n = func.sum(case((recommend, 1), else_=0))
    promoters = func.sum(case((and_(recommend, Answer.score >= 9), 1), else_=0))
    detractors = func.sum(case((and_(recommend, Answer.score <= 6), 1), else_=0))
    invited = (
        select(func.count(Invitation.id))
        .where(Invitation.campaign_id == Campaign.id)
        .correlate(Campaign)
        .scalar_subquery()
    )
    return (
        select(
            Campaign.id.label("value"),
            Campaign.name.label("label"),
            Campaign.starts_on.label("starts_on"),
            invited.label("invited"),
            func.count(func.distinct(Response.id)).label("responses"),
            ratings.label("ratings"),
            (percent(satisfied, ratings) / 100.0).label("csat"),
            nps_n.label("nps_answers"),
            percent(promoters - detractors, nps_n).label("nps"),
        )
        .select_from(Campaign)
        .outerjoin(Response, and_(Response.campaign_id == Campaign.id, *conditions))
        .outerjoin(Answer, Answer.response_id == Response.id)
        .outerjoin(Question, Question.id == Answer.question_id)
        .group_by(Campaign.id, Campaign.name, Campaign.starts_on)
    )


# -- reports --------------------------------------------------------------------------------------


def _int(raw: Any) -> int | None:
    raw = str(raw or "")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31 else None


def questionnaire_choices() -> list[tuple[str, str]]:
    return [
        (str(i), name)
        for i, name in db.session.execute(
            select(Questionnaire.id, Questionnaire.name).order_by(Questionnaire.id.desc())
        )
    ]


def campaign_choices() -> list[tuple[str, str]]:
    return [
        (str(i), name)
        for i, name in db.session.execute(
            select(Campaign.id, Campaign.name).order_by(Campaign.id.desc())
        )
    ]


def _latest_questionnaire() -> str | None:
    found = db.session.scalar(select(func.max(Questionnaire.id)))
    return str(found) if found else None


def _trend_questionnaire(p: Mapping[str, Any]) -> int | None:
    campaign_id = _int(p.get("campaign"))
    if campaign_id:
        found = db.session.scalar(
            select(Campaign.questionnaire_id).where(Campaign.id == campaign_id)
        )
        if found:
            return found
    return _int(p.get("questionnaire"))


def _trend_query(p: Mapping[str, Any]) -> Any:
    conditions = [*within(Response.answered_at, p)]
    campaign_id = _int(p.get("campaign"))
    if campaign_id:
        conditions.append(Response.campaign_id == campaign_id)
    else:
        conditions.append(Response.questionnaire_id == (_trend_questionnaire(p) or 0))
    return dimension_statement(conditions, p.get("period") or "month")


def _dimensions_of(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(code, label)`` of the dimensions of the report's questionnaire, in order."""
    rows = db.session.execute(
        select(Dimension.code, Dimension.label, Dimension.label_zh)
        .where(Dimension.questionnaire_id == (_trend_questionnaire(p) or 0))
        .order_by(Dimension.position, Dimension.id)
    ).all()
    return [(c, pick(label, zh)) for c, label, zh in rows]


def _quarters(month_keys: list[str]) -> list[str]:
    out: list[str] = []
    for key in month_keys:
        q = f"{key[:4]}-Q{(int(key[5:7]) + 2) // 3}"
        if q not in out:
            out.append(q)
    return out


def _trend_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    period = p.get("period") or "month"
    keys = months(p)
    if period == "quarter":
        keys = _quarters(keys)
    table: dict[str, dict[str, Any]] = {k: {"label": k} for k in keys}
    for r in rows:
        row = table.setdefault(r["period"], {"label": r["period"]})
        row[f"d_{r['code']}"] = round(float(r["average"]), 2) if r["average"] is not None else None
        row["answers"] = row.get("answers", 0) + int(r["answers"])
    return [table[k] for k in sorted(table)]


def _trend_columns(p: Mapping[str, Any]) -> list[ReportColumn]:
    period = p.get("period") or "month"
    head = ("Month", "月份") if period == "month" else ("Quarter", "季度")
    return [
        ReportColumn("label", head[0], head[1], "text"),
        *[ReportColumn(f"d_{code}", text, text, "number") for code, text in _dimensions_of(p)],
        ReportColumn("answers", "Rating answers", "评分答案数"),
    ]


def _trend_series(p: Mapping[str, Any]) -> list[str]:
    return [f"d_{code}" for code, _text in _dimensions_of(p)]


def _scores_query(p: Mapping[str, Any]) -> Any:
    stmt = scores_statement(list(within(Response.answered_at, p)))
    q_id = _int(p.get("questionnaire"))
    if q_id:
        stmt = stmt.where(Campaign.questionnaire_id == q_id)
    return stmt


def _scores_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        invited, responses = int(r["invited"] or 0), int(r["responses"] or 0)
        out.append(
            {
                "value": r["value"],
                "label": r["label"],
                "invited": invited,
                "responses": responses,
                "rate": responses / invited if invited else None,
                "csat": float(r["csat"]) if r["csat"] is not None else None,
                "nps": round(float(r["nps"]), 1) if r["nps"] is not None else None,
                "nps_answers": int(r["nps_answers"] or 0),
            }
        )
    return sorted(out, key=lambda r: -r["value"])


def _campaign_link(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    return f"/surveys/campaigns/{row['value']}"


def reports() -> list[Report]:
    """Results by dimension over time, and CSAT/NPS by campaign."""
    return [
        Report(
            name="surveys_dimensions",
            label="Survey results by dimension",
            label_zh="满意度调查分维度结果",
            description="The mean of the 1-5 ratings of each dimension per month or quarter, "
            "for one questionnaire (all its campaigns) or one campaign.",
            description_zh="某问卷（全部调查活动）或某次调查活动中，各维度 1-5 分评分的月度"
            "或季度平均分。",
            params=(
                ReportParam(
                    "questionnaire",
                    "Questionnaire",
                    "问卷",
                    choices=questionnaire_choices,
                    default=_latest_questionnaire,
                ),
                ReportParam("campaign", "Campaign", "调查活动", choices=campaign_choices),
                ReportParam("period", "Period", "周期", choices=PERIOD_LABELS, default="month"),
                *date_range(365, "Answered", "答卷日期"),
            ),
            query=_trend_query,
            shape=_trend_shape,
            columns=_trend_columns,
            series=_trend_series,
            chart="line",
            group="surveys",
            order=300,
        ),
        Report(
            name="surveys_scores",
            label="CSAT and NPS by campaign",
            label_zh="各调查活动 CSAT 与 NPS",
            description="Per campaign: customers invited, responses, response rate, CSAT (share "
            "of 4-5 among the 1-5 ratings) and NPS (% promoters 9-10 minus % detractors 0-6).",
            description_zh="每次调查活动的邀请数、答卷数、回收率、CSAT（1-5 分评分中 4-5 分"
            "的占比）与 NPS（推荐者 9-10 分占比减去贬损者 0-6 分占比）。",
            params=(
                ReportParam(
                    "questionnaire", "Questionnaire", "问卷", choices=questionnaire_choices
                ),
                *date_range(None, "Answered", "答卷日期"),
            ),
            query=_scores_query,
            shape=_scores_shape,
            columns=(
                ReportColumn("label", "Campaign", "调查活动", "text"),
                ReportColumn("invited", "Invited", "邀请数"),
                ReportColumn("responses", "Responses", "答卷数"),
                ReportColumn("rate", "Response rate", "回收率", "percent"),
                ReportColumn("csat", "CSAT", "CSAT", "percent", color="#2f855a"),
                ReportColumn("nps", "NPS", "NPS", "number"),
            ),
            series=("csat",),
            chart="hbar",
            drill=_campaign_link,
            group="surveys",
            order=301,
        ),
    ]


def no_data_text() -> str:
    return _("No answers yet.")
