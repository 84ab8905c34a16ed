"""Which (key, contract) pairs are due, and one sync of one pair from CMS into complaints.

A sync runs in three transactions: the run row is written first (so a dead worker leaves a
trace), the whole download is upserted in one transaction with its events (a truncated or
failed download imports nothing, and a rerun after a crash finds every complaint exactly
once), and the outcome is written last.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import structlog
from arq.jobs import Job as ArqJob
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules as alert_rules
from hub.audit import service as audit
from hub.auth.principal import Principal
from hub.complaints import doubt
from hub.complaints.service import Deadlines, Importer
from hub.core import crypto, jobs
from hub.core.db import Database, lost_connection, utcnow
from hub.core.errors import Invalid, NotFound
from hub.core.ids import TenantID, uuid7
from hub.core.jobs import JOB_TIMEOUT_SECONDS
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.errors import (
    ContractAccessDenied,
    CtmError,
    CtmProtocolError,
    CtmUnavailable,
    FileRejected,
    KeyRejected,
    RateLimited,
)
from hub.ctm.records import Issue
from hub.events.service import record_event
from hub.keys import service as keys
from hub.keys.models import ApiKey, ApiKeyContract, Contract, Environment, KeyStatus
from hub.settings import Settings
from hub.syncs.models import QuarantinedRow, RunOutcome, SyncCursor, SyncRun, SyncSchedule
from hub.tenants.models import Tenant, TenantStatus

log = structlog.get_logger(__name__)

RAW_FIELD = "quarantined_rows.raw"
KEY_REFUSED = "CMS refused the token exchange (403): the key was rotated, expired or deactivated"
CANCELLED = "cut short: the sync ran out of time (the job's time limit) or its worker stopped"
ABANDONED = "abandoned: its worker stopped (killed, or lost) before the sync finished"
# A run still `running` this long after it started had its worker die: no job runs longer.
ABANDONED_AFTER = timedelta(seconds=2 * JOB_TIMEOUT_SECONDS)


@dataclass(frozen=True)
class SyncPolicy:
    default_interval: timedelta = timedelta(minutes=15)
    overlap: timedelta = timedelta(days=2)  # re-ask this much before the cursor
    first_window: timedelta = timedelta(days=90)  # how far back a first sync reaches
    per_tenant_per_tick: int = 50  # fairness: no tenant takes a whole tick
    batch_size: int = 500
    deadlines: Deadlines = field(default_factory=Deadlines)
    # How long after an upload's doubt began a download may settle it (`doubt.settle`).
    doubt_settle_after: timedelta = doubt.SETTLE_AFTER

    @classmethod
    def from_settings(cls, settings: Settings) -> SyncPolicy:
        return cls(
            default_interval=timedelta(minutes=settings.sync_interval_minutes),
            overlap=timedelta(days=settings.sync_overlap_days),
            first_window=timedelta(days=settings.sync_first_window_days),
            deadlines=Deadlines(
                immediate_days=settings.deadline_immediate_days,
                standard_days=settings.deadline_standard_days,
                due_soon=timedelta(hours=settings.due_soon_hours),
            ),
        )


def sync_job(tenant_id: UUID, key_id: UUID, contract: str, trigger: str = "schedule") -> jobs.Job:
    """One pair's sync; the job id makes a second enqueue a no-op while one is queued."""
    return jobs.Job(
        "syncs.sync_contract",
        (str(tenant_id), str(key_id), contract, trigger),
        job_id=f"sync:{key_id}:{contract}",
    )


def recheck_job(tenant_id: UUID, key_id: UUID, contract: str, *, defer_by: timedelta) -> jobs.Job:
    """A download that may settle the contract's uploads in doubt, asked for `defer_by` from
    now: then it queues the pair's sync (`sync_job`, trigger `recheck`). It waits under a job
    id of its own, not the pair's: while it waits, a "sync now" or the schedule still queues
    the pair's sync at once (arq would take a second job under a waiting one's id for a no-op)."""
    return jobs.Job(
        "syncs.recheck",
        (str(tenant_id), str(key_id), contract),
        job_id=f"sync-recheck:{key_id}:{contract}",
        defer_by=defer_by,
    )


