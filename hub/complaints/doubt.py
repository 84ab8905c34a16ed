"""Uploads in doubt, settled by what CMS's own download shows.

An upload whose outcome is unknown (the connection failed after the file went out, CMS's
answer could not be read, or the worker died in the middle) is never sent again blindly:
CMS may have the resolutions already, and a second upload of an accepted resolution is what
must not happen. Its rows stay `uploading`, marked in doubt, and the next download of the
contract reaches back far enough to hold their complaints (`SyncCursor.recheck_from`).
Then, in the sync's own transaction, each row in doubt is settled: the download shows CMS
holding this resolution (its `RESOLUTION_DATE` on the complaint) → accepted, as if CMS's
answer had arrived; it does not → queued again, to be uploaded once more. Only a download
that delivered the complaint readable can say "does not": a complaint whose row was
quarantined, or that was not in the file at all, leaves its row in doubt. A complaint that
no download shows again (closed or withdrawn at CMS, or past CMS's history) would keep it
there for ever: after `UNCONFIRMED_AFTER` and `UNCONFIRMED_MISSES` such downloads the hub
stops waiting, says so (the row's note, a `resolution.unconfirmed` event) and leaves the row
to a person, who checks HPMS and settles it (`hub.complaints.doubt_review`). It is never
sent again on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.core.db import utcnow, zulu
from hub.core.ids import TenantID
from hub.events.service import record_events
from hub.keys.models import ApiKey, Environment

log = structlog.get_logger(__name__)

# CMS may still be storing a file whose answer was lost when the doubt began: a download
# asked for sooner than this after it might not show the resolution yet, and would queue
# it again. Such rows wait for a later download.
SETTLE_AFTER = timedelta(minutes=5)

CONFIRMED = "accepted: CMS's download shows this resolution (the upload's answer was lost)"
NOT_FOUND = "queued again: CMS's download does not show the upload whose answer was lost"
UNREADABLE = (
    "in doubt: CMS's download had no readable row for this complaint (quarantined, or not in "
    "the file), so it cannot say whether CMS has the upload; the next download looks again"
)
# When the hub stops waiting for a download to show a complaint in doubt: both bounds, so
# that neither a burst of downloads nor one slow day gives up on CMS too soon.
UNCONFIRMED_AFTER = timedelta(hours=24)
UNCONFIRMED_MISSES = 3
SETTLE_ROUTE = "POST /api/v1/complaints/{complaint}/resolutions/{resolution}/settle"


@dataclass(frozen=True, slots=True)
class Settled:
    accepted: int = 0
    requeued: int = 0
    # Rows still in doubt wait for a download that reaches back to this day, asked for at
    # this time or later (see `settle`).
    again_from: date | None = None
    again_at: datetime | None = None
    # Rows whose complaint the download had no readable row for: later downloads, on their
    # schedule, reach back to this day.
    unseen_from: date | None = None


async def in_doubt(
    session: AsyncSession, *, tenant_id: TenantID, contract: str, environment: Environment
) -> set[tuple[str, str]]:
    """The (contract, complaint ID) of the contract's uploads in doubt: what a download
    must watch for, for `settle`."""
    statement = (
        select(Resolution.contract, Resolution.complaint_id)
        .outerjoin(ApiKey, ApiKey.id == Resolution.api_key_id)
        .where(*_in_doubt(tenant_id=tenant_id, contract=contract, environment=environment))
    )
    rows = await session.execute(statement)
    return {(contract, complaint) for contract, complaint in rows}


def _in_doubt(
    *, tenant_id: TenantID, contract: str, environment: Environment
) -> tuple[ColumnElement[bool], ...]:
    """The contract's rows in doubt, joined to their key (outer: the key may be gone)."""
    return (
        Resolution.tenant_id == tenant_id,
        Resolution.contract == contract,
        Resolution.state == ResolutionState.UPLOADING,
        Resolution.in_doubt_since.is_not(None),
        # The environment the file went to (any, if its key is gone).
        or_(ApiKey.id.is_(None), ApiKey.environment == environment),
    )


