"""The small agent team the insurance leads tests (web and API) share."""

from __future__ import annotations

from typing import Any

from core.tenancy import company_scope
from plugins.insurance import agents


def lead_team(db: Any, insurer: Any, make_user: Any, *, viewer: bool = False) -> dict[str, Any]:
    """A manager; a team lead 赵经理 (an agent with a login, role sales_rep) with one agent
    钱代理 below her; another agent 孙代理 on her own; with ``viewer``, a viewer. Each agent is an
    insurance-agent channel licensed for life. Returns the users and the agents' and channels'
    ids."""
    manager = make_user("manager", insurer)
    rep = make_user("sales_rep", insurer)
    people: dict[str, Any] = {"manager": manager, "rep": rep}
    if viewer:
        people["viewer"] = make_user("viewer", insurer)
    with company_scope(insurer.id):

        def agent(name, upline=None, user=None):
            return agents.create_agent(
                agents.AgentInput(
                    channel_name=name,
                    channel_type="insurance_agent",
                    licence_number=f"L-{name}",
                    licence_classes=["life"],
                    upline_id=upline.id if upline else None,
                    user_id=user.id if user else None,
                )
            )

        boss = agent("赵经理", user=rep)
        below = agent("钱代理", upline=boss)
        other = agent("孙代理")
        db.session.commit()
        return people | {
            "boss": boss.id,
            "below": below.id,
            "other": other.id,
            "boss_channel": boss.channel_id,
            "below_channel": below.channel_id,
            "other_channel": other.channel_id,
        }
