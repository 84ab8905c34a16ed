"""Request and response bodies of the complaints API. Only the detail and resolution views
carry PHI, and only for the tenant's own staff holding complaints:read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from hub.complaints.models import Complaint, DueBasis, Resolution
from hub.complaints.repository import BENE_MAX_CHARS
from hub.complaints.resolutions import OpenedResolution
from hub.complaints.service import ComplaintStatus, Deadlines
from hub.core.text import Text


class ResolutionCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Validated by the service, so each broken rule answers 400 naming its field."""

    resolution_date: date | None = None
    summary: Text | None = None
    casework_notes: Text | None = None
    complainant_satisfied: str | None = None  # Y, N or blank
    resolution_notification: Text | None = None
    # Or the Idempotency-Key header; the same key with the same body returns the first one.
    idempotency_key: str | None = None

    def __repr__(self) -> str:  # summary and notes are PHI
        return f"ResolutionCreate(resolution_date={self.resolution_date!r})"


class BeneficiarySearch(msgspec.Struct, forbid_unknown_fields=True):
    """A beneficiary's identifier (MBI or HICN, any case), matched exactly, never stored."""

    beneficiary: Annotated[Text, msgspec.Meta(min_length=1, max_length=BENE_MAX_CHARS)]
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100

    def __repr__(self) -> str:  # the identifier is PHI
        return f"BeneficiarySearch(limit={self.limit!r})"


def due_basis_note(complaint: Complaint, deadlines: Deadlines) -> str:
    days = deadlines.immediate_days if complaint.is_immediate_need else deadlines.standard_days
    level = "immediate need" if complaint.is_immediate_need else "standard"
    if complaint.due_basis is DueBasis.ASSIGNMENT:
        return f"{level}: assignment date + {days} calendar days"
    return (
        f"{level}: received date + {days} calendar days "
        "(the file has no assignment date, so the received date stands in)"
    )


class ComplaintSummary(msgspec.Struct):
    id: UUID
    complaint_id: str
    environment: str  # the CMS environment it came from: sandbox or production
    contract: str
    issue_level: str
    is_immediate_need: bool
    category: str
    subcategory: str
    received_date: date
    assignment_date: date | None
    due_date: date
    due_basis: str
    status: str
    resolution_state: str
    cms_resolution_date: date | None
    first_seen_at: datetime
    last_changed_at: datetime
    last_seen_at: datetime

    @classmethod
    def of(cls, c: Complaint, status: ComplaintStatus) -> ComplaintSummary:
        return cls(
            id=c.id, complaint_id=c.complaint_id, environment=c.environment.value,
            contract=c.contract, issue_level=c.issue_level,
            is_immediate_need=c.is_immediate_need, category=c.category,
            subcategory=c.subcategory, received_date=c.received_date,
            assignment_date=c.assignment_date, due_date=c.due_date, due_basis=c.due_basis.value,
            status=status.value, resolution_state=c.resolution_state.value,
            cms_resolution_date=c.cms_resolution_date, first_seen_at=c.first_seen_at,
            last_changed_at=c.last_changed_at, last_seen_at=c.last_seen_at,
        )  # fmt: skip


class ComplaintDetail(msgspec.Struct):
    complaint: ComplaintSummary
    due_basis_note: str
    fields: dict[str, Any]  # the file's other non-PHI columns
    layout: str
    api_key_id: UUID | None
    last_sync_run_id: UUID | None
    phi: dict[str, Any]  # the opened PHI document (beneficiary, contacts, summary, comments)


class ChangeView(msgspec.Struct):
    kind: str  # created | updated
    changed: list[str]  # column names, never values
    sync_run_id: UUID | None
    at: datetime


class ResolutionView(msgspec.Struct):
    id: UUID
    complaint: UUID
    complaint_id: str
    contract: str
    resolution_date: date
    summary: str
    casework_notes: str | None
    complainant_satisfied: str | None
    resolution_notification: str | None
    state: str
    idempotency_key: str
    submitted_by: UUID | None
    upload_batch: UUID | None
    uploaded_at: datetime | None
    # The upload's outcome is unknown since then: the next download of the contract says.
    in_doubt_since: datetime | None
    # Downloads that reached back to its complaint while in doubt without showing it, and
    # when the hub stopped waiting for one (settle it by hand: its note says how).
    downloads_missed: int
    unconfirmed_at: datetime | None
    decided_at: datetime | None
    # CMS's own words (a PHI view: they may quote the file); events carry a safe form.
    cms_errors: list[str] | None
    note: str | None
    created_at: datetime

    @classmethod
    def of(cls, opened: OpenedResolution) -> ResolutionView:
        r = opened.resolution
        return cls(
            id=r.id, complaint=r.complaint_pk, complaint_id=r.complaint_id, contract=r.contract,
            resolution_date=r.resolution_date, summary=opened.summary,
            casework_notes=opened.casework_notes, complainant_satisfied=r.complainant_satisfied,
            resolution_notification=r.resolution_notification, state=r.state.value,
            idempotency_key=r.idempotency_key, submitted_by=r.submitted_by,
            upload_batch=r.upload_batch, uploaded_at=r.uploaded_at,
            in_doubt_since=r.in_doubt_since, downloads_missed=r.doubt_misses,
            unconfirmed_at=r.unconfirmed_at, decided_at=r.decided_at,
            cms_errors=opened.cms_errors,
            note=r.note, created_at=r.created_at,
        )  # fmt: skip


class ResolutionSettle(msgspec.Struct, forbid_unknown_fields=True):
    """How a person who checked HPMS settles a resolution in doubt."""

    outcome: str  # accepted | resend | release


class SettledView(msgspec.Struct):
    """A resolution settled by hand: its state and note, no PHI."""

    id: UUID
    complaint: UUID
    complaint_id: str
    contract: str
    state: str
    in_doubt_since: datetime | None
    decided_at: datetime | None
    note: str | None

    @classmethod
    def of(cls, r: Resolution) -> SettledView:
        return cls(
            r.id, r.complaint_pk, r.complaint_id, r.contract, r.state.value, r.in_doubt_since,
            r.decided_at, r.note,
        )  # fmt: skip
