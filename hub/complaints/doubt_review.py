"""Settling an upload in doubt by hand: a person who checked the complaint in HPMS says
whether CMS has the resolution, when no download can (`hub.complaints.doubt`). Audited.

- `accepted`: CMS has it → accepted, as if CMS's answer had arrived (`resolution.accepted`,
  `confirmed_by: "person"`).
- `resend`: CMS does not have it → queued again, uploaded by the next job.
- `release`: CMS does not have it and it is not to be sent (its complaint is closed at CMS,
  say) → rejected (`resolution.rejected`, `confirmed_by: "person"`): the caseworker may write
  a new resolution.
"""

from __future__ import annotations

import enum
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth.principal import Principal
from hub.complaints import doubt, repository
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.resolutions import upload_job
from hub.core import jobs
from hub.core.db import utcnow, zulu
from hub.core.errors import Conflict, Invalid, NotFound
from hub.events.service import record_event

AUDIT_ACTION = "resolution.settled"
RELEASED = (
    "released by hand: CMS does not have it (checked in HPMS), and it is not sent again; "
    "write a new resolution"
)


class HandOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    RESEND = "resend"
    RELEASE = "release"


def _outcome(raw: str) -> HandOutcome:
    try:
        return HandOutcome(raw)
    except ValueError:
        choices = ", ".join(o.value for o in HandOutcome)
        raise Invalid("outcome", f"must be one of {choices}") from None


async def _in_doubt(session: AsyncSession, complaint: Complaint, resolution_id: UUID) -> Resolution:
    resolution = await session.scalar(
        select(Resolution)
        .where(
            Resolution.tenant_id == complaint.tenant_id,
            Resolution.complaint_pk == complaint.id,
            Resolution.id == resolution_id,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if resolution is None:
        raise NotFound("resolution", resolution_id)
    if resolution.state is not ResolutionState.UPLOADING or resolution.in_doubt_since is None:
        raise Conflict(
            f"resolution {resolution.id} is {resolution.state.value}, not in doubt: only an "
            "upload whose outcome is unknown is settled by hand",
            field="resolution",
        )
    return resolution


async def settle_by_hand(
    session: AsyncSession,
    actor: Principal,
    *,
    complaint_pk: UUID,
    resolution_id: UUID,
    outcome: str,
) -> Resolution:
    """Settle a resolution in doubt as a person found it in HPMS; audited. `resend` and
    `release` wait until CMS has surely done with the file (`doubt.SETTLE_AFTER`)."""
    complaint = await repository.get_complaint(session, actor.tenant, complaint_pk, lock=True)
    resolution = await _in_doubt(session, complaint, resolution_id)
    chosen = _outcome(outcome)
    now, began = utcnow(), resolution.in_doubt_since
    assert began is not None
    if chosen is not HandOutcome.ACCEPTED and began + doubt.SETTLE_AFTER > now:
        raise Conflict(
            f"CMS may still be storing this upload: settle it as {chosen.value} after "
            f"{zulu(began + doubt.SETTLE_AFTER)}",
            field="resolution",
        )
    details = {
        "outcome": chosen.value, "complaint_id": resolution.complaint_id,
        "contract": resolution.contract, "in_doubt_since": zulu(began),
        "downloads_missed": resolution.doubt_misses,
        "unconfirmed_at": zulu(resolution.unconfirmed_at) if resolution.unconfirmed_at else None,
    }  # fmt: skip
    _apply(session, complaint, resolution, chosen, who=actor.email)
    await session.flush()
    await audit.record(
        session, actor=Actor.of_principal(actor), action=AUDIT_ACTION, tenant_id=actor.tenant,
        target_type="resolution", target_id=resolution.id, details=details,
    )  # fmt: skip
    return resolution


def _apply(
    session: AsyncSession,
    complaint: Complaint,
    resolution: Resolution,
    outcome: HandOutcome,
    *,
    who: str,
) -> None:
    now = utcnow()
    resolution.in_doubt_since, resolution.unconfirmed_at = None, None
    resolution.doubt_misses, resolution.updated_at = 0, now
    payload: dict[str, Any] = {
        "complaint_id": resolution.complaint_id, "contract": resolution.contract,
        "environment": complaint.environment.value, "resolution_id": str(resolution.id),
        "confirmed_by": "person",
    }  # fmt: skip
    if outcome is HandOutcome.ACCEPTED:
        resolution.state, resolution.decided_at, resolution.cms_errors = (
            ResolutionState.ACCEPTED, now, None,
        )  # fmt: skip
        resolution.note = f"accepted: {who} found in HPMS that CMS has it (its answer was lost)"
        payload["accepted_at"] = zulu(now)
        record_event(session, complaint.tenant_id, "resolution.accepted", payload, occurred_at=now)
    elif outcome is HandOutcome.RESEND:
        resolution.state, resolution.upload_batch, resolution.uploaded_at = (
            ResolutionState.QUEUED, None, None,
        )  # fmt: skip
        resolution.note = f"queued again: {who} found in HPMS that CMS does not have it"
        if resolution.api_key_id is not None:
            jobs.enqueue(
                session, upload_job(complaint.tenant_id, resolution.api_key_id, complaint.contract)
            )
    else:
        released = RELEASED
        resolution.state, resolution.decided_at = ResolutionState.REJECTED, now
        resolution.note = f"released: {who} found in HPMS that CMS does not have it"
        resolution.cms_errors, resolution.cms_said = [released], None
        payload |= {"errors": [released], "reason": released}
        record_event(session, complaint.tenant_id, "resolution.rejected", payload, occurred_at=now)
    complaint.resolution_state, complaint.updated_at = resolution.state, now
