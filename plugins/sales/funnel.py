"""Sales part: the opportunity funnel (销售漏斗, DOMAIN §4).

Stages are company data (:class:`~plugins.sales.models.Stage`), seeded from :data:`DEFAULT_STAGES`
when the plugin is enabled: the seed's funnel from target customer to collecting payment, then
won and lost. The workflow ``sales_opportunity`` is built per company from those rows
(``Workflow.per_company``): from every open stage an opportunity may move to any other open stage
(``to_<key>``, the kanban's drag), be won (``win``) or lost (``lose``, which needs a
``lost_reason``); a closed one may be reopened (``reopen``) into the first open stage.
"""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context
from sqlalchemy import select

from core.extend import State, Transition, Workflow, company_scope, db
from plugins.sales.models import Opportunity, Stage

WORKFLOW = "sales_opportunity"

#: ``(key, label, label_zh, probability %, outcome)`` in funnel order.
DEFAULT_STAGES: tuple[tuple[str, str, str, int, str], ...] = (
    ("target", "Target customer", "目标客户", 5, "open"),
    ("analysis", "Customer analysis", "客户分析", 10, "open"),
    ("trust", "Build trust", "建立信任", 20, "open"),
    ("needs", "Uncover needs", "挖掘需求", 35, "open"),
    ("value", "Present value", "呈现价值", 50, "open"),
    ("commitment", "Win commitment", "赢取承诺", 75, "open"),
    ("payment", "Collect payment", "回收账款", 90, "open"),
    ("won", "Won", "赢单", 100, "won"),
    ("lost", "Lost", "输单", 0, "lost"),
)

CATEGORY = {"open": "open", "won": "done", "lost": "cancelled"}


def enabled(company: Any) -> None:
    """Seed the default stages for ``company`` (idempotent: existing keys are kept as edited)."""
    with company_scope(company.id):
        have = set(db.session.scalars(select(Stage.key)))
        for sequence, (key, label, label_zh, probability, outcome) in enumerate(DEFAULT_STAGES):
            if key not in have:
                db.session.add(
                    Stage(
                        key=key,
                        label=label,
                        label_zh=label_zh,
                        sequence=(sequence + 1) * 10,
                        probability=probability,
                        outcome=outcome,
                    )
                )
        db.session.flush()


def stages(company_id: int) -> list[Stage]:
    """The company's stages in funnel order (inactive ones included), cached per request."""
    cache: dict[int, list[Stage]] | None = None
    if has_request_context():
        cache = g.setdefault("sales_stages", {})
        if company_id in cache:
            return cache[company_id]
    with company_scope(company_id):
        rows = list(db.session.scalars(select(Stage).order_by(Stage.sequence, Stage.id)))
    if cache is not None:
        cache[company_id] = rows
    return rows


def build_workflow(rows: list[tuple[str, str, str, str, bool]], plugin: str = "sales") -> Workflow:
    """The opportunity workflow over stages ``(key, label, label_zh, outcome, active)``."""
    states = tuple(State(key, label, zh, CATEGORY[outcome]) for key, label, zh, outcome, _ in rows)
    open_keys = [key for key, _, _, outcome, _ in rows if outcome == "open"]
    active_open = [
        (key, label, zh) for key, label, zh, outcome, active in rows if outcome == "open" and active
    ]
    won = next((r for r in rows if r[3] == "won"), None)
    lost = next((r for r in rows if r[3] == "lost"), None)
    transitions: list[Transition] = [
        Transition(
            f"to_{key}",
            tuple(k for k in open_keys if k != key),
            key,
            f"Move to {label}",
            f"推进到{zh}",
        )
        for key, label, zh in active_open
    ]
    if won is not None:
        transitions.append(Transition("win", tuple(open_keys), won[0], "Won", "赢单"))
    if lost is not None:
        transitions.append(
            Transition("lose", tuple(open_keys), lost[0], "Lost", "输单", inputs=("lost_reason",))
        )
    if active_open and (won or lost):
        closed = tuple(r[0] for r in (won, lost) if r is not None)
        transitions.append(Transition("reopen", closed, active_open[0][0], "Reopen", "重新打开"))
    return Workflow(
        name=WORKFLOW,
        model=Opportunity,
        states=states,
        transitions=tuple(transitions),
        initial=active_open[0][0] if active_open else rows[0][0],
        label="Opportunity",
        label_zh="销售机会",
        plugin=plugin,
        per_company=company_workflow,
    )


def company_workflow(company_id: int) -> Workflow:
    """The opportunity workflow of ``company_id``, from its stage rows (defaults if none)."""
    rows = [(s.key, s.label, s.label_zh, s.outcome, s.active) for s in stages(company_id)]
    if not rows:
        rows = [(k, label, zh, outcome, True) for k, label, zh, _, outcome in DEFAULT_STAGES]
    return build_workflow(rows)


def workflows() -> list[Workflow]:
    """Declared once with the default stages; each company's own is built from its rows."""
    return [
        build_workflow(
            [(k, label, zh, outcome, True) for k, label, zh, _, outcome in DEFAULT_STAGES]
        )
    ]
