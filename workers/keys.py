"""Key jobs: destroy the secrets of versions whose post-rotation grace period has passed."""

from __future__ import annotations

from hub.keys import service
from workers.context import WorkerContext


async def retire_key_versions(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await service.retire_versions(session)
