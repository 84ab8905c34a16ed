"""Uploading queued resolutions to CMS, one (serving key, contract) pair at a time.

Each upload file goes through three transactions: the claim (queued → uploading under a
fresh batch id, committed before anything is sent, rows taken with `FOR UPDATE SKIP
LOCKED` and only while still queued, so two workers never claim the same row), the upload
itself (no transaction open), and the verdict (accepted / rejected per complaint, with
events). A row CMS accepted is never queued again. A batch whose outcome is unknown (CMS's
answer was lost, or the worker died: `hold_stale` finds those once older than any upload
can take) is not sent again but held in doubt until a download settles it
(`hub.complaints.doubt`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from hub.complaints import cms_words, doubt
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.resolutions import (
    NOTES_FIELD,
    SUMMARY_FIELD,
    upload_job,
)
from hub.core import crypto, jobs
from hub.core.db import Database, utcnow, zulu
from hub.core.ids import TenantID, uuid7
from hub.ctm.client import CtmClient, CtmCredentials, CtmEnvironment, UploadResult
from hub.ctm.errors import (
    ContractAccessDenied,
    CtmError,
    CtmProtocolError,
    CtmUnavailable,
    KeyRejected,
    RateLimited,
    UploadOutcomeUnknown,
    UploadRefused,
)
from hub.ctm.upload import ResolutionRow
from hub.events.service import record_events
from hub.keys import service as keys
from hub.keys.models import ApiKey, ApiKeyContract, Contract, Environment
from hub.syncs.models import SyncCursor
from hub.syncs.service import recheck_job, serving_pairs

log = structlog.get_logger(__name__)

NOT_IN_ANSWER = "CMS's answer did not mention this complaint; check it and resubmit"


@dataclass(frozen=True)
class UploadPolicy:
    rows_per_file: int = 500
    files_per_run: int = 20  # then the job ends; the next cron tick carries on
    # Longer than the worker's job timeout plus the client's retries: a batch still
    # 'uploading' after this belongs to a worker that died.
    stale_after: timedelta = timedelta(minutes=15)


@dataclass
class UploadOutcome:
    files: int = 0
    accepted: int = 0
    rejected: int = 0
    retry_in: float | None = None  # set when the job should come back (CMS busy or down)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class _Item:
    resolution_id: UUID
    complaint_pk: UUID
    complaint_id: str
    contract: str


@dataclass(frozen=True)
class _Claim:
    tenant_id: TenantID
    key_id: UUID
    environment: Environment
    contract: str
    batch: UUID
    credentials: CtmCredentials
    items: list[_Item]
    rows: list[ResolutionRow] = field(repr=False)
    local_problems: dict[str, list[str]] = field(default_factory=dict)


def _satisfied(value: str | None) -> bool | None:
    return {"Y": True, "N": False}.get(value or "")


async def _serves(session: AsyncSession, key: ApiKey, contract: str) -> bool:
    """Whether the key is mapped to the contract with its access not lost."""
    found = await session.scalar(
        select(ApiKeyContract.id)
        .join(Contract, Contract.id == ApiKeyContract.contract_id)
        .where(
            ApiKeyContract.api_key_id == key.id,
            Contract.number == contract,
            ApiKeyContract.access_lost_at.is_(None),
        )
    )
    return found is not None


async def _claim(
    db: Database, tenant_id: TenantID, key_id: UUID, contract: str, policy: UploadPolicy
) -> _Claim | None:
    async with db.transaction() as session:
        key = await session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
        )
        if key is None or not key.is_usable:
            return None
        if not await _serves(session, key, contract):
            return None  # CMS refused this key the contract: the cron retargets the rows
        ids = (
            await session.scalars(
                select(Resolution.id)
                .where(
                    Resolution.tenant_id == tenant_id,
                    Resolution.contract == contract,
                    Resolution.api_key_id == key_id,
                    Resolution.state == ResolutionState.QUEUED,
                )
                .order_by(Resolution.created_at, Resolution.id)
                .limit(policy.rows_per_file)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not ids:
            return None
        batch, now = uuid7(), utcnow()
        # `state == queued` again: on SQLite (no row locks) the UPDATE is what decides.
        await session.execute(
            update(Resolution)
            .where(Resolution.id.in_(ids), Resolution.state == ResolutionState.QUEUED)
            .values(
                state=ResolutionState.UPLOADING,
                upload_batch=batch,
                uploaded_at=now,
                updated_at=now,
                note=None,
            )
            .execution_options(synchronize_session=False)
        )
        claimed = (
            await session.scalars(
                select(Resolution)
                .where(Resolution.upload_batch == batch)
                .order_by(Resolution.created_at, Resolution.id)
            )
        ).all()
        if not claimed:
            return None
        await doubt.set_resolution_state(
            session, [r.complaint_pk for r in claimed], ResolutionState.UPLOADING
        )
        credentials = await keys.credentials_for(session, key)
        return await _build_claim(session, key, contract, batch, credentials, claimed)


async def _build_claim(
    session: AsyncSession,
    key: ApiKey,
    contract: str,
    batch: UUID,
    credentials: CtmCredentials,
    claimed: Sequence[Resolution],
) -> _Claim:
    cipher = await crypto.cipher_for(session, key.tenant_id)
    rows, items, problems = [], [], {}
    for r in claimed:
        row = ResolutionRow(
            complaint_id=r.complaint_id,
            contract_id=r.contract,
            resolution_date=r.resolution_date,
            resolution_summary=cipher.open(r.summary, field=SUMMARY_FIELD, row=r.id),
            casework_notes=cipher.open(r.casework_notes, field=NOTES_FIELD, row=r.id)
            if r.casework_notes is not None
            else "",
            complainant_satisfied=_satisfied(r.complainant_satisfied),
            resolution_notification=r.resolution_notification or "",
        )
        items.append(_Item(r.id, r.complaint_pk, r.complaint_id, r.contract))
        if found := row.problems():
            problems[r.complaint_id] = found  # CMS would refuse it: not sent
        else:
            rows.append(row)
    return _Claim(
        TenantID(key.tenant_id), key.id, key.environment, contract, batch, credentials,
        items, rows, problems,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Why:
    """Why a row was rejected: words safe anywhere, and CMS's own (sealed), if CMS gave any."""

    safe: list[str]
    said: list[str] | None = None


