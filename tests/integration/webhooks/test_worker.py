"""End to end on a real arq worker and Redis: an event committed to the outbox is dispatched,
fanned out and delivered, signed, to a real receiver; the sweeper re-sends what Redis lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.crypto import Crypto
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID
from hub.core.jobs import ArqQueue
from hub.core.redis import connect
from hub.events.service import record_event
from hub.settings import Settings
from hub.webhooks import replay
from hub.webhooks.models import MessageStatus, WebhookMessage
from tests.conftest import delete_all_rows
from tests.integration.webhooks.support import Receiver, make_endpoint
from tests.support import make_member, make_tenant
from workers.settings import create_worker


@pytest.fixture
async def live(engine: AsyncEngine, redis: Any, crypto: Crypto) -> AsyncIterator[Database]:
    database = Database(engine, ArqQueue(redis), crypto=crypto)
    try:
        yield database
    finally:
        await delete_all_rows(engine)


async def run_burst(settings: Settings, database: Database, redis_url: str) -> None:
    pool = await connect(redis_url)
    worker = create_worker(
        settings, database=database, redis_pool=pool, burst=True, poll_delay=0.05
    )
    try:
        await asyncio.wait_for(worker.async_run(), timeout=60)
    finally:
        await worker.close()


async def statuses(database: Database) -> list[MessageStatus]:
    async with database.transaction() as session:
        return list((await session.scalars(select(WebhookMessage.status))).all())


class TestWorker:
    async def test_committed_events_reach_the_receiver_signed(
        self, settings: Settings, live: Database, redis_url: str, receiver: Receiver
    ) -> None:
        async with live.transaction() as session:
            tenant = await make_tenant(session, "plan-w")
            admin = await make_member(session, tenant, email="w@plan-w.example")
            _, secret = await make_endpoint(session, admin, url=receiver.url)
            receiver.secrets = [secret]
            for n in range(5):
                record_event(session, TenantID(tenant.id), "complaint.created", {"n": n})
        await run_burst(settings, live, redis_url)
        assert receiver.refused == []
        assert sorted(r.payload["data"]["n"] for r in receiver.received) == [0, 1, 2, 3, 4]
        assert await statuses(live) == [MessageStatus.SUCCEEDED] * 5

    async def test_messages_lost_with_redis_are_delivered_after_a_sweep(
        self, settings: Settings, live: Database, redis: Any, redis_url: str, receiver: Receiver
    ) -> None:
        async with live.transaction() as session:
            tenant = await make_tenant(session, "plan-s")
            admin = await make_member(session, tenant, email="s@plan-s.example")
            endpoint, secret = await make_endpoint(session, admin, url=receiver.url)
            receiver.secrets = [secret]
            for n in range(3):
                await replay.send_test(
                    session, TenantID(tenant.id), endpoint_id=endpoint.id, note=f"n{n}"
                )
        await redis.flushdb()  # Redis lost the delivery jobs
        async with live.transaction() as session:
            swept = await replay.sweep(
                session, older_than=timedelta(0), now=utcnow() + timedelta(seconds=1)
            )
        assert swept == 1  # one endpoint to drain
        await run_burst(settings, live, redis_url)
        assert len(set(receiver.ids())) == 3
        assert len(receiver.ids()) == 3
        assert await statuses(live) == [MessageStatus.SUCCEEDED] * 3
