"""Sync jobs: the scheduler cron, and one (key, contract) sync with a per-key slot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

from arq import Retry

from hub.core.ids import TenantID
from hub.syncs import service
from hub.syncs.models import RunOutcome
from workers.context import WorkerContext

# How many syncs may use one key at once: protects CMS (and the key's rate limit) from us.
PER_KEY_CONCURRENCY = 2
SLOT_TTL_SECONDS = 900  # a dead worker's slot frees itself
BUSY_RETRY = timedelta(seconds=3)


@asynccontextmanager
async def key_slot(redis: Any, key_id: str) -> AsyncIterator[bool]:
    name = f"hub:sync-slots:{key_id}"
    taken = await redis.incr(name)
    await redis.expire(name, SLOT_TTL_SECONDS)
    try:
        yield taken <= PER_KEY_CONCURRENCY
    finally:
        await redis.decr(name)


async def sync_contract(
    ctx: WorkerContext, tenant_id: str, key_id: str, contract: str, trigger: str = "schedule"
) -> str:
    async with key_slot(ctx["redis"], key_id) as has_slot:
        if not has_slot:
            raise Retry(defer=BUSY_RETRY)
        result = await service.run_sync(
            ctx["db"], ctx["ctm"], tenant_id=TenantID(UUID(tenant_id)), key_id=UUID(key_id),
            contract=contract, trigger=trigger, attempt=ctx["job_try"], policy=ctx["sync_policy"],
        )  # fmt: skip
    if result.retry_in is not None and ctx["job_try"] < MAX_TRIES:
        raise Retry(defer=timedelta(seconds=result.retry_in))
    return (
        result.outcome.value
        if result.outcome is not RunOutcome.SUCCEEDED
        else (f"new={result.new} changed={result.changed} unchanged={result.unchanged}")
    )


MAX_TRIES = 6


async def schedule_syncs(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await service.schedule_due(session, policy=ctx["sync_policy"])
