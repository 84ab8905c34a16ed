"""Sync jobs: the scheduler cron, one (key, contract) sync with a per-key slot, and the
deferred recheck that queues a sync to settle uploads in doubt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import structlog
from arq import Retry

from hub.core.ids import TenantID
from hub.core.jobs import ArqQueue
from hub.syncs import service
from hub.syncs.models import RunOutcome
from hub.syncs.slots import key_slot
from workers.context import WorkerContext

log = structlog.get_logger(__name__)

BUSY_RETRY = timedelta(seconds=3)
# Tries that ran the sync (a slot taken). A busy key spends none of them.
MAX_TRIES = 6
# About 15 minutes of waiting for a busy key, then the job ends: the scheduler finds the pair
# still due and enqueues it again within a minute.
MAX_BUSY_TRIES = 300
# A "sync now" has no schedule to enqueue it again (its tenant may have paused syncs, and
# asked for 500 contracts at once): once the quick waits are spent it waits on, a minute at
# a time, for about two hours more.
SLOW_BUSY_RETRY = timedelta(minutes=1)
MAX_SLOW_BUSY_TRIES = 120
# What arq counts: every try, busy or real. `sync_contract` stops before arq would.
MAX_JOB_TRIES = MAX_TRIES + MAX_BUSY_TRIES + MAX_SLOW_BUSY_TRIES + 1
# How long a job's count of busy tries is kept: far longer than a job lives.
BUSY_RECORD_TTL = timedelta(days=1)


@dataclass(frozen=True)
class Tries:
    """A sync job's tries as arq counts them (`job_try`), split into those that found the key
    busy and the real ones. Kept in Redis as "<job_try>:<busy>", written at every try."""

    redis: Any
    name: str
    job_try: int
    busy: int

    @property
    def real(self) -> int:
        return self.job_try - self.busy

    @classmethod
    async def load(cls, ctx: WorkerContext) -> Tries:
        name, job_try = f"hub:sync-busy:{ctx['job_id']}", ctx["job_try"]
        record = await ctx["redis"].get(name)
        stamp, busy = 0, 0
        if record is not None:
            stamp, busy = (int(part) for part in bytes(record).split(b":"))
        # A record stamped at this try or later is an earlier job's with the same id (one
        # that ended without clearing it): this job has not been busy yet.
        return cls(ctx["redis"], name, job_try, busy if stamp < job_try else 0)

    async def record(self, *, busy: bool) -> None:
        count = self.busy + 1 if busy else self.busy
        await self.redis.set(self.name, f"{self.job_try}:{count}", ex=BUSY_RECORD_TTL)

    async def forget(self) -> None:
        await self.redis.delete(self.name)


async def sync_contract(
    ctx: WorkerContext, tenant_id: str, key_id: str, contract: str, trigger: str = "schedule"
) -> str:
    tries = await Tries.load(ctx)
    if tries.real > MAX_TRIES:  # each earlier run died with its worker (arq ran it again)
        log.warning("sync gave up: its tries ran out", contract=contract, key=key_id)
        await tries.forget()
        return "gave up"
    async with key_slot(ctx["redis"], key_id) as has_slot:
        if not has_slot:
            return await _wait_for_slot(tries, contract=contract, key_id=key_id, trigger=trigger)
        await tries.record(busy=False)  # before the run, so a run its worker died in counts
        may_retry = tries.real < MAX_TRIES
        result = await service.run_sync(
            ctx["db"], ctx["ctm"], tenant_id=TenantID(UUID(tenant_id)), key_id=UUID(key_id),
            contract=contract, trigger=trigger, attempt=tries.real, may_retry=may_retry,
            policy=ctx["sync_policy"],
        )  # fmt: skip
        if result.again:  # "sync now" while it ran: once more, still holding the pair's job
            result = await service.run_sync(
                ctx["db"], ctx["ctm"], tenant_id=TenantID(UUID(tenant_id)), key_id=UUID(key_id),
                contract=contract, trigger="manual", may_retry=may_retry,
                policy=ctx["sync_policy"],
            )  # fmt: skip
    if result.retry_in is not None:
        raise Retry(defer=timedelta(seconds=result.retry_in))
    await tries.forget()
    return (
        result.outcome.value
        if result.outcome is not RunOutcome.SUCCEEDED
        else (f"new={result.new} changed={result.changed} unchanged={result.unchanged}")
    )


async def _wait_for_slot(tries: Tries, *, contract: str, key_id: str, trigger: str) -> str:
    """Come back `BUSY_RETRY` later without spending a real try, up to `MAX_BUSY_TRIES`; a
    "sync now" then `SLOW_BUSY_RETRY` later, up to `MAX_SLOW_BUSY_TRIES` more."""
    if tries.busy < MAX_BUSY_TRIES:
        await tries.record(busy=True)
        raise Retry(defer=BUSY_RETRY)
    if trigger == "manual" and tries.busy < MAX_BUSY_TRIES + MAX_SLOW_BUSY_TRIES:
        await tries.record(busy=True)
        raise Retry(defer=SLOW_BUSY_RETRY)
    log.warning(
        "sync gave up waiting for its busy key; the schedule enqueues it again when due",
        contract=contract, key=key_id, busy_tries=tries.busy, trigger=trigger,
    )  # fmt: skip
    await tries.forget()
    return "key busy"


async def recheck_contract(ctx: WorkerContext, tenant_id: str, key_id: str, contract: str) -> str:
    """A recheck falls due (`service.recheck_job`): queue the pair's sync. A sync already
    queued or running is left to do it (one that began too early to settle the uploads in
    doubt runs once more when it ends, or asks for the recheck again)."""
    job = service.sync_job(UUID(tenant_id), UUID(key_id), contract, "recheck")
    return "queued" if await ArqQueue(ctx["redis"]).send(job) else "already queued"


async def schedule_syncs(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await service.schedule_due(session, policy=ctx["sync_policy"])
