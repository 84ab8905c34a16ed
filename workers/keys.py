"""Key jobs: destroy the secrets of versions whose post-rotation grace period has passed, and
ask CMS once a day whether contracts it refused a key are served to it again."""

from __future__ import annotations

from hub.core.db import utcnow
from hub.keys import service
from hub.syncs import probe
from workers.context import WorkerContext


async def retire_key_versions(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await service.retire_versions(session)


async def probe_lost_access(ctx: WorkerContext) -> str:
    """Once a day: ask CMS whether each lost contract is served to its key again."""
    probed = await probe.probe_lost_access(ctx["db"], ctx["ctm"], ctx["redis"], now=utcnow())
    return f"restored {probed.restored}, still lost {probed.still_lost}, skipped {probed.skipped}"
