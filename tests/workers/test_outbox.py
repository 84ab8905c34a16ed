"""The outbox end to end on a real arq worker: dispatch once, retry on failure, and recover
every undispatched event after Redis loses its queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.crypto import Crypto
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID
from hub.core.jobs import ArqQueue
from hub.core.redis import connect
from hub.events import service
from hub.events.models import Event
from hub.events.service import Subscription
from hub.settings import Settings
from tests.conftest import delete_all_rows
from tests.support import make_tenant
from workers.settings import create_worker


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.seen: list[UUID] = []
        self.fail_times = fail_times

    async def __call__(self, session: Any, event: Event) -> None:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise RuntimeError("receiver down")
        self.seen.append(event.id)


@pytest.fixture
async def live(engine: AsyncEngine, redis: Any, crypto: Crypto) -> AsyncIterator[Database]:
    """A committing Database whose jobs go to the real test Redis."""
    database = Database(engine, ArqQueue(redis), crypto=crypto)
    try:
        yield database
    finally:
        await delete_all_rows(engine)


async def record(database: Database, count: int = 1) -> tuple[TenantID, list[UUID]]:
    async with database.transaction() as session:
        tenant = await make_tenant(session, f"outbox-{count}")
        tenant_id = TenantID(tenant.id)
        events = [
            service.record_event(session, tenant_id, "test.happened", {"n": n})
            for n in range(count)
        ]
    return tenant_id, [e.id for e in events]


async def run_burst(
    settings: Settings, database: Database, recorder: Recorder, redis_url: str
) -> None:
    pool = await connect(redis_url)
    worker = create_worker(
        settings,
        subscriptions=[Subscription("test.*", recorder, "recorder")],
        database=database,
        redis_pool=pool,
        burst=True,
        poll_delay=0.05,
        max_burst_jobs=200,
    )
    try:
        await asyncio.wait_for(worker.async_run(), timeout=30)
    finally:
        await worker.close()


async def undispatched(database: Database) -> list[UUID]:
    async with database.transaction() as session:
        rows = await session.scalars(select(Event.id).where(Event.dispatched_at.is_(None)))
        return list(rows)


class TestDispatch:
    async def test_committed_event_reaches_its_handler_once(
        self, settings: Settings, live: Database, redis_url: str
    ) -> None:
        _, ids = await record(live, count=3)
        recorder = Recorder()
        await run_burst(settings, live, recorder, redis_url)
        assert sorted(recorder.seen) == sorted(ids)
        assert await undispatched(live) == []
        # A second dispatch of the same event (a retry, a sweep) does nothing.
        async with live.transaction() as session:
            assert await service.dispatch(session, ids[0], service.EventBus([])) is False

    async def test_failing_handler_is_retried_and_attempts_recorded(
        self, settings: Settings, live: Database, redis_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("workers.events.retry_delay", lambda _: timedelta(milliseconds=10))
        _, ids = await record(live)
        recorder = Recorder(fail_times=2)
        await run_burst(settings, live, recorder, redis_url)
        assert recorder.seen == ids
        async with live.transaction() as session:
            event = await session.get(Event, ids[0])
            assert event is not None
            assert event.attempts == 3
            assert event.dispatched_at is not None


class TestSweeper:
    async def test_events_lost_with_redis_are_dispatched_after_a_sweep(
        self, settings: Settings, live: Database, redis: Any, redis_url: str
    ) -> None:
        _, ids = await record(live, count=5)
        assert len(await redis.queued_jobs()) == 5
        await redis.flushdb()  # Redis lost everything it held
        assert await redis.queued_jobs() == []

        async with live.transaction() as session:
            too_soon = await service.sweep(session, older_than=timedelta(hours=1))
        assert too_soon == 0, "fresh events are left to their own dispatch"

        # The cron job itself, as a worker runs it: it finds the events and re-enqueues them.
        await asyncio.sleep(settings.outbox_sweep_after_seconds + 0.1)
        await redis.enqueue_job("events.sweep")
        recorder = Recorder()
        await run_burst(settings, live, recorder, redis_url)
        assert sorted(recorder.seen) == sorted(ids)
        assert await undispatched(live) == []

    async def test_sweep_does_not_double_a_queued_event(self, live: Database, redis: Any) -> None:
        _, ids = await record(live, count=1)
        async with live.transaction() as session:
            swept = await service.sweep(
                session, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1)
            )
        assert swept == 1
        assert [job.job_id for job in await redis.queued_jobs()] == [f"events.dispatch:{ids[0]}"]
