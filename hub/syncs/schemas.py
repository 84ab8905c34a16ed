"""Request and response bodies of the syncs API. No PHI, except a quarantined row's raw
cells, which only a caller holding complaints:read receives."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

import msgspec

from hub.syncs.models import QuarantinedRow, SyncCursor, SyncRun


class SchedulePut(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields given change."""

    interval_minutes: int | None = None
    paused: bool | None = None


class SyncNow(msgspec.Struct, forbid_unknown_fields=True):
    contract: str | None = None  # none: every contract the tenant's active keys serve


class PairView(msgspec.Struct):
    contract: str
    key_id: UUID
    synced_through: date | None
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    next_due_at: datetime | None
    consecutive_failures: int
    is_blocked: bool
    last_error: str | None

    @classmethod
    def of(cls, c: SyncCursor) -> PairView:
        return cls(
            c.contract, c.api_key_id, c.synced_through, c.last_success_at, c.last_attempt_at,
            c.next_due_at, c.consecutive_failures, c.is_blocked, c.last_error,
        )  # fmt: skip


class ScheduleView(msgspec.Struct):
    environment: str
    interval_minutes: int
    paused: bool
    is_default: bool
    pairs: list[PairView]


class QueuedSync(msgspec.Struct):
    contract: str
    key_id: UUID
    environment: str
    # The pair's sync was running since then: it syncs again as soon as that one ends.
    running_since: datetime | None = None
    # The pair's sync was already queued and waits until then (a retry after CMS's fault,
    # honouring its Retry-After, or its key busy): it runs then, not sooner.
    next_try_at: datetime | None = None


class SyncNowResult(msgspec.Struct):
    queued: list[QueuedSync]


class RunView(msgspec.Struct):
    id: UUID
    contract: str
    key_id: UUID | None
    trigger: str
    window_start: date
    window_end: date
    layout: str | None
    rows_read: int
    rows_new: int
    rows_changed: int
    rows_unchanged: int
    rows_quarantined: int
    warnings: int
    bytes_read: int
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    outcome: str
    error: str | None

    @classmethod
    def of(cls, r: SyncRun) -> RunView:
        return cls(
            id=r.id, contract=r.contract, key_id=r.api_key_id, trigger=r.trigger,
            window_start=r.window_start, window_end=r.window_end, layout=r.layout,
            rows_read=r.rows_read, rows_new=r.rows_new, rows_changed=r.rows_changed,
            rows_unchanged=r.rows_unchanged, rows_quarantined=r.rows_quarantined,
            warnings=r.warnings, bytes_read=r.bytes_read, started_at=r.started_at,
            finished_at=r.finished_at, duration_ms=r.duration_ms, outcome=r.outcome.value,
            error=r.error,
        )  # fmt: skip


class QuarantineView(msgspec.Struct):
    id: UUID
    contract: str
    file_name: str
    row_number: int
    reason: str
    # The row's cells as read (may hold PHI): only for callers holding complaints:read.
    raw: list[str] | None
    has_raw: bool

    @classmethod
    def of(cls, q: QuarantinedRow, raw: list[str] | None) -> QuarantineView:
        return cls(q.id, q.contract, q.file_name, q.row_number, q.reason, raw, q.raw is not None)