def _verdict(
    item: _Item, accepted: set[str], refused: Mapping[str, _Why]
) -> tuple[ResolutionState, _Why | None]:
    if item.complaint_id in accepted and item.complaint_id not in refused:
        return ResolutionState.ACCEPTED, None
    return ResolutionState.REJECTED, refused.get(item.complaint_id) or _Why([NOT_IN_ANSWER])


def _reasons(claim: _Claim, result: UploadResult) -> dict[str, _Why]:
    """Each refused row's reasons: CMS's words (per row) in their safe form, with the words
    sealed; the rows the hub did not send for its own reasons (words of the hub's)."""
    known = {item.complaint_id for item in claim.items}
    refused = {
        r.complaint_id: _Why(
            [cms_words.safe_form(e, identifiers=known | {claim.contract}) for e in r.errors],
            list(r.errors),
        )
        for r in result.rejected
    }
    return refused | {ident: _Why(list(p)) for ident, p in claim.local_problems.items()}


def _refusal(claim: _Claim, error: UploadRefused) -> tuple[str, dict[str, _Why]]:
    """A whole-file refusal: its safe form (for the job's result) and every row's reasons."""
    safe = f"CMS refused the whole upload file ({error.status})"
    if error.detail:
        known = {item.complaint_id for item in claim.items} | {claim.contract}
        safe += ": " + cms_words.safe_form(error.detail, identifiers=known)
    return safe, {item.complaint_id: _Why([safe], [str(error)]) for item in claim.items}


