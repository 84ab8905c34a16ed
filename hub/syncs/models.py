"""Sync schedules, per-(key, contract) cursors, runs, and quarantined rows."""

from __future__ import annotations

import enum
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.crypto import Sealed, SealedColumn
from hub.core.db import Base, Entity, TenantOwned, enum_column
from hub.keys.models import Environment


class RunOutcome(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the next schedule tries again
    BLOCKED = "blocked"  # the key was refused or lost the contract: no retry until it changes


class SyncSchedule(Entity, TenantOwned, Base):
    """How often a tenant's contracts of one environment are synced; tenants may pause."""

    __tablename__ = "sync_schedules"
    __table_args__ = (UniqueConstraint("tenant_id", "environment"),)

    environment: Mapped[Environment] = mapped_column(enum_column(Environment))
    interval_minutes: Mapped[int] = mapped_column(default=15)
    is_paused: Mapped[bool] = mapped_column(default=False)


class SyncCursor(Entity, TenantOwned, Base):
    """Where the next sync of a (key, contract) pair starts, and how the last ones went."""

    __tablename__ = "sync_cursors"
    __table_args__ = (
        UniqueConstraint("api_key_id", "contract"),
        Index("ix_sync_cursors_due", "next_due_at"),
    )

    api_key_id: Mapped[UUID] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    contract: Mapped[str] = mapped_column(String(5))
    synced_through: Mapped[date | None]  # the end of the last successful window
    # The next window starts here at the latest (uploads in doubt: their complaints must be
    # in the download that settles them); cleared by a successful sync.
    recheck_from: Mapped[date | None]
    last_success_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    next_due_at: Mapped[datetime | None]
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    is_blocked: Mapped[bool] = mapped_column(default=False)


class SyncRun(Entity, TenantOwned, Base):
    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_pair", "api_key_id", "contract", "started_at"),)

    api_key_id: Mapped[UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    contract: Mapped[str] = mapped_column(String(5))
    trigger: Mapped[str] = mapped_column(String(20))  # schedule | manual | recheck
    window_start: Mapped[date]
    window_end: Mapped[date]
    layout: Mapped[str | None] = mapped_column(String(20))
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_new: Mapped[int] = mapped_column(default=0)
    rows_changed: Mapped[int] = mapped_column(default=0)
    rows_unchanged: Mapped[int] = mapped_column(default=0)
    rows_quarantined: Mapped[int] = mapped_column(default=0)
    warnings: Mapped[int] = mapped_column(default=0)
    bytes_read: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None]
    outcome: Mapped[RunOutcome] = mapped_column(enum_column(RunOutcome), default=RunOutcome.RUNNING)
    error: Mapped[str | None] = mapped_column(Text)


class QuarantinedRow(Entity, TenantOwned, Base):
    """A bad row of a download: kept (sealed), with its row number and reason."""

    __tablename__ = "quarantined_rows"

    sync_run_id: Mapped[UUID] = mapped_column(
        ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True
    )
    contract: Mapped[str] = mapped_column(String(5))
    file_name: Mapped[str] = mapped_column(String(200))
    row_number: Mapped[int]
    reason: Mapped[str] = mapped_column(String(500))
    raw: Mapped[Sealed | None] = mapped_column(SealedColumn())
