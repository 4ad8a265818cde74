"""Background tasks: long work (imports, recomputes) run outside the request, with progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow
from core.tenancy import TenantMixin

STATUSES = ("queued", "running", "done", "failed")


class BackgroundTask(TenantMixin, db.Model):
    """One run of long work for a company, started by ``user_id`` (see :mod:`core.tasks`).

    ``target`` is the dotted path of the function that does the work (``core.importer:run``)
    and ``params`` its JSON keyword arguments, so any worker -- a local thread or a Celery
    worker on another machine -- can run it from the row alone. ``done`` of ``total`` is the
    progress; ``result`` what the work returned (or, while it runs, the checkpoint it keeps
    for a resume); ``error`` why it failed.
    """

    __tablename__ = "background_task"
    __table_args__ = (Index("ix_background_task_company_id_kind", "company_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    done: Mapped[int] = mapped_column(default=0)
    total: Mapped[int | None]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    def __repr__(self) -> str:
        return f"<BackgroundTask {self.id} {self.kind} {self.status}>"
