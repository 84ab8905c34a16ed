"""Alerts (one row per raised condition), who each is for, the emails sent about them, and
each user's email preference."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.db import Base, Entity, TenantOwned, enum_column


class AlertKind(enum.StrEnum):
    KEY_ROTATION_DUE = "key.rotation_due"
    KEY_INVALID = "key.invalid"
    KEY_COMPROMISED = "key.compromised"
    KEY_ACCESS_LOST = "key.access_lost"
    KEY_ORPHANED = "key.orphaned"
    CONTRACT_UNCOVERED = "contract.uncovered"
    SYNC_FAILING = "sync.failing"
    COMPLAINT_DUE_SOON = "complaint.due_soon"
    COMPLAINT_OVERDUE = "complaint.overdue"
    # An upload's outcome stayed unknown and no download could tell: a person must check HPMS.
    RESOLUTION_UNCONFIRMED = "resolution.unconfirmed"
    WEBHOOK_ENDPOINT_DISABLED = "webhook.endpoint_disabled"


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"  # always emailed at once, whatever the recipient's preference


class AlertState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # someone has seen it; it stays until the condition clears
    RESOLVED = "resolved"  # the condition cleared (set by the rules, never by hand)


class SubjectType(enum.StrEnum):
    KEY = "key"
    CONTRACT = "contract"
    COMPLAINT = "complaint"
    ENDPOINT = "endpoint"


class EmailMode(enum.StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"  # non-critical alerts gathered into one email a day
    OFF = "off"  # no email, except for critical alerts


class EmailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the job's retries
    SKIPPED = "skipped"  # no SMTP server configured, or the recipient left (last_error)


class Alert(Entity, TenantOwned, Base):
    """A condition that needs someone's attention. Its texts name keys by their CMS key ID,
    contracts by number and complaints by CMS complaint ID: never a secret, never PHI."""

    __tablename__ = "alerts"
    __table_args__ = (
        # One unresolved alert per condition: a second raise finds the first instead.
        Index(
            "uq_alerts_open_dedupe",
            "tenant_id",
            "dedupe_key",
            unique=True,
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
        Index("ix_alerts_tenant_state", "tenant_id", "state", "raised_at"),
        Index("ix_alerts_kind_open", "kind", "resolved_at"),
    )

    kind: Mapped[AlertKind] = mapped_column(enum_column(AlertKind, 40))
    severity: Mapped[Severity] = mapped_column(enum_column(Severity))
    state: Mapped[AlertState] = mapped_column(enum_column(AlertState), default=AlertState.OPEN)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[SubjectType] = mapped_column(enum_column(SubjectType))
    subject_id: Mapped[UUID]
    subject_label: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text())
    next_action: Mapped[str] = mapped_column(Text())
    # Rises as a condition escalates (rotation due in 14, then 3, then 1 days).
    stage: Mapped[int] = mapped_column(default=1)
    details: Mapped[dict[str, Any]]
    raised_at: Mapped[datetime]
    notified_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    resolved_at: Mapped[datetime | None]
    resolved_reason: Mapped[str | None] = mapped_column(String(200))


class AlertRecipient(Entity, TenantOwned, Base):
    """Who an alert is for: a hub user, or only an address (a technical point of contact
    who has no hub account)."""

    __tablename__ = "alert_recipients"

    alert_id: Mapped[UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(40))  # responsible_party, tenant_admin, …


class AlertEmail(Entity, TenantOwned, Base):
    """One email owed to one address about one stage of an alert: sent at once by a job,
    or gathered into that address's daily digest."""

    __tablename__ = "alert_emails"
    __table_args__ = (
        Index("ix_alert_emails_pending", "status", "is_digest", "created_at"),
        Index("ix_alert_emails_address", "email", "status"),
    )

    alert_id: Mapped[UUID] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    stage: Mapped[int]
    is_digest: Mapped[bool] = mapped_column(default=False)
    status: Mapped[EmailStatus] = mapped_column(
        enum_column(EmailStatus), default=EmailStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))


class AlertPreference(Entity, Base):
    """A user's own choice of alert email (across every tenant they belong to)."""

    __tablename__ = "alert_preferences"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    email_mode: Mapped[EmailMode] = mapped_column(
        enum_column(EmailMode), default=EmailMode.IMMEDIATE
    )