async def settle(
    session: AsyncSession,
    *,
    tenant_id: TenantID,
    contract: str,
    environment: Environment,
    covered_from: date,
    downloaded_at: datetime,
    seen: Collection[tuple[str, str]],
    settle_after: timedelta = SETTLE_AFTER,
) -> Settled:
    """Settle the contract's uploads in doubt that a download, asked for at `downloaded_at`
    and reaching back to `covered_from`, has seen: called after the download's complaints
    were written, in the same transaction; `seen` holds the (contract, complaint ID) of
    those (from `in_doubt`) it delivered readable. Rows whose doubt began less than
    `settle_after` before the download was asked for, or whose complaint it did not reach,
    wait for the next one, which must reach back to `again_from` and be asked for at
    `again_at` or later; rows whose complaint it reached but did not deliver readable stay
    in doubt for later downloads, reaching back to `unseen_from`."""
    statement = (
        select(Resolution, Complaint.cms_resolution_date, Complaint.received_date)
        .join(Complaint, Complaint.id == Resolution.complaint_pk)
        .outerjoin(ApiKey, ApiKey.id == Resolution.api_key_id)
        .where(*_in_doubt(tenant_id=tenant_id, contract=contract, environment=environment))
        .order_by(Resolution.created_at, Resolution.id)
    )
    found = (await session.execute(statement)).all()
    if not found:
        return Settled()
    now = utcnow()
    accepted: list[Resolution] = []
    requeued: list[Resolution] = []
    again_from: date | None = None
    again_at: datetime | None = None
    unseen_from: date | None = None
    unconfirmed: list[Resolution] = []
    for resolution, cms_date, received in found:
        began = resolution.in_doubt_since
        early = began is None or began + settle_after > downloaded_at
        if resolution.unconfirmed_at is not None and (early or received < covered_from):
            continue  # left to a person: no download is asked for it any more
        if early or received < covered_from:
            # Asked for too soon after the doubt began, or not reaching the complaint: the
            # next one (once CMS has surely done with the file).
            again_from = received if again_from is None else min(again_from, received)
            ready = now if began is None or not early else began + settle_after
            again_at = ready if again_at is None else min(again_at, ready)
            continue
        if (resolution.contract, resolution.complaint_id) not in seen:
            # Its row was quarantined, or missing: no answer either way (queuing it again
            # could send CMS a resolution it has).
            resolution.doubt_misses, resolution.updated_at = resolution.doubt_misses + 1, now
            if resolution.unconfirmed_at is not None:
                continue
            if _gives_up(resolution, downloaded_at):
                resolution.unconfirmed_at, resolution.note = now, _unconfirmed_note(resolution)
                unconfirmed.append(resolution)
                continue
            resolution.note = UNREADABLE
            unseen_from = received if unseen_from is None else min(unseen_from, received)
            continue
        if cms_date is not None and cms_date == resolution.resolution_date:
            resolution.state, resolution.cms_errors = ResolutionState.ACCEPTED, None
            resolution.cms_said = None
            resolution.decided_at, resolution.note = now, CONFIRMED
            accepted.append(resolution)
        else:
            resolution.state, resolution.upload_batch = ResolutionState.QUEUED, None
            resolution.uploaded_at, resolution.note = None, NOT_FOUND
            requeued.append(resolution)
        resolution.in_doubt_since, resolution.updated_at = None, now
        resolution.doubt_misses, resolution.unconfirmed_at = 0, None
    await set_resolution_state(
        session, [r.complaint_pk for r in accepted], ResolutionState.ACCEPTED
    )
    await set_resolution_state(session, [r.complaint_pk for r in requeued], ResolutionState.QUEUED)
    events: list[tuple[str, dict[str, Any]]] = []
    for r in accepted:
        payload = {
            "complaint_id": r.complaint_id, "contract": r.contract,
            "environment": environment.value, "resolution_id": str(r.id),
            "accepted_at": zulu(now),
        }  # fmt: skip
        events.append(("resolution.accepted", payload | {"confirmed_by": "download"}))
    events.extend(("resolution.unconfirmed", _unconfirmed(r, environment)) for r in unconfirmed)
    record_events(session, tenant_id, events, occurred_at=now)
    log.warning(
        "uploads in doubt settled by a download", contract=contract,
        accepted=len(accepted), requeued=len(requeued), waiting=again_from is not None,
        unreadable=unseen_from is not None, left_to_a_person=len(unconfirmed),
    )  # fmt: skip
    return Settled(len(accepted), len(requeued), again_from, again_at, unseen_from)


def _gives_up(resolution: Resolution, downloaded_at: datetime) -> bool:
    began = resolution.in_doubt_since
    return (
        began is not None
        and resolution.doubt_misses >= UNCONFIRMED_MISSES
        and began + UNCONFIRMED_AFTER <= downloaded_at
    )


def settle_route(resolution: Resolution) -> str:
    return SETTLE_ROUTE.format(complaint=resolution.complaint_pk, resolution=resolution.id)


def _unconfirmed_note(r: Resolution) -> str:
    began = r.in_doubt_since
    since = f" since {began:%Y-%m-%d %H:%M} UTC" if began is not None else ""
    return (
        f"unconfirmed: {r.doubt_misses} downloads of contract {r.contract}{since} reached "
        f"back to complaint {r.complaint_id} and none showed it readable (its row quarantined, "
        "or gone from CMS's file: closed or withdrawn at CMS, or past CMS's history), so the "
        "hub cannot tell whether CMS has this resolution and will not send it again on its "
        f"own. Check complaint {r.complaint_id} in HPMS, then settle it: {settle_route(r)} "
        'with {"outcome": "accepted"} (CMS has it), "resend" (it does not: upload it again) '
        'or "release" (it does not, and it is not to be sent: write a new resolution)'
    )


def _unconfirmed(r: Resolution, environment: Environment) -> dict[str, Any]:
    """The `resolution.unconfirmed` event's data: identifiers and what to do, no PHI."""
    return {
        "complaint_id": r.complaint_id, "contract": r.contract,
        "environment": environment.value, "resolution_id": str(r.id),
        "in_doubt_since": zulu(r.in_doubt_since) if r.in_doubt_since else None,
        "downloads": r.doubt_misses,
        "next_action": f"Check complaint {r.complaint_id} of contract {r.contract} in HPMS, "
        f"then settle resolution {r.id} as accepted, resend or release ({settle_route(r)})",
    }  # fmt: skip


async def set_resolution_state(
    session: AsyncSession, complaint_pks: Sequence[UUID], state: ResolutionState
) -> None:
    """The complaints' copy of their resolution's state."""
    if complaint_pks:
        await session.execute(
            update(Complaint)
            .where(Complaint.id.in_(complaint_pks))
            .values(resolution_state=state, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
