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
from hub.events.models import Event
from hub.events.service import Subscription, record_event, record_events
from hub.settings import Settings
from hub.webhooks import replay
from hub.webhooks.models import MessageStatus, WebhookMessage
from tests.conftest import delete_all_rows
from tests.integration.webhooks.support import Receiver, make_endpoint
from tests.support import make_member, make_tenant
from workers.settings import create_worker, event_subscriptions


@pytest.fixture
async def live(engine: AsyncEngine, redis: Any, crypto: Crypto) -> AsyncIterator[Database]:
    database = Database(engine, ArqQueue(redis), crypto=crypto)
    try:
        yield database
    finally:
        await delete_all_rows(engine)


async def run_burst(
    settings: Settings,
    database: Database,
    redis_url: str,
    subscriptions: list[Subscription] | None = None,
) -> None:
    pool = await connect(redis_url)
    worker = create_worker(
        settings,
        subscriptions=subscriptions,
        database=database,
        redis_pool=pool,
        burst=True,
        poll_delay=0.05,
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


class TestDrainJobs:
    async def test_a_failed_attempt_comes_back_as_a_deferred_drain(
        self, settings: Settings, live: Database, redis_url: str, receiver: Receiver
    ) -> None:
        settings = settings.model_copy(update={"webhook_retry_schedule": "0,1"})
        async with live.transaction() as session:
            tenant = await make_tenant(session, "plan-r")
            admin = await make_member(session, tenant, email="r@plan-r.example")
            _, secret = await make_endpoint(session, admin, url=receiver.url)
            receiver.secrets = [secret]
            receiver.script = [500]
            record_event(session, TenantID(tenant.id), "complaint.created", {"n": 1})
        await run_burst(settings, live, redis_url)
        assert receiver.hits == 2
        assert len(receiver.received) == 1
        assert await statuses(live) == [MessageStatus.SUCCEEDED]

    async def test_one_dispatch_job_carries_every_event_waiting(
        self, settings: Settings, live: Database, redis: Any, redis_url: str, receiver: Receiver
    ) -> None:
        async with live.transaction() as session:
            tenant = await make_tenant(session, "plan-g")
            admin = await make_member(session, tenant, email="g@plan-g.example")
            _, secret = await make_endpoint(session, admin, url=receiver.url)
            receiver.secrets = [secret]
        batches = []
        for batch in range(3):
            async with live.transaction() as session:
                items = [("complaint.created", {"batch": batch, "n": n}) for n in range(4)]
                batches.append(record_events(session, TenantID(tenant.id), items))
        await redis.flushdb()  # every dispatch job lost but one
        await redis.enqueue_job("events.dispatch_many", ",".join(str(e.id) for e in batches[0]))
        await run_burst(settings, live, redis_url)
        assert len(set(receiver.ids())) == 12
        assert len(receiver.ids()) == 12
        assert await statuses(live) == [MessageStatus.SUCCEEDED] * 12

    async def test_a_failing_event_in_a_batch_is_left_to_the_sweeper_and_the_rest_go(
        self, settings: Settings, live: Database, redis_url: str, receiver: Receiver
    ) -> None:
        async def refuse_poison(session: Any, event: Event) -> None:
            if event.payload.get("poison"):
                raise RuntimeError("handler failed")

        subscriptions = [
            *event_subscriptions(),
            Subscription("complaint.*", refuse_poison, "test.refuse_poison"),
        ]
        async with live.transaction() as session:
            tenant = await make_tenant(session, "plan-p")
            admin = await make_member(session, tenant, email="p@plan-p.example")
            _, secret = await make_endpoint(session, admin, url=receiver.url)
            receiver.secrets = [secret]
            items = [("complaint.created", {"n": n, "poison": n == 1}) for n in range(3)]
            events = record_events(session, TenantID(tenant.id), items)
        await run_burst(settings, live, redis_url, subscriptions=subscriptions)
        assert sorted(r.payload["data"]["n"] for r in receiver.received) == [0, 2]
        async with live.transaction() as session:
            poison = await session.get(Event, events[1].id)
            assert poison is not None
            assert poison.dispatched_at is None
            assert poison.attempts == 1
            assert poison.last_error == "RuntimeError"
        assert await statuses(live) == [MessageStatus.SUCCEEDED] * 2
