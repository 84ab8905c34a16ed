"""The outbox: events written in the same transaction as the change that caused them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.db import Base, utcnow
from hub.core.db.base import IdMixin
from hub.core.ids import TenantID


class Event(IdMixin, Base):
    __tablename__ = "events"
    __table_args__ = (
        # Which events are still waiting, oldest first (a dispatch of pending events).
        Index("ix_events_undispatched", "dispatched_at", "occurred_at"),
        # The sweeper's question: the same, the least tried first (only waiting rows).
        Index(
            "ix_events_sweep",
            "attempts",
            "occurred_at",
            postgresql_where=text("dispatched_at IS NULL"),
            sqlite_where=text("dispatched_at IS NULL"),
        ),
    )

    # Null for platform events (operator actions that belong to no tenant).
    tenant_id: Mapped[TenantID | None] = mapped_column(
        Uuid(), ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
