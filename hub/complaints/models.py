"""Complaints downloaded from CMS, their change history, and the resolutions we upload."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.crypto import Sealed, SealedColumn
from hub.core.db import Base, Entity, TenantOwned, enum_column
from hub.keys.models import Environment


class DueBasis(enum.StrEnum):
    ASSIGNMENT = "assignment"  # the rule: the assignment date
    RECEIVED = "received"  # no assignment date in the file: fell back to the received date


class ResolutionState(enum.StrEnum):
    NONE = "none"
    QUEUED = "queued"  # written, waiting for the upload job
    UPLOADING = "uploading"  # in an upload file on its way to CMS
    ACCEPTED = "accepted"  # CMS accepted it: the complaint is resolved
    REJECTED = "rejected"  # CMS refused it; fix and resubmit


class Complaint(Entity, TenantOwned, Base):
    """One complaint of one contract in one CMS environment, as last downloaded. PHI lives
    only in `phi` (one sealed JSON document); the rest is what a caseworker filters and
    sorts on. Sandbox and production are apart: the same contract and complaint ID in both
    are two complaints."""

    __tablename__ = "complaints"
    # A sync probes its complaints by the unique key, uncommitted rows and all. While the
    # table has no statistics (a young database), an index on `tenant_id` alone, or one
    # led by it, ties with the unique one in the planner's eyes and may be chosen, and the
    # plan kept: each probe then reads the tenant's every complaint. So only the unique key
    # leads with `tenant_id` (and serves the lookups by tenant). The deadline sweeps ask
    # across tenants by state and due date, which `ix_complaints_due` serves.
    tenant_index = False
    __table_args__ = (
        UniqueConstraint("tenant_id", "environment", "contract", "complaint_id"),
        Index("ix_complaints_due", "resolution_state", "due_date", "tenant_id"),
    )

    environment: Mapped[Environment] = mapped_column(enum_column(Environment))
    contract: Mapped[str] = mapped_column(String(5))
    complaint_id: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    issue_level: Mapped[str] = mapped_column(String(100))
    is_immediate_need: Mapped[bool]
    received_date: Mapped[date]
    assignment_date: Mapped[date | None]
    due_date: Mapped[date]
    due_basis: Mapped[DueBasis] = mapped_column(enum_column(DueBasis))
    cms_resolution_date: Mapped[date | None]
    category: Mapped[str] = mapped_column(String(200), default="")
    subcategory: Mapped[str] = mapped_column(String(200), default="")
    # Every other non-PHI column of the file, typed values as strings (dates ISO).
    fields: Mapped[dict[str, Any]]
    layout: Mapped[str] = mapped_column(String(20))
    phi: Mapped[Sealed] = mapped_column(SealedColumn())
    bene_index: Mapped[str | None] = mapped_column(String(64), index=True)
    # Keyed hashes (HMAC under the tenant's index key): whether a re-download changed
    # anything, without storing or comparing plaintext.
    content_hash: Mapped[str] = mapped_column(String(64))
    phi_hash: Mapped[str] = mapped_column(String(64))
    resolution_state: Mapped[ResolutionState] = mapped_column(
        enum_column(ResolutionState), default=ResolutionState.NONE
    )
    first_seen_at: Mapped[datetime]
    last_changed_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    last_sync_run_id: Mapped[UUID | None]


class ComplaintChange(Entity, TenantOwned, Base):
    """What changed in a complaint, and which sync saw it: column names, never values."""

    __tablename__ = "complaint_changes"

    complaint_pk: Mapped[UUID] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), index=True
    )
    sync_run_id: Mapped[UUID | None]
    kind: Mapped[str] = mapped_column(String(20))  # created | updated
    changed: Mapped[list[Any]]


class Resolution(Entity, TenantOwned, Base):
    """A casework resolution for CMS. Summary and notes are PHI: sealed."""

    __tablename__ = "resolutions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index("ix_resolutions_queue", "state", "contract"),
    )

    complaint_pk: Mapped[UUID] = mapped_column(
        ForeignKey("complaints.id", ondelete="CASCADE"), index=True
    )
    contract: Mapped[str] = mapped_column(String(5))
    complaint_id: Mapped[str] = mapped_column(String(64))
    resolution_date: Mapped[date]
    summary: Mapped[Sealed] = mapped_column(SealedColumn())
    casework_notes: Mapped[Sealed | None] = mapped_column(SealedColumn())
    complainant_satisfied: Mapped[str | None] = mapped_column(String(1))
    resolution_notification: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[ResolutionState] = mapped_column(
        enum_column(ResolutionState), default=ResolutionState.QUEUED
    )
    idempotency_key: Mapped[str] = mapped_column(String(200))
    submitted_by: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    upload_batch: Mapped[UUID | None] = mapped_column(index=True)
    uploaded_at: Mapped[datetime | None]
    # Set while an upload's outcome is unknown (the answer was lost, or the worker died):
    # the row stays `uploading` until a download of its contract shows what CMS has.
    in_doubt_since: Mapped[datetime | None]
    # Downloads that reached back to the complaint while in doubt and did not show it
    # readable; past a bound (`doubt.UNCONFIRMED_*`) the hub stops waiting for one and
    # leaves the row to a person (`unconfirmed_at`), who settles it by hand.
    doubt_misses: Mapped[int] = mapped_column(default=0, server_default="0")
    unconfirmed_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    # Why it was rejected, in a form safe for events, logs and PHI-free fields; CMS's own
    # words (which may quote the file, or CMS's records) only sealed, in `cms_said`.
    cms_errors: Mapped[list[Any] | None]
    cms_said: Mapped[Sealed | None] = mapped_column(SealedColumn())
    api_key_id: Mapped[UUID | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
