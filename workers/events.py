"""Outbox jobs: dispatch one event to its handlers; sweep events a lost Redis dropped."""

from __future__ import annotations

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
    return dispatched


async def sweep_outbox(ctx: WorkerContext) -> int:
    older_than = timedelta(seconds=ctx["settings"].outbox_sweep_after_seconds)
    async with ctx["db"].transaction() as session:
        return await service.sweep(session, older_than=older_than)


async def dispatch_events(ctx: WorkerContext, event_ids: str) -> int:
    """Dispatch a batch of events (comma-separated ids) in one transaction: a failing event
    is recorded and left to the sweeper, the others go on. The endpoints that got webhook
    messages are woken once the transaction has committed."""
    ids = [UUID(raw) for raw in event_ids.split(",")]
    async with ctx["db"].transaction() as session:
        wakes = webhook_delivery.collect_wakes(session)
        dispatched, failed = await service.dispatch_batch(session, ids, ctx["bus"])
        for ident, fault in failed:
            await service.record_failure(session, ident, fault)
            log.warning(
                "event dispatch failed; the sweeper retries it",
                event_id=str(ident),
                error_class=type(fault).__name__,
            )
    await webhooks.wake(ctx, wakes)
    return dispatched
