"""Writing a resolution: validate it, seal its PHI, queue it for CMS under an idempotency key.

The upload itself (batches per serving key and contract, CMS's verdict) is in `uploads.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.principal import Principal
from hub.complaints import cms_words, repository
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.core import crypto, jobs
from hub.core.crypto import TenantCipher
from hub.core.db import utcnow
from hub.core.errors import Conflict, Invalid
from hub.core.ids import TenantID, uuid7
from hub.ctm import modeled
from hub.keys.models import Environment
from hub.syncs.service import serving_pairs

SUMMARY_FIELD = "resolutions.summary"
NOTES_FIELD = "resolutions.casework_notes"
SUMMARY_MAX_CHARS = modeled.UPLOAD_SUMMARY_MAX_CHARS
NOTES_MAX_CHARS = 10_000  # CMS states no limit; ours keeps a request bounded
NOTIFICATION_MAX_CHARS = 200
IDEMPOTENCY_KEY_MAX = 200
PENDING = frozenset({ResolutionState.QUEUED, ResolutionState.UPLOADING})


def upload_job(tenant_id: UUID, key_id: UUID, contract: str) -> jobs.Job:
    """Upload the queued resolutions of one (serving key, contract) pair; one job id per pair,
    so a second enqueue while one is queued is a no-op."""
    return jobs.Job(
        "resolutions.upload",
        (str(tenant_id), str(key_id), contract),
        job_id=f"resolutions:{key_id}:{contract}",
    )


@dataclass(frozen=True, slots=True)
class ResolutionInput:
    """A resolution as asked for (API or portal), before validation."""

    resolution_date: date | None
    summary: str | None
    casework_notes: str | None = None
    complainant_satisfied: str | None = None
    resolution_notification: str | None = None

    def __repr__(self) -> str:  # summary and notes are PHI
        return f"ResolutionInput(resolution_date={self.resolution_date!r})"


@dataclass(frozen=True, slots=True)
class _Valid:
    resolution_date: date
    summary: str
    casework_notes: str | None
    complainant_satisfied: str | None
    resolution_notification: str | None


@dataclass(frozen=True, slots=True)
class Written:
    resolution: Resolution
    is_new: bool  # False: the same request was made before under this idempotency key


def _validate(data: ResolutionInput, complaint: Complaint, today: date) -> _Valid:
    when = data.resolution_date
    if when is None:
        raise Invalid("resolution_date", "is required (YYYY-MM-DD)")
    if when > today:
        raise Invalid("resolution_date", f"{when} is in the future")
    if when < complaint.received_date:
        raise Invalid(
            "resolution_date", f"{when} is before the received date {complaint.received_date}"
        )
    summary = (data.summary or "").strip()
    if not summary:
        raise Invalid("summary", "is required")
    if len(summary) > SUMMARY_MAX_CHARS:
        raise Invalid(
            "summary", f"is {len(summary)} characters; at most {SUMMARY_MAX_CHARS:,} allowed"
        )
    notes = (data.casework_notes or "").strip() or None
    if notes is not None and len(notes) > NOTES_MAX_CHARS:
        raise Invalid(
            "casework_notes", f"is {len(notes)} characters; at most {NOTES_MAX_CHARS:,} allowed"
        )
    satisfied = (data.complainant_satisfied or "").strip().upper()
    if satisfied not in modeled.UPLOAD_SATISFIED_VALUES:
        raise Invalid("complainant_satisfied", "must be Y, N or blank")
    notification = (data.resolution_notification or "").strip() or None
    if notification is not None and len(notification) > NOTIFICATION_MAX_CHARS:
        raise Invalid(
            "resolution_notification", f"is longer than {NOTIFICATION_MAX_CHARS} characters"
        )
    return _Valid(when, summary, notes, satisfied or None, notification)


def _idempotency_key(header: str | None, body: str | None) -> str:
    header, body = (header or "").strip() or None, (body or "").strip() or None
    if header is not None and body is not None and header != body:
        raise Invalid("idempotency_key", "differs from the Idempotency-Key header")
    key = header or body
    if key is None:
        return f"hub:{uuid7()}"  # none given: every request is a new resolution
    if len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise Invalid("idempotency_key", f"must be printable, at most {IDEMPOTENCY_KEY_MAX} chars")
    return key


def _is_same(cipher: TenantCipher, stored: Resolution, complaint: Complaint, new: _Valid) -> bool:
    notes = (
        cipher.open(stored.casework_notes, field=NOTES_FIELD, row=stored.id)
        if stored.casework_notes is not None
        else None
    )
    return (
        stored.complaint_pk == complaint.id
        and stored.resolution_date == new.resolution_date
        and stored.complainant_satisfied == new.complainant_satisfied
        and stored.resolution_notification == new.resolution_notification
        and notes == new.casework_notes
        and cipher.open(stored.summary, field=SUMMARY_FIELD, row=stored.id) == new.summary
    )


async def _replay(
    session: AsyncSession, cipher: TenantCipher, complaint: Complaint, key: str, new: _Valid
) -> Written | None:
    stored = await repository.find_by_idempotency_key(session, TenantID(complaint.tenant_id), key)
    if stored is None:
        return None
    if not _is_same(cipher, stored, complaint, new):
        raise Conflict(
            "this idempotency key was used for a different resolution", field="idempotency_key"
        )
    return Written(stored, is_new=False)


def _check_open(complaint: Complaint) -> None:
    state = complaint.resolution_state
    if state is ResolutionState.ACCEPTED:
        raise Conflict("CMS already accepted a resolution of this complaint", field="complaint")
    if state in PENDING:
        raise Conflict(
            "a resolution of this complaint is already on its way to CMS", field="complaint"
        )
    if complaint.cms_resolution_date is not None:
        raise Conflict(
            f"CMS's file shows this complaint resolved on {complaint.cms_resolution_date}",
            field="complaint",
        )


async def serving_key(
    session: AsyncSession, tenant_id: TenantID, contract: str, environment: Environment
) -> UUID | None:
    """The key that uploads for the contract: the serving key of the environment the
    complaint came from (a sandbox complaint never goes to production)."""
    pairs = [
        p
        for p in await serving_pairs(session, tenant_id)
        if p.contract == contract and p.environment is environment
    ]
    return pairs[0].key_id if pairs else None


async def write_resolution(
    session: AsyncSession,
    actor: Principal,
    *,
    complaint_pk: UUID,
    data: ResolutionInput,
    idempotency_header: str | None = None,
    idempotency_body: str | None = None,
    today: date | None = None,
) -> Written:
    """Validate, seal and queue a resolution of an open complaint; enqueue its upload after
    commit. The same idempotency key with the same request returns the first resolution."""
    tenant_id = actor.tenant
    complaint = await repository.get_complaint(session, tenant_id, complaint_pk, lock=True)
    valid = _validate(data, complaint, today or utcnow().date())
    key = _idempotency_key(idempotency_header, idempotency_body)
    cipher = await crypto.cipher_for(session, tenant_id)
    if (earlier := await _replay(session, cipher, complaint, key, valid)) is not None:
        return earlier
    _check_open(complaint)
    environment = complaint.environment
    uploader = await serving_key(session, tenant_id, complaint.contract, environment)
    resolution = Resolution(
        tenant_id=tenant_id, complaint_pk=complaint.id, contract=complaint.contract,
        complaint_id=complaint.complaint_id, resolution_date=valid.resolution_date,
        complainant_satisfied=valid.complainant_satisfied,
        resolution_notification=valid.resolution_notification, state=ResolutionState.QUEUED,
        idempotency_key=key, submitted_by=actor.user_id,
        api_key_id=uploader or complaint.api_key_id,
    )  # fmt: skip
    if uploader is None:
        resolution.note = (
            f"no active {environment.value} key serves contract {complaint.contract}: "
            "the resolution waits in the queue until one does"
        )
    resolution.summary = cipher.seal(valid.summary, field=SUMMARY_FIELD, row=resolution.id)
    if valid.casework_notes is not None:
        resolution.casework_notes = cipher.seal(
            valid.casework_notes, field=NOTES_FIELD, row=resolution.id
        )
    try:
        async with session.begin_nested():
            session.add(resolution)
            complaint.resolution_state = ResolutionState.QUEUED
            await session.flush()
    except IntegrityError:
        # The same key raced in from a concurrent request: answer as its replay would.
        earlier = await _replay(session, cipher, complaint, key, valid)
        if earlier is None:
            raise
        return earlier
    if uploader is not None:
        jobs.enqueue(session, upload_job(tenant_id, uploader, complaint.contract))
    return Written(resolution, is_new=True)


@dataclass(frozen=True, slots=True)
class OpenedResolution:
    """A resolution with its sealed text opened, for the tenant's own authorised staff."""

    resolution: Resolution
    summary: str
    casework_notes: str | None
    # Why CMS rejected it, in CMS's own words where it gave them (else the safe form).
    cms_errors: list[str] | None = None


async def open_resolutions(
    session: AsyncSession, tenant_id: TenantID, resolutions: list[Resolution]
) -> list[OpenedResolution]:
    cipher = await crypto.cipher_for(session, tenant_id)
    return [
        OpenedResolution(
            r,
            cipher.open(r.summary, field=SUMMARY_FIELD, row=r.id),
            cipher.open(r.casework_notes, field=NOTES_FIELD, row=r.id)
            if r.casework_notes is not None
            else None,
            cms_words.open_said(cipher, r.cms_said, row=r.id)
            or ([str(e) for e in r.cms_errors] if r.cms_errors is not None else None),
        )
        for r in resolutions
    ]
