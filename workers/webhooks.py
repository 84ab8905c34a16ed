"""Webhook jobs: drain an endpoint's due messages, wake endpoints that got messages, and
sweep what a lost job or a dead worker left behind."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast
from uuid import UUID

import structlog

from hub.core import jobs
from hub.core.ids import uuid7
from hub.settings import Settings
from hub.webhooks import delivery, replay
from hub.webhooks.drain import Drainer
from hub.webhooks.limits import DrainLocks, RedisLimiter
from workers.context import WorkerContext

log = structlog.get_logger(__name__)

RUNTIME_KEY = "webhooks"
# A drain job hands its endpoint over (to a fresh job at the back of the queue) after this
# long, so that one busy endpoint cannot hold a worker slot from the others for good.
DRAIN_BUDGET_SECONDS = 5.0
# Requests in flight per worker process, over all the endpoints it drains.
DEFAULT_IN_FLIGHT = 64
# A drain with nothing left to send waits this long for more (holding its worker slot, so
# only some slots may linger at once).
LINGER_SECONDS = 0.5
# Woken while lingering, a drain waits this long before it claims, so that the commits
# landing meanwhile make one batch rather than one each.
GATHER_SECONDS = 0.02
# Retries of one arq job are not failures of a delivery: the message's attempt count (in
# the database) decides when to give up.
MAX_JOB_TRIES = 1_000_000
SWEEP_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class WebhookRuntime:
    drainer: Drainer
    locks: DrainLocks
    lingering: int  # drains that may linger at once in this worker
    lingerers: set[str] = field(default_factory=set)


def start(
    ctx: dict[str, Any],
    settings: Settings,
    *,
    in_flight: int = DEFAULT_IN_FLIGHT,
    lingering: int = 0,
) -> None:
    """Build the delivery session, limiter and drain locks (the worker's on_startup)."""
    policy = delivery.DeliveryPolicy.from_settings(settings)
    drainer = Drainer(
        policy, policy.create_session(), RedisLimiter(ctx["redis"]), asyncio.Semaphore(in_flight)
    )
    ctx[RUNTIME_KEY] = WebhookRuntime(drainer, DrainLocks(ctx["redis"]), lingering)


async def stop(ctx: dict[str, Any]) -> None:
    runtime = ctx.get(RUNTIME_KEY)
    if isinstance(runtime, WebhookRuntime):
        await runtime.drainer.http.close()


def runtime_of(ctx: WorkerContext) -> WebhookRuntime:
    return cast("WebhookRuntime", cast("dict[str, Any]", ctx)[RUNTIME_KEY])


async def _send(ctx: WorkerContext, job: jobs.Job) -> None:
    await ctx["redis"].enqueue_job(
        job.function, *job.args, _job_id=job.job_id, _defer_by=job.defer_by
    )


async def wake(ctx: WorkerContext, endpoint_ids: Iterable[UUID]) -> None:
    """After a commit that gave these endpoints messages: raise each one's wake flag, and
    start a drain where none is running (a running drain sees the flag before it ends)."""
    endpoint_ids = list(endpoint_ids)
    if not endpoint_ids:
        return
    try:
        idle = await runtime_of(ctx).locks.wake(endpoint_ids)
        for endpoint_id in idle:
            await _send(ctx, delivery.drain_job(endpoint_id, cause=str(uuid7())))
    except Exception as error:
        log.error(
            "webhook wake-up failed; the sweeper sends the messages later",
            endpoints=len(endpoint_ids),
            error_class=type(error).__name__,
        )


async def drain_endpoint(ctx: WorkerContext, endpoint_id: str) -> str:
    """Send the endpoint's due messages while holding its drain lock; come back (a
    deferred job) when a retry falls due. After `DRAIN_BUDGET_SECONDS` a drain that still
    has work hands the endpoint to a fresh job at the back of the queue."""
    runtime, ident, holder = runtime_of(ctx), UUID(endpoint_id), ctx["job_id"]
    locks, ttl = runtime.locks, runtime.drainer.policy.lease.total_seconds()
    if not await locks.acquire(ident, holder, ttl=ttl):
        return "another drain holds the endpoint"
    deadline, sent = time.monotonic() + DRAIN_BUDGET_SECONDS, 0
    try:
        while True:
            outcome = await runtime.drainer.drain(
                ctx["db"],
                ident,
                budget=max(0.0, deadline - time.monotonic()),
                keep_alive=lambda: locks.new_round(ident, holder, ttl=ttl),
            )
            sent += outcome.sent
            if outcome.wake_in is not None:
                await _send(ctx, _comeback(ident, holder, outcome.wake_in))
            if outcome.has_more or outcome.stepped_aside:
                await locks.release(ident, holder)
                if outcome.has_more:
                    await wake(ctx, [ident])
                return f"sent {sent}, handed over"
            if await _linger(runtime, ident, holder, until=deadline):
                await asyncio.sleep(GATHER_SECONDS)
                continue
            if not await locks.finish(ident, holder, ttl=ttl):
                return f"sent {sent}"
    except BaseException:
        await locks.release(ident, holder)
        raise


def _comeback(endpoint_id: UUID, holder: str, seconds: float) -> jobs.Job:
    """A deferred drain; drains asking to come back in the same second share one job (but
    never this job's own id: arq would take it for this very job, and drop it)."""
    cause = f"at:{int(time.time() + seconds)}"
    job = delivery.drain_job(endpoint_id, cause=cause, defer=seconds)
    if job.job_id == holder:
        job = delivery.drain_job(endpoint_id, cause=f"{cause}:again", defer=seconds)
    return job


async def _linger(runtime: WebhookRuntime, endpoint_id: UUID, holder: str, *, until: float) -> bool:
    """Wait a moment for more messages, when this worker has a lingering place free."""
    seconds = min(LINGER_SECONDS, until - time.monotonic())
    if seconds < 0.01 or len(runtime.lingerers) >= runtime.lingering:
        return False
    runtime.lingerers.add(holder)
    try:
        return await runtime.locks.linger(endpoint_id, seconds)
    finally:
        runtime.lingerers.discard(holder)


async def deliver_message(ctx: WorkerContext, message_id: str) -> str:
    """A one-message job queued before drains existed: drain the message's endpoint."""
    async with ctx["db"].transaction(read_only=True) as session:
        endpoint_id = await replay.endpoint_of(session, UUID(message_id))
    if endpoint_id is None:
        return "nothing to do"
    return await drain_endpoint(ctx, str(endpoint_id))


async def sweep_messages(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await replay.sweep(session, older_than=SWEEP_AFTER)
