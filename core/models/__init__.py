"""The core's models. Importing this package registers every core table."""

from core.models.audit import AuditLog
from core.models.channel import Channel, ChannelClaim
from core.models.clock import CalendarRecord, Obligation
from core.models.comment import Comment
from core.models.company import Company, Team
from core.models.consent import Consent
from core.models.customer import Contact, Customer, CustomerTag, Tag
from core.models.interaction import Interaction
from core.models.jobs import JobRun
from core.models.notification import Notification
from core.models.plugin import CompanyPlugin
from core.models.setting import CompanySetting
from core.models.task import BackgroundTask
from core.models.ticket import ServiceTicket, SlaPolicy
from core.models.token import ApiToken
from core.models.user import Membership, User
from core.models.workflow import WorkflowHistory

__all__ = [
    "ApiToken",
    "AuditLog",
    "BackgroundTask",
    "CalendarRecord",
    "Channel",
    "ChannelClaim",
    "Comment",
    "Consent",
    "Company",
    "CompanyPlugin",
    "CompanySetting",
    "Contact",
    "Customer",
    "CustomerTag",
    "Interaction",
    "JobRun",
    "Membership",
    "Notification",
    "Obligation",
    "ServiceTicket",
    "SlaPolicy",
    "Tag",
    "Team",
    "User",
    "WorkflowHistory",
]
