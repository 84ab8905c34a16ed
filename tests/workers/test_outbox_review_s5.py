"""A fresh-eyes review of the outbox sweeper: events that fail for good do not keep it
from re-enqueueing the others a lost Redis dropped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import jobs
from hub.core.db import utcnow
from hub.core.ids import TenantID
from hub.events import service
from hub.events.service import dispatch_job
from tests.support import make_tenant


class TestSweepOrder:
    async def test_events_failing_for_good_do_not_starve_the_sweep(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A sweep takes a batch. Events whose handler fails every time (a receiver's
        fan-out broken for one tenant) stay undispatched, oldest of all: when a batch's
        worth of them exists, the sweep took only them at every tick, and an event of
        another tenant whose retry Redis lost (it had failed once) was never swept."""
        monkeypatch.setattr(service, "SWEEP_BATCH", 3)
        start = utcnow() - timedelta(hours=2)
        broken = TenantID((await make_tenant(session, "broken")).id)
        poison = [
            service.record_event(
                session, broken, "test.poison", {"n": n}, occurred_at=start + timedelta(seconds=n)
            )
            for n in range(3)
        ]
        for event in poison:
            event.attempts = 40  # retried at every sweep for hours
        other = TenantID((await make_tenant(session, "other")).id)
        lost = service.record_event(
            session, other, "test.lost", {}, occurred_at=start + timedelta(minutes=30)
        )
        lost.attempts = 1  # failed once; its retry was in the Redis that was lost
        await session.commit()  # their own jobs are gone with Redis

        assert await service.sweep(session, older_than=timedelta(minutes=1)) == 3
        swept = {job.job_id for job in jobs.pending_jobs(session)}
        assert dispatch_job(lost.id).job_id in swept
