"""The core's own hook implementations, registered as the always-enabled plugin ``core``.

Like datasette's default plugins, the core uses the same extension points it offers: its
choice lists, the ticket workflow, the ticket SLA clocks and the clock-scan job are declared
here exactly as a plugin would declare them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core import classify, clocks, interactions, search
from core.choices import Choice
from core.clocks import ObligationKind
from core.db import db
from core.jobs import Job, daily, every
from core.models import ServiceTicket, SlaPolicy
from core.permissions import CORE_PERMISSIONS, Permission
from core.plugins import hookimpl
from core.workflow import State, Transition, Workflow

#: Working minutes to first response and to resolution per priority, when a company has set
#: no SLA policy of its own (documented in docs/sla.md).
DEFAULT_SLA = {
    "urgent": (30, 240),
    "high": (60, 480),
    "normal": (240, 1620),
    "low": (480, 2700),
}

CHOICES = {
    "customer_kind": [
        ("consumer", "Consumer", "消费客户"),
        ("business", "Business buyer", "商用客户"),
        ("intermediary", "Intermediary", "中间客户"),
        ("public_interest", "Public interest", "公利客户"),
        ("internal", "Internal", "内部客户"),
    ],
    "channel_type": [
        ("direct", "Direct", "直销"),
        ("agent", "Agent", "代理商"),
        ("distributor", "Distributor / dealer", "经销商"),
        ("ecommerce", "E-commerce", "电子商务"),
        ("oem", "OEM", "OEM"),
    ],
    "ticket_type": [
        ("inquiry", "Inquiry", "咨询"),
        ("complaint", "Complaint", "投诉"),
        ("repair", "Repair", "报修"),
        ("suggestion", "Suggestion", "建议"),
    ],
    "ticket_priority": [
        ("urgent", "Urgent", "紧急"),
        ("high", "High", "高"),
        ("normal", "Normal", "普通"),
        ("low", "Low", "低"),
    ],
    "intake_channel": [
        ("phone", "Phone", "电话"),
        ("email", "E-mail", "邮件"),
        ("web", "Web / app", "网站/应用"),
        ("wechat", "WeChat", "微信"),
        ("front_desk", "Front desk", "前台"),
        ("field", "Field staff", "现场人员"),
    ],
    #: How a customer can be contacted: the channels consent is recorded for (core.consent).
    "contact_channel": [
        ("phone", "Phone call", "电话"),
        ("sms", "SMS", "短信"),
        ("email", "E-mail", "邮件"),
        ("wechat", "WeChat", "微信"),
    ],
    "interaction_kind": [
        ("call", "Call", "电话"),
        ("visit", "Visit", "拜访"),
        ("email", "E-mail", "邮件"),
        ("wechat", "WeChat message", "微信"),
        ("meeting", "Meeting", "会议"),
        ("follow_up", "Follow-up", "回访"),
    ],
    "customer_status": [
        ("potential", "Prospect", "潜在客户"),
        ("existing", "Customer", "现有客户"),
        ("inactive", "Inactive", "休眠客户"),
        ("lost", "Lost", "流失客户"),
    ],
    "decision_role": [
        ("buyer", "Buyer", "购买者"),
        ("influencer", "Influencer", "影响者"),
        ("decider", "Decider", "决策者"),
        ("approver", "Approver", "批准者"),
        ("user", "User", "使用者"),
        ("gatekeeper", "Gatekeeper", "把关者"),
    ],
}

SERVICE_ROLES = ("admin", "manager", "service_agent")

TICKET_WORKFLOW = Workflow(
    name="ticket",
    model=ServiceTicket,
    label="Service ticket",
    label_zh="服务工单",
    initial="new",
    states=(
        State("new", "New", "新建"),
        State("assigned", "Assigned", "已分派"),
        State("in_progress", "In progress", "处理中"),
        State("waiting_customer", "Waiting on customer", "等待客户"),
        State("resolved", "Resolved", "已解决", "done"),
        State("closed", "Closed", "已关闭", "done"),
        State("cancelled", "Cancelled", "已取消", "cancelled"),
    ),
    transitions=(
        Transition("assign", ("new",), "assigned", "Assign", "分派", SERVICE_ROLES),
        Transition("start", ("new", "assigned"), "in_progress", "Start work", "开始处理"),
        Transition(
            "wait",
            ("in_progress",),
            "waiting_customer",
            "Wait on customer",
            "等待客户",
            inputs=("comment",),
        ),
        Transition("resume", ("waiting_customer",), "in_progress", "Resume", "继续处理"),
        Transition(
            "resolve",
            ("assigned", "in_progress", "waiting_customer"),
            "resolved",
            "Resolve",
            "解决",
            inputs=("comment",),
        ),
        Transition("close", ("resolved",), "closed", "Close", "关闭", SERVICE_ROLES),
        Transition(
            "reopen",
            ("resolved", "closed"),
            "in_progress",
            "Reopen",
            "重新打开",
            inputs=("comment",),
        ),
        Transition(
            "cancel",
            ("new", "assigned"),
            "cancelled",
            "Cancel",
            "取消",
            SERVICE_ROLES,
            inputs=("comment",),
        ),
    ),
)


def on_core_workflow(ticket: ServiceTicket) -> bool:
    """Whether ``ticket`` runs on the core's ticket workflow (its SLA clocks are the core's)."""
    return ticket.workflow in (None, TICKET_WORKFLOW.name)


def sla_minutes(ticket: ServiceTicket) -> tuple[int, int]:
    """(first response, resolution) working minutes for ``ticket``'s priority."""
    policy = db.session.scalars(
        select(SlaPolicy).where(SlaPolicy.priority == ticket.priority)
    ).first()
    if policy is not None:
        return policy.first_response_minutes, policy.resolution_minutes
    return DEFAULT_SLA.get(ticket.priority, DEFAULT_SLA["normal"])


