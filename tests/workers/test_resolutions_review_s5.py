"""Review (s5b) of complaints through the simulator: each test names a defect it proves."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hub.complaints.models import Complaint
from hub.complaints.service import Deadlines
from hub.syncs import service as syncs
from tests.workers.test_resolutions import World, world

__all__ = ["world"]


async def _due_dates(w: World) -> dict[str, tuple[int, bool]]:
    """Each complaint's due date as days after its basis date, and whether immediate."""
    async with w.db.transaction() as session:
        found = (await session.scalars(select(Complaint))).all()
    return {
        c.complaint_id: (
            (c.due_date - (c.assignment_date or c.received_date)).days,
            c.is_immediate_need,
        )
        for c in found
    }


class TestConfiguredTimeframes:
    async def test_changed_timeframes_reach_complaints_the_next_download_holds(
        self, world: World
    ) -> None:
        """HUB_DEADLINE_*_DAYS changed: the complaints of the next download, unchanged at CMS,
        were skipped as unchanged and kept due dates of the old timeframes."""
        before = await _due_dates(world)
        assert {days for days, _ in before.values()} == {2, 7}
        policy = syncs.SyncPolicy(
            deadlines=Deadlines(immediate_days=1, standard_days=5),
            doubt_settle_after=timedelta(0),
            overlap=timedelta(days=30),  # this download holds every complaint of H1234
        )
        result = await syncs.run_sync(
            world.db, world.clients, tenant_id=world.member.tenant_id, key_id=world.key.id,
            contract="H1234", policy=policy,
        )  # fmt: skip
        assert result.error is None, result.error
        async with world.db.transaction() as session:
            contracts = dict(
                (c.complaint_id, c.contract) for c in await session.scalars(select(Complaint))
            )
        after = await _due_dates(world)
        for ident, (days, immediate) in after.items():
            if contracts[ident] == "H1234":
                assert days == (1 if immediate else 5), ident
            else:
                assert days == (2 if immediate else 7), ident