async def _decide(
    db: Database, claim: _Claim, result: UploadResult, refused: Mapping[str, _Why] | None = None
) -> tuple[int, int]:
    """Record CMS's verdict per complaint; rows the sweep took back meanwhile are skipped.
    Reasons are `refused` when given (a whole-file refusal), else read from `result`."""
    accepted = set(result.accepted)
    refused = _reasons(claim, result) if refused is None else refused
    decided: dict[ResolutionState, list[UUID]] = defaultdict(list)
    events: list[tuple[str, dict[str, Any]]] = []
    async with db.transaction() as session:
        now = utcnow()
        cipher = await crypto.cipher_for(session, claim.tenant_id)
        mine = {
            r.id: r
            for r in await session.scalars(
                select(Resolution).where(
                    Resolution.upload_batch == claim.batch,
                    Resolution.state == ResolutionState.UPLOADING,
                )
            )
        }
        for item in claim.items:
            resolution = mine.get(item.resolution_id)
            if resolution is None:
                continue
            state, why = _verdict(item, accepted, refused)
            errors = None if why is None else why.safe
            resolution.state, resolution.cms_errors = state, errors
            said = None if why is None else why.said
            resolution.cms_said = cms_words.seal_said(cipher, said, row=resolution.id)
            resolution.decided_at = resolution.updated_at = now
            resolution.in_doubt_since = None  # held in doubt meanwhile, the answer came
            resolution.doubt_misses, resolution.unconfirmed_at = 0, None
            decided[state].append(item.complaint_pk)
            payload: dict[str, Any] = {
                "complaint_id": item.complaint_id, "contract": item.contract,
                "environment": claim.environment.value, "resolution_id": str(item.resolution_id),
            }  # fmt: skip
            if errors is None:
                events.append(("resolution.accepted", payload | {"accepted_at": zulu(now)}))
            else:
                payload |= {"errors": errors, "reason": "; ".join(errors)}
                events.append(("resolution.rejected", payload))
        for state, pks in decided.items():
            await doubt.set_resolution_state(session, pks, state)
        record_events(session, claim.tenant_id, events, occurred_at=now)
    return len(decided[ResolutionState.ACCEPTED]), len(decided[ResolutionState.REJECTED])


def _retry_in(error: Exception, attempt: int) -> float | None:
    if isinstance(error, RateLimited):
        return max(1.0, error.retry_after or 30.0)
    if isinstance(error, CtmUnavailable | CtmProtocolError):
        return float(min(300.0, 5.0 * 2**attempt))
    return None


async def _give_back(db: Database, claim: _Claim, error: Exception) -> None:
    """The upload failed: the batch goes back to the queue, and a refused key or contract is
    handed to the keys lifecycle (the cron then points the rows at another serving key)."""
    reason = str(error) if isinstance(error, CtmError) else f"{type(error).__name__}"
    async with db.transaction() as session:
        if isinstance(error, KeyRejected):
            await keys.mark_invalid(
                session, tenant_id=claim.tenant_id, key_id=claim.key_id,
                reason="CMS refused the token exchange (403) during a resolution upload",
                refused_key_id=error.key_id,
            )  # fmt: skip
        elif isinstance(error, ContractAccessDenied):
            await keys.mark_access_lost(
                session, tenant_id=claim.tenant_id, key_id=claim.key_id,
                contract=claim.contract, reason="CMS answered 403 to a resolution upload",
                refused_key_id=error.key_id,
            )  # fmt: skip
        await _requeue(session, [claim.batch], note=f"upload failed: {reason}"[:500])


