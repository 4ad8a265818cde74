"""The surveys plugin's tables (all named ``surveys_*``, all per company: ``TenantMixin``).

A **questionnaire** has **dimensions** (what its questions roll up into: 服务质量, 响应速度…),
**sections** and **questions**. A **campaign** sends one questionnaire to customers: to a
segment of them at launch, or to the customer of each service ticket that closes while it
runs. Each customer asked holds an **invitation** (its one-time link); the answers come back as
one **response** per invitation with one **answer** row per question (one per option chosen
for a multiple-choice question). See docs/surveys.md.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extend import TenantMixin, UTCDateTime, db, utcnow

#: Question kinds: a 1-5 rating, a 0-10 likelihood to recommend, one or several options, text.
KINDS = ("rating", "nps", "single", "multiple", "text")
#: How a campaign chooses whom to ask.
TRIGGERS = ("segment", "ticket_closed")
#: Campaign states.
STATES = ("draft", "running", "finished")
#: How a response came in.
MODES = ("link", "phone")


class Questionnaire(TenantMixin, db.Model):
    """A questionnaire (问卷): a name, a description shown to the respondent, its parts."""

    __tablename__ = "surveys_questionnaire"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    dimensions: Mapped[list[Dimension]] = relationship(
        back_populates="questionnaire",
        cascade="all, delete-orphan",
        order_by="(Dimension.position, Dimension.id)",
    )
    sections: Mapped[list[Section]] = relationship(
        back_populates="questionnaire",
        cascade="all, delete-orphan",
        order_by="(Section.position, Section.id)",
    )
    questions: Mapped[list[Question]] = relationship(
        back_populates="questionnaire",
        cascade="all, delete-orphan",
        order_by="(Question.position, Question.id)",
    )


class Dimension(TenantMixin, db.Model):
    """What questions roll up into (维度): ``code`` (``cleaning``) and its labels."""

    __tablename__ = "surveys_dimension"
    __table_args__ = (UniqueConstraint("questionnaire_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    questionnaire_id: Mapped[int] = mapped_column(
        ForeignKey("surveys_questionnaire.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(120))
    label_zh: Mapped[str | None] = mapped_column(String(120))
    position: Mapped[int] = mapped_column(default=0)

    questionnaire: Mapped[Questionnaire] = relationship(back_populates="dimensions")

    @property
    def text(self) -> str:
        from core.i18n import pick

        return pick(self.label, self.label_zh)


class Section(TenantMixin, db.Model):
    """A titled part of a questionnaire; its questions are shown together."""

    __tablename__ = "surveys_section"

    id: Mapped[int] = mapped_column(primary_key=True)
    questionnaire_id: Mapped[int] = mapped_column(
        ForeignKey("surveys_questionnaire.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)

    questionnaire: Mapped[Questionnaire] = relationship(back_populates="sections")


class Question(TenantMixin, db.Model):
    """A question: ``kind`` (one of :data:`KINDS`), its ``options`` (choice kinds), whether it
    is ``required``, its place (section, position) and the dimension it counts toward."""

    __tablename__ = "surveys_question"

    id: Mapped[int] = mapped_column(primary_key=True)
    questionnaire_id: Mapped[int] = mapped_column(
        ForeignKey("surveys_questionnaire.id", ondelete="CASCADE"), index=True
    )
    section_id: Mapped[int | None] = mapped_column(
        ForeignKey("surveys_section.id", ondelete="CASCADE"), index=True
    )
    dimension_id: Mapped[int | None] = mapped_column(
        ForeignKey("surveys_dimension.id", ondelete="SET NULL"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(String(500))
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    required: Mapped[bool] = mapped_column(default=True)

    questionnaire: Mapped[Questionnaire] = relationship(back_populates="questions")


class Campaign(TenantMixin, db.Model):
    """A survey campaign (调查活动): one questionnaire sent to customers.

    ``trigger`` ``segment``: at launch every customer matching ``audience`` (a mapping of
    customer ``kind``, ``value_tier`` and ``status`` to the values allowed; empty: every
    customer) is invited. ``ticket_closed``: while running, the customer of each service
    ticket that closes (of ``ticket_types``, empty: any type) is invited. ``channel`` is how
    invitations go out (a value of the customer field ``surveys__preferred_channel``).
    ``starts_on``/``ends_on`` bound the campaign's period; ``state`` is ``draft``, ``running``
    or ``finished``.
    """

    __tablename__ = "surveys_campaign"
    __table_args__ = (Index("ix_surveys_campaign_trigger", "company_id", "state", "trigger"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    questionnaire_id: Mapped[int] = mapped_column(
        ForeignKey("surveys_questionnaire.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(20), default="segment")
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ticket_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    channel: Mapped[str] = mapped_column(String(20), default="sms")
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20), default="draft")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    questionnaire: Mapped[Questionnaire] = relationship()


class Invitation(TenantMixin, db.Model):
    """One customer asked in one campaign (about one ticket, for ``ticket_closed``).

    The answer link carries a token; only its SHA-256 (``token_hash``) is stored, as for API
    tokens (the token itself is derived from the app's secret key and the invitation's id, see
    :func:`plugins.surveys.campaigns.token_for`). ``answered_at`` set: the link is used up.
    """

    __tablename__ = "surveys_invitation"
    __table_args__ = (
        UniqueConstraint("campaign_id", "ticket_id"),
        Index("ix_surveys_invitation_campaign", "company_id", "campaign_id", "id"),
        Index("ix_surveys_invitation_customer", "company_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("surveys_campaign.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_ticket.id", ondelete="SET NULL")
    )
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    channel: Mapped[str | None] = mapped_column(String(20))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Response(TenantMixin, db.Model):
    """The answers to one invitation: by link (``mode`` ``link``) or entered by a member of
    staff on the phone (``phone``, ``user_id`` who entered them). Campaign, questionnaire and
    customer are copied from the invitation so results group without joins."""

    __tablename__ = "surveys_response"
    __table_args__ = (
        Index("ix_surveys_response_campaign", "company_id", "campaign_id", "answered_at"),
        Index("ix_surveys_response_questionnaire", "company_id", "questionnaire_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("surveys_invitation.id", ondelete="CASCADE"), unique=True
    )
    campaign_id: Mapped[int] = mapped_column(ForeignKey("surveys_campaign.id", ondelete="CASCADE"))
    questionnaire_id: Mapped[int] = mapped_column(
        ForeignKey("surveys_questionnaire.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    mode: Mapped[str] = mapped_column(String(10), default="link")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    answers: Mapped[list[Answer]] = relationship(
        back_populates="response", cascade="all, delete-orphan", order_by="Answer.id"
    )


class Answer(TenantMixin, db.Model):
    """One answer: ``score`` for rating (1-5) and NPS (0-10) questions, ``choice`` for a
    chosen option (one row per option of a multiple-choice answer), ``text`` for text."""

    __tablename__ = "surveys_answer"
    __table_args__ = (Index("ix_surveys_answer_question", "company_id", "question_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    response_id: Mapped[int] = mapped_column(
        ForeignKey("surveys_response.id", ondelete="CASCADE"), index=True
    )
    question_id: Mapped[int] = mapped_column(ForeignKey("surveys_question.id", ondelete="CASCADE"))
    score: Mapped[int | None] = mapped_column()
    choice: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)

    response: Mapped[Response] = relationship(back_populates="answers")
