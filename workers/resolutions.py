"""Resolution jobs: upload one (serving key, contract) pair's queued resolutions; the cron
that re-queues stale batches and enqueues a job per pair with queued resolutions."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from arq import Retry

from hub.complaints import uploads
from hub.core.ids import TenantID
from workers.context import WorkerContext

MAX_TRIES = 8


async def upload_resolutions(ctx: WorkerContext, tenant_id: str, key_id: str, contract: str) -> str:
    outcome = await uploads.upload_pending(
        ctx["db"], ctx["ctm"], tenant_id=TenantID(UUID(tenant_id)), key_id=UUID(key_id),
        contract=contract, attempt=ctx["job_try"],
    )  # fmt: skip
    if outcome.retry_in is not None and ctx["job_try"] < MAX_TRIES:
        # The batch is back in the queue (committed) before arq is asked to come back.
        raise Retry(defer=timedelta(seconds=outcome.retry_in))
    if outcome.error is not None:
        return f"stopped: {outcome.error}"
    return f"files={outcome.files} accepted={outcome.accepted} rejected={outcome.rejected}"


async def schedule_uploads(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await uploads.schedule_uploads(session)