async def _requeue(session: AsyncSession, batches: Sequence[UUID], *, note: str) -> int:
    rows = (
        await session.scalars(
            select(Resolution)
            .where(
                Resolution.upload_batch.in_(batches),
                Resolution.state == ResolutionState.UPLOADING,
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    now = utcnow()
    for r in rows:
        r.state, r.upload_batch, r.uploaded_at, r.note, r.updated_at = (
            ResolutionState.QUEUED, None, None, note, now,
        )  # fmt: skip
        r.in_doubt_since = None  # CMS answered: it did not take the file
        r.doubt_misses, r.unconfirmed_at = 0, None
    await doubt.set_resolution_state(
        session, [r.complaint_pk for r in rows], ResolutionState.QUEUED
    )
    return len(rows)


async def upload_pending(
    db: Database,
    clients: Mapping[CtmEnvironment, CtmClient],
    *,
    tenant_id: TenantID,
    key_id: UUID,
    contract: str,
    attempt: int = 1,
    policy: UploadPolicy | None = None,
) -> UploadOutcome:
    """Upload every queued resolution of the pair, file by file. Never raises for CMS's
    answers: the outcome says whether the job should come back, and when."""
    policy = policy or UploadPolicy()
    outcome = UploadOutcome()
    for _ in range(policy.files_per_run):
        try:
            claim = await _claim(db, tenant_id, key_id, contract, policy)
        except keys.KeyNotUsable as error:
            outcome.error = error.detail
            break
        if claim is None:
            break
        try:
            result = (
                await clients[CtmEnvironment(claim.environment.value)].upload_resolutions(
                    claim.credentials, claim.rows
                )
                if claim.rows
                else UploadResult([], [])
            )
        except UploadRefused as error:
            # Refused whole: the same file would be refused again. Its rows are rejected
            # with what CMS said, for the caseworker (or an operator) to act on.
            log.warning(
                "resolution upload refused whole", contract=contract, key=str(key_id),
                status=error.status, rows=len(claim.items),
            )  # fmt: skip
            # CMS's words may quote the file: sealed with each row, their safe form elsewhere
            # (the job's result is logged).
            safe, refused = _refusal(claim, error)
            _, rejected = await _decide(db, claim, UploadResult([], []), refused)
            outcome.files += 1
            outcome.rejected += rejected
            outcome.error = safe
            break
        except UploadOutcomeUnknown as error:
            log.warning(
                "resolution upload in doubt", contract=contract, key=str(key_id),
                rows=len(claim.items),
            )  # fmt: skip
            await _hold_in_doubt(db, claim, error)
            outcome.error = str(error)
            break
        except Exception as error:
            log.warning(
                "resolution upload failed", contract=contract, key=str(key_id),
                error_class=type(error).__name__, rows=len(claim.items),
            )  # fmt: skip
            await _give_back(db, claim, error)
            outcome.error = str(error) if isinstance(error, CtmError) else type(error).__name__
            outcome.retry_in = _retry_in(error, attempt)
            break
        accepted, rejected = await _decide(db, claim, result)
        outcome.files += 1
        outcome.accepted += accepted
        outcome.rejected += rejected
    return outcome


# The cron --------------------------------------------------------------------------------


async def hold_stale(session: AsyncSession, *, policy: UploadPolicy | None = None) -> int:
    """Batches left 'uploading' longer than any live upload takes (their worker died, before
    or after sending) are held in doubt: a download of their contract settles them."""
    policy = policy or UploadPolicy()
    now = utcnow()
    rows = (
        await session.scalars(
            select(Resolution)
            .where(
                Resolution.state == ResolutionState.UPLOADING,
                Resolution.in_doubt_since.is_(None),
                Resolution.uploaded_at < now - policy.stale_after,
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    if not rows:
        return 0
    await mark_in_doubt(
        session, rows, now=now,
        note="in doubt: the upload did not finish (the worker stopped), and CMS may have it; "
        "the next download of the contract settles it",
    )  # fmt: skip
    log.warning("stale resolution uploads held in doubt", rows=len(rows))
    return len(rows)


async def _hold_in_doubt(db: Database, claim: _Claim, error: UploadOutcomeUnknown) -> None:
    async with db.transaction() as session:
        rows = (
            await session.scalars(
                select(Resolution)
                .where(
                    Resolution.upload_batch == claim.batch,
                    Resolution.state == ResolutionState.UPLOADING,
                )
                .with_for_update(skip_locked=True)
            )
        ).all()
        note = f"in doubt: {error}; the next download of the contract settles it"
        await mark_in_doubt(session, rows, now=utcnow(), note=note)


async def mark_in_doubt(
    session: AsyncSession, rows: Sequence[Resolution], *, now: datetime, note: str
) -> None:
    """Hold these `uploading` rows until a download shows whether CMS has them: each of
    their contracts' next download reaches back to the earliest of their complaints, and
    starts as soon as it may settle them (`doubt.SETTLE_AFTER`: a recheck for every pair
    serving the contract, deferred that long, which then queues the pair's sync)."""
    if not rows:
        return
    for r in rows:
        r.in_doubt_since, r.note, r.updated_at = now, note[:1000], now
        r.doubt_misses, r.unconfirmed_at = 0, None
    found = await session.execute(
        select(Complaint.id, Complaint.received_date).where(
            Complaint.id.in_([r.complaint_pk for r in rows])
        )
    )
    received: dict[UUID, date] = {pk: day for pk, day in found}
    since: dict[tuple[UUID, str], date] = {}
    for r in rows:
        day = received.get(r.complaint_pk)
        if day is not None:
            where = (r.tenant_id, r.contract)
            since[where] = min(since.get(where, day), day)
    for (tenant_id, contract), day in since.items():
        cursors = await session.scalars(
            select(SyncCursor).where(
                SyncCursor.tenant_id == tenant_id, SyncCursor.contract == contract
            )
        )
        for cursor in cursors:
            cursor.recheck_from = min(cursor.recheck_from or day, day)
            cursor.next_due_at = now + doubt.SETTLE_AFTER
        for serving in await serving_pairs(session, TenantID(tenant_id)):
            if serving.contract == contract:
                job = recheck_job(
                    serving.tenant_id, serving.key_id, contract, defer_by=doubt.SETTLE_AFTER
                )
                jobs.enqueue(session, job)


async def _retarget(
    session: AsyncSession, queued: Sequence[Resolution]
) -> set[tuple[UUID, UUID, str]]:
    """Point queued rows at the key now serving their contract in their environment (the
    old key may have been replaced, refused, or lost the contract); the (tenant, key,
    contract) pairs that serve."""
    if not queued:
        return set()
    pairs_now = await serving_pairs(session)
    serving: dict[tuple[UUID, Environment, str], UUID] = {
        (p.tenant_id, p.environment, p.contract): p.key_id for p in pairs_now
    }
    # Each row follows its complaint's environment (a sandbox one never goes to production).
    environments: dict[UUID, Environment] = {}
    pks = list({r.complaint_pk for r in queued})
    for start in range(0, len(pks), 5000):
        environments.update(
            (ident, environment)
            for ident, environment in await session.execute(
                select(Complaint.id, Complaint.environment).where(
                    Complaint.id.in_(pks[start : start + 5000])
                )
            )
        )
    for r in queued:
        environment = environments.get(r.complaint_pk)
        key_id = (
            None if environment is None else serving.get((r.tenant_id, environment, r.contract))
        )
        if key_id is not None and key_id != r.api_key_id:
            r.api_key_id = key_id
    return {(p.tenant_id, p.key_id, p.contract) for p in pairs_now}


async def schedule_uploads(session: AsyncSession, *, policy: UploadPolicy | None = None) -> int:
    """Re-queue stale batches, then enqueue (after commit) one upload job per (tenant,
    serving key, contract) with queued resolutions; returns how many jobs. Rows whose key
    no longer serves their contract (refused, or its access lost) and that no other key
    serves wait in the queue: CMS is not asked again with what it refused."""
    await hold_stale(session, policy=policy)
    queued = (
        await session.scalars(
            select(Resolution)
            .options(
                load_only(
                    Resolution.tenant_id,
                    Resolution.complaint_pk,
                    Resolution.contract,
                    Resolution.api_key_id,
                    Resolution.state,
                )
            )
            .where(Resolution.state == ResolutionState.QUEUED)
        )
    ).all()
    serving = await _retarget(session, queued)
    pairs = {
        pair
        for r in queued
        if r.api_key_id is not None and (pair := (r.tenant_id, r.api_key_id, r.contract)) in serving
    }
    for tenant_id, key_id, contract in sorted(pairs, key=str):
        assert key_id is not None
        jobs.enqueue(session, upload_job(tenant_id, key_id, contract))
    return len(pairs)