@hookimpl
def guanxi_choices() -> list[Choice]:
    return [
        Choice(list_name, value, label, label_zh)
        for list_name, values in {**CHOICES, **classify.LABELS}.items()
        for value, label, label_zh in values
    ]


@hookimpl
def guanxi_permissions() -> list[Permission]:
    return list(CORE_PERMISSIONS)


@hookimpl
def guanxi_workflows() -> list[Workflow]:
    return [TICKET_WORKFLOW]


@hookimpl
def guanxi_obligation_kinds() -> list[ObligationKind]:
    return [
        ObligationKind(
            name="ticket.first_response",
            model=ServiceTicket,
            target=lambda t: sla_minutes(t)[0],
            label="First response",
            label_zh="首次响应",
            met_states=(
                "assigned",
                "in_progress",
                "waiting_customer",
                "resolved",
                "closed",
                "cancelled",
            ),
            link="/tickets/{id}",
            applies=on_core_workflow,
        ),
        ObligationKind(
            name="ticket.resolution",
            model=ServiceTicket,
            target=lambda t: sla_minutes(t)[1],
            label="Resolution",
            label_zh="解决时限",
            met_states=("resolved", "closed", "cancelled"),
            pause_states=("waiting_customer",),
            link="/tickets/{id}",
            applies=on_core_workflow,
        ),
    ]


@hookimpl
def guanxi_jobs() -> list[Job]:
    return [
        Job(
            "clocks.scan",
            lambda company: f"{clocks.scan()} escalated",
            every(5),
            label="Deadline clocks: warn and escalate",
            label_zh="时限检查：预警与升级",
            per_company=False,
        ),
        Job(
            "customers.classify",
            classify.run_job,
            daily("03:00"),
            label="Customers: recompute value tier, loyalty and lifecycle stage",
            label_zh="客户分级：重算价值等级、忠诚度与生命周期",
        ),
        Job(
            "customers.search_index",
            search.refresh_job,
            every(1),
            label="Customer search: index the customers added or changed since the last run",
            label_zh="客户搜索：为新增或修改的客户建立索引",
            per_company=False,
        ),
        Job(
            "interactions.overdue",
            interactions.remind_overdue,
            daily("08:30"),
            label="Next steps: remind each user of their overdue ones",
            label_zh="待办跟进：提醒逾期未完成的跟进",
        ),
    ]


@hookimpl
def guanxi_after_transition(subject: Any, to_state: str, at: Any) -> None:
    """Move the subject's clocks; stamp a ticket's resolution and closing moments."""
    clocks.on_transition(subject, to_state, at=at)
    if isinstance(subject, ServiceTicket):
        if to_state == "resolved":
            subject.resolved_at = at
        elif to_state == "closed":
            subject.closed_at = at
        elif to_state == "in_progress":
            subject.resolved_at = subject.closed_at = None


@hookimpl
def guanxi_api_resources() -> list[Any]:
    from core.api.records import CORE_RESOURCES

    return [resource() for resource in CORE_RESOURCES]


@hookimpl
def guanxi_reports() -> list[Any]:
    from core.builtin_reports import REPORTS

    return list(REPORTS)


@hookimpl
def guanxi_record_panels(subject_type: str, subject: Any) -> list[Any]:
    """The *Consent* box on a customer's page (when an enabled plugin declares a purpose)."""
    if subject_type != "customer":
        return []
    from core.web.consent import panel

    found = panel(subject)
    return [found] if found is not None else []


@hookimpl
def guanxi_dashboard_widgets(company: Any, user: Any) -> list[Any]:
    """Small report charts for the user's role, each linking to its full report."""
    from core.web.reports import dashboard_widgets

    return dashboard_widgets(user)