async def waiting_until(redis: Any, job: jobs.Job) -> datetime | None:
    """When the job queued under `job`'s id runs, if it waits for a later time (a retry after
    CMS's fault or its Retry-After, its key busy): a job sent meanwhile under that id is a
    no-op. None when no job waits (none is queued, or it is due now)."""
    if job.job_id is None:
        return None
    found = await ArqJob(job.job_id, redis).info()
    if found is None or found.score is None:
        return None
    when = datetime.fromtimestamp(found.score / 1000, tz=UTC)
    return when if when > utcnow() + timedelta(seconds=1) else None


# Scheduling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    tenant_id: TenantID
    environment: Environment
    key_id: UUID
    contract: str


async def serving_pairs(session: AsyncSession, tenant_id: TenantID | None = None) -> list[Pair]:
    """Per (tenant, environment, contract) the key that serves it: the oldest active key
    whose mapping still has access (the documented deterministic choice)."""
    statement = (
        select(ApiKey.tenant_id, ApiKey.environment, ApiKey.id, Contract.number)
        .join(ApiKeyContract, ApiKeyContract.api_key_id == ApiKey.id)
        .join(Contract, Contract.id == ApiKeyContract.contract_id)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(
            ApiKey.status == KeyStatus.ACTIVE,
            ApiKeyContract.access_lost_at.is_(None),
            Tenant.status == TenantStatus.ACTIVE,  # offboarding retires keys; this is a 2nd guard
        )
        .order_by(
            ApiKey.tenant_id, ApiKey.environment, Contract.number, ApiKey.created_at, ApiKey.id
        )
    )
    if tenant_id is not None:
        statement = statement.where(ApiKey.tenant_id == tenant_id)
    pairs: dict[tuple[UUID, Environment, str], Pair] = {}
    for tenant, environment, key_id, number in await session.execute(statement):
        pairs.setdefault(
            (tenant, environment, number), Pair(TenantID(tenant), environment, key_id, number)
        )
    return list(pairs.values())


async def due_pairs(session: AsyncSession, *, now: datetime, policy: SyncPolicy) -> list[Pair]:
    """Pairs due now, interleaved across tenants and capped per tenant, so one tenant with
    500 contracts does not starve the others. A tenant's pairs come longest-waiting first
    (never synced before all): over its cap, its pairs take turns rather than the same
    ones being taken at every tick."""
    schedules = {
        (s.tenant_id, s.environment): s for s in await session.scalars(select(SyncSchedule))
    }
    cursors = {(c.api_key_id, c.contract): c for c in await session.scalars(select(SyncCursor))}
    per_tenant: dict[UUID, list[tuple[datetime | None, Pair]]] = defaultdict(list)
    for pair in await serving_pairs(session):
        schedule = schedules.get((pair.tenant_id, pair.environment))
        if schedule is not None and schedule.is_paused:
            continue
        cursor = cursors.get((pair.key_id, pair.contract))
        if cursor is None or cursor.next_due_at is None or cursor.next_due_at <= now:
            per_tenant[pair.tenant_id].append(
                (None if cursor is None else cursor.next_due_at, pair)
            )
    due: list[Pair] = []
    queues = [_longest_waiting(q, now)[: policy.per_tenant_per_tick] for q in per_tenant.values()]
    for round_ in range(max((len(q) for q in queues), default=0)):
        due.extend(q[round_] for q in queues if round_ < len(q))
    return due


def _longest_waiting(due: list[tuple[datetime | None, Pair]], now: datetime) -> list[Pair]:
    """Never synced first, then by when each fell due; ties by contract."""
    return [pair for _, pair in sorted(due, key=lambda d: (d[0] is not None, d[0] or now))]


async def schedule_due(
    session: AsyncSession, *, now: datetime | None = None, policy: SyncPolicy
) -> int:
    """Close runs whose worker died (`close_abandoned`), then enqueue (after commit) a sync
    for every due pair; returns how many."""
    now = now or utcnow()
    await close_abandoned(session, now=now)
    pairs = await due_pairs(session, now=now, policy=policy)
    for pair in pairs:
        jobs.enqueue(session, sync_job(pair.tenant_id, pair.key_id, pair.contract))
    return len(pairs)


