"""Webhook endpoints (a tenant's receivers), the messages fanned out to them, and each attempt."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.crypto import Sealed, SealedColumn
from hub.core.db import Base, Entity, TenantOwned, enum_column

SECRET_FIELD = "webhook_endpoints.secret"  # noqa: S105 - a sealed field name
PREVIOUS_SECRET_FIELD = "webhook_endpoints.previous_secret"  # noqa: S105 - a field name
RESPONSE_BODY_LIMIT = 2048


class MessageStatus(enum.StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookEndpoint(Entity, TenantOwned, Base):
    __tablename__ = "webhook_endpoints"

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    # Patterns with `*` wildcards ("complaint.*"); empty matches nothing.
    event_types: Mapped[list[Any]]
    # Contract numbers; empty means every contract (and events about none).
    contracts: Mapped[list[Any]]
    is_enabled: Mapped[bool] = mapped_column(default=True)
    include_phi: Mapped[bool] = mapped_column(default=False)
    # When on, a message waits while an earlier one to this endpoint is still pending.
    is_ordered: Mapped[bool] = mapped_column(default=False)
    max_concurrency: Mapped[int] = mapped_column(default=8)
    rate_limit_per_second: Mapped[int] = mapped_column(default=100)
    secret: Mapped[Sealed] = mapped_column(SealedColumn())
    # The secret before the last rotation, still signed with until it expires.
    previous_secret: Mapped[Sealed | None] = mapped_column(SealedColumn())
    previous_secret_expires_at: Mapped[datetime | None]
    # Start of the current run of failed attempts (cleared by any success).
    failing_since: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))


class WebhookMessage(Entity, TenantOwned, Base):
    """One event for one endpoint; its id is the `webhook-id` the receiver dedupes on."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        # Fan-out twice (a re-dispatched event) makes no second message.
        UniqueConstraint("event_id", "endpoint_id"),
        # The endpoint's message list, the ordering check and `recover`.
        Index("ix_webhook_messages_endpoint_status", "endpoint_id", "status", "event_id"),
        # The sweeper: pending messages whose next attempt is overdue.
        Index("ix_webhook_messages_due", "status", "next_attempt_at"),
        # The drainer: an endpoint's due messages, the longest due first.
        Index("ix_webhook_messages_endpoint_due", "endpoint_id", "status", "next_attempt_at"),
    )

    endpoint_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    # Indexed by the unique constraint above, which leads with it.
    event_id: Mapped[UUID] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(100))
    status: Mapped[MessageStatus] = mapped_column(
        enum_column(MessageStatus), default=MessageStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # `attempts` when the current retry schedule began (a resend starts a fresh schedule).
    schedule_start: Mapped[int] = mapped_column(default=0)
    # Also a lease: set ahead while a drainer has it claimed, so no other drainer takes it.
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))


class WebhookAttempt(Entity, TenantOwned, Base):
    __tablename__ = "webhook_attempts"

    message_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    status_code: Mapped[int | None]
    duration_ms: Mapped[int]
    # The first 2 KB of what the receiver answered (decoded leniently).
    response_body: Mapped[str | None] = mapped_column(Text())
    error_class: Mapped[str | None] = mapped_column(String(100))
    is_success: Mapped[bool]
