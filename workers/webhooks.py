"""Webhook jobs: deliver one message (one attempt per run), sweep overdue messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from uuid import UUID

import aiohttp
from arq import Retry

from hub.settings import Settings
from hub.webhooks import delivery, replay
from hub.webhooks.limits import Limiter, RedisLimiter
from workers.context import WorkerContext

RUNTIME_KEY = "webhooks"
# Retries of one arq job are steps of our own schedule and limiter waits, not failures:
# the message's attempt count (in the database) decides when to give up.
MAX_JOB_TRIES = 1_000_000
SWEEP_AFTER = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class WebhookRuntime:
    policy: delivery.DeliveryPolicy
    http: aiohttp.ClientSession
    limiter: Limiter


def start(ctx: dict[str, Any], settings: Settings) -> None:
    """Build the delivery session and limiter (the worker's on_startup calls this)."""
    policy = delivery.DeliveryPolicy.from_settings(settings)
    ctx[RUNTIME_KEY] = WebhookRuntime(policy, policy.create_session(), RedisLimiter(ctx["redis"]))


async def stop(ctx: dict[str, Any]) -> None:
    runtime = ctx.get(RUNTIME_KEY)
    if isinstance(runtime, WebhookRuntime):
        await runtime.http.close()


def runtime_of(ctx: WorkerContext) -> WebhookRuntime:
    return cast("WebhookRuntime", cast("dict[str, Any]", ctx)[RUNTIME_KEY])


async def deliver_message(ctx: WorkerContext, message_id: str) -> str:
    """One attempt; the attempt row is committed before the job asks arq to come back."""
    runtime, ident = runtime_of(ctx), UUID(message_id)
    async with ctx["db"].transaction() as session:
        step = await delivery.prepare(
            session, ident, policy=runtime.policy, limiter=runtime.limiter
        )
    if step.prepared is None:
        if step.wait is not None:
            raise Retry(defer=timedelta(seconds=step.wait))
        return "nothing to do"
    try:
        result = await delivery.send(runtime.http, step.prepared)
    finally:
        await runtime.limiter.release(step.prepared.endpoint_id, ident)
    async with ctx["db"].transaction() as session:
        retry_in = await delivery.record(session, step.prepared, result, policy=runtime.policy)
    if retry_in is not None:
        raise Retry(defer=timedelta(seconds=retry_in))
    return "delivered" if result.is_success else f"failed ({result.error_class})"


async def sweep_messages(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await replay.sweep(session, older_than=SWEEP_AFTER)
