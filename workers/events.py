"""Outbox jobs: dispatch one event to its handlers; sweep events a lost Redis dropped."""

from __future__ import annotations

import time
from datetime import timedelta
from uuid import UUID

import structlog
from arq import Retry

from hub.events import service
from hub.webhooks import delivery as webhook_delivery
from workers import webhooks
from workers.context import WorkerContext

log = structlog.get_logger(__name__)

MAX_TRIES = 8
# After its own events, a dispatch job goes on with whatever else waits in the outbox, in
# batches of this many, for up to this long: under a burst, arq starts jobs more slowly
# than a busy outbox fills, and each job would otherwise carry only its own few events.
PENDING_BATCH = 500
PENDING_SECONDS = 2.0


def retry_delay(job_try: int) -> timedelta:
    """5 s, 10 s, 20 s … capped at 10 minutes."""
    return timedelta(seconds=min(600, 5 * 2 ** max(0, job_try - 1)))


async def dispatch_event(ctx: WorkerContext, event_id: str) -> bool:
    ident = UUID(event_id)
    try:
        async with ctx["db"].transaction() as session:
            wakes = webhook_delivery.collect_wakes(session)
            dispatched = await service.dispatch(session, ident, ctx["bus"])
    except Exception as error:
        async with ctx["db"].transaction() as session:
            attempts = await service.record_failure(session, ident, error)
        log.warning(
            "event dispatch failed",
            event_id=event_id,
            attempts=attempts,
            error_class=type(error).__name__,
        )
        if ctx["job_try"] >= MAX_TRIES:
            # Left undispatched: the sweeper tries again later, so nothing is lost.
            return False
        raise Retry(defer=retry_delay(ctx["job_try"])) from error
    await webhooks.wake(ctx, wakes)
    await dispatch_pending(ctx)
    return dispatched


async def sweep_outbox(ctx: WorkerContext) -> int:
    older_than = timedelta(seconds=ctx["settings"].outbox_sweep_after_seconds)
    async with ctx["db"].transaction() as session:
        return await service.sweep(session, older_than=older_than)


async def dispatch_events(ctx: WorkerContext, event_ids: str) -> int:
    """Dispatch a batch of events (comma-separated ids): all together in one transaction;
    if that fails, one at a time, so that a failing event is recorded and left to the
    sweeper while the others go on. The endpoints that got webhook messages are woken once
    the transaction has committed."""
    ids = [UUID(raw) for raw in event_ids.split(",")]
    try:
        async with ctx["db"].transaction() as session:
            wakes = webhook_delivery.collect_wakes(session)
            dispatched = await service.dispatch_together(session, ids, ctx["bus"])
    except Exception as error:
        log.info("batch dispatch failed; one event at a time", error_class=type(error).__name__)
        async with ctx["db"].transaction() as session:
            wakes = webhook_delivery.collect_wakes(session)
            dispatched, failed = await service.dispatch_each(session, ids, ctx["bus"])
            for ident, fault in failed:
                await service.record_failure(session, ident, fault)
                log.warning(
                    "event dispatch failed; the sweeper retries it",
                    event_id=str(ident),
                    error_class=type(fault).__name__,
                )
    await webhooks.wake(ctx, wakes)
    return dispatched + await dispatch_pending(ctx)


async def dispatch_pending(ctx: WorkerContext) -> int:
    """Dispatch undispatched events no dispatch has tried yet, a batch per transaction, for
    up to `PENDING_SECONDS`. A failing batch is rolled back and left to its events' own
    jobs (and the sweeper), which isolate the failing event."""
    dispatched, deadline = 0, time.monotonic() + PENDING_SECONDS
    while time.monotonic() < deadline:
        try:
            async with ctx["db"].transaction() as session:
                wakes = webhook_delivery.collect_wakes(session)
                count = await service.dispatch_pending(session, ctx["bus"], limit=PENDING_BATCH)
        except Exception as error:
            log.info("dispatch of pending events failed", error_class=type(error).__name__)
            return dispatched
        await webhooks.wake(ctx, wakes)
        dispatched += count
        if count < PENDING_BATCH:
            return dispatched
    return dispatched