async def close_abandoned(session: AsyncSession, *, now: datetime) -> int:
    """Runs still `running` long after any job could have ended (their worker was killed):
    failed, saying so (a `sync.failed` event, as for any failure), and counted on their
    pair's cursor. Returns how many."""
    runs = (
        await session.scalars(
            select(SyncRun)
            .where(
                SyncRun.outcome == RunOutcome.RUNNING,
                SyncRun.started_at < now - ABANDONED_AFTER,
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    for run in runs:
        run.outcome, run.finished_at, run.error = RunOutcome.FAILED, now, ABANDONED
        cursor = None
        if run.api_key_id is not None:
            cursor = await session.scalar(
                select(SyncCursor).where(
                    SyncCursor.api_key_id == run.api_key_id, SyncCursor.contract == run.contract
                )
            )
        if cursor is not None and (cursor.last_success_at or run.started_at) <= run.started_at:
            cursor.consecutive_failures += 1
            cursor.last_error = ABANDONED
            key = await session.get(ApiKey, run.api_key_id)
            if key is not None:
                await alert_rules.on_sync_outcome(
                    session, key=key, cursor=cursor, succeeded=False, now=now
                )
        _record_failed(session, run, cursor, will_retry=False, now=now)
    if runs:
        log.warning("abandoned sync runs closed", count=len(runs))
    return len(runs)


@dataclass(frozen=True, slots=True)
class Requested:
    pair: Pair
    running_since: datetime | None  # its sync was running: it syncs again once that ends


async def request_sync(
    session: AsyncSession, *, tenant_id: TenantID, contract: str | None = None
) -> list[Requested]:
    """ "Sync now": every serving pair of the tenant (or one contract), paused or not.

    A pair's queued sync is not queued twice (its job id). A pair whose sync is running now
    may have asked CMS before the change the caller wants to see: its cursor is made due
    now, and the running sync, seeing that asked for after it began, runs once more when it
    ends (`SyncResult.again`)."""
    pairs = [p for p in await serving_pairs(session, tenant_id) if contract in (None, p.contract)]
    if contract is not None and not pairs:
        raise NotFound(
            "contract", contract, detail=f"no active key of this tenant serves contract {contract}"
        )
    now = utcnow()
    wanted = {(p.key_id, p.contract) for p in pairs}
    for cursor in await session.scalars(
        select(SyncCursor).where(SyncCursor.tenant_id == tenant_id)
    ):
        if (cursor.api_key_id, cursor.contract) in wanted:
            cursor.next_due_at = now
    running: dict[tuple[UUID | None, str], datetime] = {}
    for run in await session.scalars(
        select(SyncRun)
        .where(SyncRun.tenant_id == tenant_id, SyncRun.outcome == RunOutcome.RUNNING)
        .order_by(SyncRun.started_at)
    ):
        running.setdefault((run.api_key_id, run.contract), run.started_at)
    for pair in pairs:
        jobs.enqueue(session, sync_job(pair.tenant_id, pair.key_id, pair.contract, "manual"))
    return [Requested(p, running.get((p.key_id, p.contract))) for p in pairs]


def _next_due(cursor: SyncCursor, plan: _Plan, scheduled: datetime) -> datetime:
    """When the pair is due after this run: `scheduled`, or sooner when a sync was asked
    for while the run was going (a "sync now", an upload's recheck: the cursor's due time
    is no longer the one the run began with), which the run may have begun too early to
    see."""
    asked = cursor.next_due_at
    if asked is not None and asked != plan.due_at:
        return min(asked, scheduled)
    return scheduled


async def interval_for(
    session: AsyncSession, tenant_id: UUID, environment: Environment, policy: SyncPolicy
) -> timedelta:
    schedule = await session.scalar(
        select(SyncSchedule).where(
            SyncSchedule.tenant_id == tenant_id, SyncSchedule.environment == environment
        )
    )
    return timedelta(minutes=schedule.interval_minutes) if schedule else policy.default_interval


# One sync --------------------------------------------------------------------------------


@dataclass
class SyncResult:
    outcome: RunOutcome
    run_id: UUID | None = None
    retry_in: float | None = None  # set when the job should be retried by arq
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    error: str | None = None
    # It succeeded, and a sync of the pair was asked for while it ran: run again now.
    again: bool = False


@dataclass(frozen=True)
class _Plan:
    tenant_id: TenantID
    key: ApiKey
    contract: str
    run_id: UUID
    start: date
    end: date
    due_at: datetime | None  # the cursor's due time as the run began


async def _cursor(
    session: AsyncSession, tenant_id: TenantID, key_id: UUID, contract: str
) -> SyncCursor:
    cursor = await session.scalar(
        select(SyncCursor).where(SyncCursor.api_key_id == key_id, SyncCursor.contract == contract)
    )
    if cursor is None:
        cursor = SyncCursor(tenant_id=tenant_id, api_key_id=key_id, contract=contract)
        session.add(cursor)
        await session.flush()
    return cursor


async def _begin(
    db: Database, *, tenant_id: TenantID, key_id: UUID, contract: str, trigger: str,
    now: datetime, policy: SyncPolicy,
) -> _Plan | None:  # fmt: skip
    async with db.transaction() as session:
        key = await session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.id == key_id)
        )
        if key is None or not key.is_usable:
            log.info("sync skipped: key not usable", key=str(key_id), contract=contract)
            return None
        cursor = await _cursor(session, tenant_id, key_id, contract)
        end = now.date()
        start = (
            cursor.synced_through - policy.overlap
            if cursor.synced_through is not None
            else end - policy.first_window
        )
        if cursor.recheck_from is not None:  # uploads in doubt: reach their complaints
            start = min(start, cursor.recheck_from)
        cursor.last_attempt_at = now
        run = SyncRun(
            tenant_id=tenant_id, api_key_id=key_id, contract=contract, trigger=trigger,
            window_start=start, window_end=end, started_at=now,
        )  # fmt: skip
        session.add(run)
        await session.flush()
        return _Plan(tenant_id, key, contract, run.id, start, end, cursor.next_due_at)


async def _import(
    db: Database, client: CtmClient, plan: _Plan, policy: SyncPolicy, started: float
) -> SyncResult:
    result = SyncResult(RunOutcome.SUCCEEDED, plan.run_id)
    async with db.transaction() as session:
        key = await session.get(ApiKey, plan.key.id)
        assert key is not None
        credentials = await keys.credentials_for(session, key)
        cipher = await crypto.cipher_for(session, plan.tenant_id)
        download = client.download_complaints(
            credentials, plan.contract, plan.start, plan.end, batch_size=policy.batch_size
        )
        now = utcnow()
        file_name = f"{plan.contract}_{plan.start:%Y%m%d}_{plan.end:%Y%m%d}.csv"

        async def store_quarantined(issues: list[Issue]) -> None:
            await _store_quarantined(session, cipher, plan, file_name, issues, now)

        watch = await doubt.in_doubt(
            session, tenant_id=plan.tenant_id, contract=plan.contract, environment=key.environment
        )
        importer = Importer(
            session, cipher, tenant_id=plan.tenant_id, environment=key.environment,
            api_key_id=key.id,
            complete=download.complete, sync_run_id=plan.run_id, now=now,
            deadlines=policy.deadlines, take_quarantined=download.take_quarantined,
            store_quarantined=store_quarantined, watch=watch,
        )  # fmt: skip
        try:
            async for batch in download.rows():
                layout = download.summary.layout
                importer.layout = layout.value if layout else "current"
                await importer.add(batch)
            counts = await importer.finish()
        except BaseException:
            await importer.abort()
            raise
        await store_quarantined(download.take_quarantined())  # those the file's end found
        # Uploads in doubt that this download saw: CMS has them (accepted) or not (queued
        # again, for the resolutions cron to upload).
        settled = await doubt.settle(
            session, tenant_id=plan.tenant_id, contract=plan.contract,
            environment=key.environment, covered_from=plan.start, downloaded_at=now,
            seen=importer.watched, settle_after=policy.doubt_settle_after,
        )  # fmt: skip
        result.new, result.changed, result.unchanged = (
            counts.new,
            counts.changed,
            counts.unchanged,
        )
        summary = download.summary
        result.quarantined = summary.quarantined_count
        run = await session.get(SyncRun, plan.run_id)
        assert run is not None
        _finish(run, result, started, layout=summary.layout.value if summary.layout else None)
        run.rows_read, run.warnings, run.bytes_read = (
            summary.rows_read,
            summary.warning_count,
            download.bytes_read,
        )
        cursor = await _cursor(session, plan.tenant_id, key.id, plan.contract)
        await session.refresh(cursor, ["next_due_at"])  # as asked for meanwhile, if it was
        interval = await interval_for(session, plan.tenant_id, key.environment, policy)
        cursor.synced_through, cursor.last_success_at = plan.end, now
        scheduled = now + interval
        if cursor.recheck_from is not None and cursor.recheck_from >= plan.start:
            cursor.recheck_from = None  # reached (a later, earlier one waits for the next)
        if (again := settled.again_from) is not None:
            # Uploads in doubt this download came too early for, or did not reach: the next
            # one reaches them, soon. One asked for too early (a "sync now" while the recheck
            # waited) asks for the recheck again: no schedule runs a paused tenant's.
            cursor.recheck_from = min(again, cursor.recheck_from or again)
            scheduled = max(now, settled.again_at or now)
            if scheduled > now:
                wait = scheduled - now
                jobs.enqueue(
                    session, recheck_job(plan.tenant_id, key.id, plan.contract, defer_by=wait)
                )
        cursor.next_due_at = _next_due(cursor, plan, scheduled)
        result.again = cursor.next_due_at <= utcnow()
        if (unseen := settled.unseen_from) is not None:
            # Uploads in doubt whose complaint this download had no readable row for: later
            # downloads, on the schedule, keep reaching back to them.
            cursor.recheck_from = min(unseen, cursor.recheck_from or unseen)
        cursor.consecutive_failures, cursor.last_error, cursor.is_blocked = 0, None, False
        await keys.record_use(session, key, now=now)
        await alert_rules.on_sync_outcome(session, key=key, cursor=cursor, succeeded=True, now=now)
        record_event(
            session, plan.tenant_id, "sync.completed",
            {
                "contract": plan.contract, "key": str(key.id), "run": str(plan.run_id),
                "window": [plan.start.isoformat(), plan.end.isoformat()],
                "new": result.new, "changed": result.changed, "unchanged": result.unchanged,
                "quarantined": result.quarantined,
            },
        )  # fmt: skip
    return result


async def _store_quarantined(
    session: AsyncSession,
    cipher: crypto.TenantCipher,
    plan: _Plan,
    file_name: str,
    issues: list[Issue],
    now: datetime,
) -> None:
    """Bad rows as they are found, each with its number, reason and cells (sealed): kept
    for the tenant, never silently dropped, and never all held in memory at once."""
    if not issues:
        return
    rows = []
    for issue in issues:
        ident = uuid7()
        raw = json.dumps(list(issue.cells)) if issue.cells is not None else None
        rows.append({
            "id": ident, "tenant_id": plan.tenant_id, "sync_run_id": plan.run_id,
            "contract": plan.contract, "file_name": file_name, "row_number": issue.row,
            "reason": issue.message[:500],
            "raw": cipher.seal(raw, field=RAW_FIELD, row=ident) if raw is not None else None,
            "created_at": now, "updated_at": now,
        })  # fmt: skip
    await session.execute(insert(_QUARANTINED), rows)


_QUARANTINED = cast("Table", QuarantinedRow.__table__)


def _finish(run: SyncRun, result: SyncResult, started: float, *, layout: str | None = None) -> None:
    run.outcome = result.outcome
    run.finished_at = utcnow()
    run.duration_ms = int((time.monotonic() - started) * 1000)
    run.layout = layout or run.layout
    run.rows_new, run.rows_changed = result.new, result.changed
    run.rows_unchanged, run.rows_quarantined = result.unchanged, result.quarantined
    run.error = result.error


def _classify(error: Exception, attempt: int) -> SyncResult:
    """What a failure means for the run and for the job."""
    if isinstance(error, RateLimited):
        return SyncResult(
            RunOutcome.FAILED, retry_in=max(1.0, error.retry_after or 30.0), error=str(error)
        )
    if isinstance(error, KeyRejected | ContractAccessDenied):
        return SyncResult(RunOutcome.BLOCKED, error=str(error))
    if isinstance(error, CtmUnavailable | CtmProtocolError):
        return SyncResult(
            RunOutcome.FAILED, retry_in=min(300.0, 5.0 * 2**attempt), error=str(error)
        )
    if isinstance(error, CtmError | FileRejected):
        return SyncResult(RunOutcome.FAILED, error=str(error))
    if lost_connection(error):  # a restart or failover: soon back, as CMS's faults are
        return SyncResult(
            RunOutcome.FAILED, retry_in=min(300.0, 5.0 * 2**attempt),
            error="the database connection was lost (a restart or failover?); retrying",
        )  # fmt: skip
    return SyncResult(RunOutcome.FAILED, error=f"{type(error).__name__}: internal error")


async def _fail(
    db: Database,
    plan: _Plan,
    error: BaseException,
    result: SyncResult,
    started: float,
    policy: SyncPolicy,
) -> None:
    """Record a failed run: the run, its cursor, the key's lifecycle, alerts, the event. A
    run that has already finished (its import committed, then something after it failed or
    was cancelled) is left as it is."""
    async with db.transaction() as session:
        now = utcnow()
        run = await session.get(SyncRun, plan.run_id)
        assert run is not None
        if run.outcome is not RunOutcome.RUNNING:
            log.warning(
                "a failure after the run ended; the run stands", run=str(run.id),
                outcome=run.outcome.value, error_class=type(error).__name__,
            )  # fmt: skip
            return
        if isinstance(error, KeyRejected):
            await keys.mark_invalid(
                session, tenant_id=plan.tenant_id, key_id=plan.key.id, reason=KEY_REFUSED,
                refused_key_id=error.key_id,
            )  # fmt: skip
        elif isinstance(error, ContractAccessDenied):
            await keys.mark_access_lost(
                session, tenant_id=plan.tenant_id, key_id=plan.key.id, contract=plan.contract,
                reason="CMS answered 403 for this contract", refused_key_id=error.key_id,
            )  # fmt: skip
        _finish(run, result, started)
        cursor = await _cursor(session, plan.tenant_id, plan.key.id, plan.contract)
        await session.refresh(cursor, ["next_due_at"])  # as asked for meanwhile, if it was
        cursor.consecutive_failures += 1
        cursor.last_error = (result.error or "")[:500]
        cursor.is_blocked = result.outcome is RunOutcome.BLOCKED
        # A sync asked for during a failed run is left to the schedule (due at once).
        cursor.next_due_at = _next_due(
            cursor,
            plan,
            now + await interval_for(session, plan.tenant_id, plan.key.environment, policy),
        )
        key = await session.get(ApiKey, plan.key.id)
        if key is not None:
            await keys.record_use(session, key, failure=result.error, now=now)
            await alert_rules.on_sync_outcome(
                session, key=key, cursor=cursor, succeeded=False, now=now
            )
        _record_failed(session, run, cursor, will_retry=result.retry_in is not None, now=now)


def _record_failed(
    session: AsyncSession,
    run: SyncRun,
    cursor: SyncCursor | None,
    *,
    will_retry: bool,
    now: datetime,
) -> None:
    """The `sync.failed` event of a run just recorded as failed (or blocked)."""
    record_event(
        session, TenantID(run.tenant_id), "sync.failed",
        {
            "contract": run.contract, "run": str(run.id),
            "key": None if run.api_key_id is None else str(run.api_key_id),
            "error": run.error, "outcome": run.outcome.value,
            "consecutive_failures": None if cursor is None else cursor.consecutive_failures,
            "will_retry": will_retry,
        },
        occurred_at=now,
    )  # fmt: skip


async def run_sync(
    db: Database,
    clients: Mapping[CtmEnvironment, CtmClient],
    *,
    tenant_id: TenantID,
    key_id: UUID,
    contract: str,
    trigger: str = "schedule",
    attempt: int = 1,
    may_retry: bool = True,
    policy: SyncPolicy | None = None,
) -> SyncResult:
    """Sync one (key, contract) pair. Never raises for CMS's answers: the result says
    whether the job should be retried (and when); never when `may_retry` is false (the job's
    last try), so that the failure recorded does not promise a retry."""
    policy = policy or SyncPolicy()
    started = time.monotonic()
    plan = await _begin(
        db, tenant_id=tenant_id, key_id=key_id, contract=contract, trigger=trigger,
        now=utcnow(), policy=policy,
    )  # fmt: skip
    if plan is None:
        return SyncResult(RunOutcome.BLOCKED, error="key not usable")
    client = clients[CtmEnvironment(plan.key.environment.value)]
    try:
        return await _import(db, client, plan, policy, started)
    except asyncio.CancelledError as cancelled:
        # Cut short (the job's time ran out, or the worker is stopping): the import rolled
        # back; the run fails saying so, and the cursor counts it, so that a sync that never
        # finishes is seen (and alerted on) like any other failure.
        result = SyncResult(RunOutcome.FAILED, plan.run_id, error=CANCELLED)
        log.warning("sync cut short", contract=contract, key=str(key_id))
        await asyncio.shield(_fail(db, plan, cancelled, result, started, policy))
        raise
    except Exception as error:
        result = _classify(error, attempt)
        result.run_id = plan.run_id
        if not may_retry:
            result.retry_in = None
        log.warning(
            "sync failed", contract=contract, key=str(key_id), outcome=result.outcome.value,
            error_class=type(error).__name__, retry_in=result.retry_in,
        )  # fmt: skip
        await _fail(db, plan, error, result, started, policy)
        return result


async def list_runs(
    session: AsyncSession, tenant_id: TenantID, *, contract: str | None = None, limit: int = 50
) -> Sequence[SyncRun]:
    statement = select(SyncRun).where(SyncRun.tenant_id == tenant_id)
    if contract:
        statement = statement.where(SyncRun.contract == contract.upper())
    return (await session.scalars(statement.order_by(SyncRun.started_at.desc()).limit(limit))).all()


async def get_run(session: AsyncSession, tenant_id: TenantID, run_id: UUID) -> SyncRun:
    run = await session.scalar(
        select(SyncRun).where(SyncRun.tenant_id == tenant_id, SyncRun.id == run_id)
    )
    if run is None:
        raise NotFound("sync_run", run_id)
    return run


async def quarantine_of(
    session: AsyncSession, tenant_id: TenantID, run_id: UUID, *, after: int = 0, limit: int = 500
) -> Sequence[QuarantinedRow]:
    """The run's quarantined rows by row number, `limit` of them from the first after row
    `after` (a download may have refused hundreds of thousands)."""
    await get_run(session, tenant_id, run_id)
    return (
        await session.scalars(
            select(QuarantinedRow)
            .where(
                QuarantinedRow.tenant_id == tenant_id,
                QuarantinedRow.sync_run_id == run_id,
                QuarantinedRow.row_number > after,
            )
            .order_by(QuarantinedRow.row_number)
            .limit(limit)
        )
    ).all()


# Schedules (the API's) ---------------------------------------------------------------------

MAX_INTERVAL_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class ScheduleState:
    environment: Environment
    interval_minutes: int
    is_paused: bool
    is_default: bool  # no row yet: the deployment's default interval applies
    cursors: list[tuple[SyncCursor, Environment]]


async def list_schedules(
    session: AsyncSession, tenant_id: TenantID, *, policy: SyncPolicy
) -> list[ScheduleState]:
    """One schedule per environment the tenant has keys (or a schedule) in, with the
    cursors of its (key, contract) pairs (not those of deactivated keys)."""
    rows = {
        s.environment: s
        for s in await session.scalars(
            select(SyncSchedule).where(SyncSchedule.tenant_id == tenant_id)
        )
    }
    environments = set(rows) | set(
        await session.scalars(select(ApiKey.environment).where(ApiKey.tenant_id == tenant_id))
    )
    cursors: list[tuple[SyncCursor, Environment]] = [
        (cursor, environment)
        for cursor, environment in await session.execute(
            select(SyncCursor, ApiKey.environment)
            .join(ApiKey, ApiKey.id == SyncCursor.api_key_id)
            # A deactivated key's pairs never sync again: its runs keep their history.
            .where(SyncCursor.tenant_id == tenant_id, ApiKey.status != KeyStatus.DEACTIVATED)
            .order_by(SyncCursor.contract, SyncCursor.api_key_id)
        )
    ]
    default = int(policy.default_interval.total_seconds() // 60)
    return [
        ScheduleState(
            environment=env,
            interval_minutes=rows[env].interval_minutes if env in rows else default,
            is_paused=rows[env].is_paused if env in rows else False,
            is_default=env not in rows,
            cursors=[(c, e) for c, e in cursors if e is env],
        )
        for env in sorted(environments)
    ]


async def set_schedule(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    environment: Environment,
    interval_minutes: int | None = None,
    is_paused: bool | None = None,
    policy: SyncPolicy,
) -> SyncSchedule:
    """Change a tenant's interval or pause; a shorter interval pulls the next syncs in."""
    if interval_minutes is not None and not 1 <= interval_minutes <= MAX_INTERVAL_MINUTES:
        raise Invalid("interval_minutes", f"must be between 1 and {MAX_INTERVAL_MINUTES}")
    schedule = await session.scalar(
        select(SyncSchedule).where(
            SyncSchedule.tenant_id == tenant_id, SyncSchedule.environment == environment
        )
    )
    if schedule is None:
        has_key = await session.scalar(
            select(ApiKey.id)
            .where(ApiKey.tenant_id == tenant_id, ApiKey.environment == environment)
            .limit(1)
        )
        if has_key is None:
            raise NotFound(
                "sync_schedule", environment.value,
                detail=f"this tenant has no {environment.value} key, so no {environment.value} "
                "schedule to change",
            )  # fmt: skip
        schedule = SyncSchedule(
            tenant_id=tenant_id, environment=environment,
            interval_minutes=int(policy.default_interval.total_seconds() // 60), is_paused=False,
        )  # fmt: skip
        session.add(schedule)
    if interval_minutes is not None:
        schedule.interval_minutes = interval_minutes
        sooner = timedelta(minutes=interval_minutes)
        for cursor in await session.scalars(
            select(SyncCursor)
            .join(ApiKey, ApiKey.id == SyncCursor.api_key_id)
            .where(SyncCursor.tenant_id == tenant_id, ApiKey.environment == environment)
        ):
            if cursor.last_attempt_at is not None and cursor.next_due_at is not None:
                cursor.next_due_at = min(cursor.next_due_at, cursor.last_attempt_at + sooner)
    if is_paused is not None:
        schedule.is_paused = is_paused
    await session.flush()
    return schedule


async def change_schedule(
    session: AsyncSession,
    actor: Principal,
    *,
    environment: Environment,
    interval_minutes: int | None = None,
    is_paused: bool | None = None,
    policy: SyncPolicy,
) -> ScheduleState:
    """A tenant admin's change of a schedule (the API's PUT and the portal's form), audited;
    the schedule as it stands after."""
    schedule = await set_schedule(
        session, actor.tenant, environment=environment, interval_minutes=interval_minutes,
        is_paused=is_paused, policy=policy,
    )  # fmt: skip
    await audit.record(
        session, actor=audit.Actor.of_principal(actor), action="sync.schedule_changed",
        tenant_id=actor.tenant, target_type="sync_schedule", target_id=schedule.id,
        details={"environment": environment.value, "interval_minutes": schedule.interval_minutes,
                 "paused": schedule.is_paused},
    )  # fmt: skip
    [state] = [
        s
        for s in await list_schedules(session, actor.tenant, policy=policy)
        if s.environment is environment
    ]
    return state
