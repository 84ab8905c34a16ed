"""Review findings on delivery: each test is a defect found by review, shown on a real
receiver (or the drain's own steps) and kept fixed."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from hub.core.db import Database
from hub.core.ids import uuid7
from hub.webhooks import delivery, drain, replay
from hub.webhooks.limits import RedisLimiter
from hub.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint
from tests.integration.webhooks.support import Harness, Receiver, endpoint_for
from tests.support import Member


class TestRetryAfterTooBigForAFloat:
    async def test_the_attempt_is_recorded_and_retried_after_the_cap(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # float(int("9" * 400)) overflows: the drain crashed with the message still leased,
        # so it was sent again each time the lease ran out and never recorded.
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.script = [429]
        receiver.reply_headers = {"Retry-After": "9" * 400}
        await harness.record(admin.tenant_id, "sync.failed", {})
        assert await harness.run_due() == 1
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.PENDING
        assert message.attempts == 1
        assert message.last_error == "HTTP429"
        assert message.next_attempt_at == harness.now + timedelta(hours=24)


class TestResponseBodyWithANul:
    async def test_the_attempt_is_recorded(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # PostgreSQL text refuses U+0000: recording the batch failed, the drain crashed, and
        # the message (leased) was sent again at every lease's end, never marked delivered.
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.reply_body = "ok\x00done"
        await harness.record(admin.tenant_id, "sync.completed", {})
        assert await harness.run_due() == 1
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.SUCCEEDED
        async with db.transaction() as session:
            attempt = await session.scalar(
                select(WebhookAttempt).where(WebhookAttempt.message_id == message.id)
            )
        assert attempt is not None
        assert attempt.response_body == "ok\ufffddone"


class TestHostTheResolverCannotEncode:
    async def test_it_is_a_400_naming_the_url(
        self, client: httpx.AsyncClient, admin: Member
    ) -> None:
        response = await client.post(
            "/api/v1/webhooks/endpoints",
            json={"url": "https://hooks..plan-a.example/ctm", "event_types": ["*"]},
            headers=admin.headers,
        )
        assert response.status_code == 400, response.text
        assert "url" in response.text

    async def test_one_stored_before_is_a_failed_attempt_not_a_crashed_drain(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # getaddrinfo raised UnicodeError, which no except caught: the drain crashed with
        # the message leased, and it was never recorded nor failed.
        endpoint, _ = await endpoint_for(db, admin, receiver)
        async with db.transaction() as session:
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint.id)
                .values(url="https://" + "a" * 64 + ".example.com/hook")
            )
        await harness.record(admin.tenant_id, "sync.completed", {})
        assert await harness.run_due() == 1
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.PENDING
        assert message.attempts == 1
        assert message.last_error == "UnicodeError"
        assert receiver.hits == 0


class TestSuccessOfABatchClaimedBeforeAFailure:
    async def test_it_still_resets_the_failing_clock(
        self,
        db: Database,
        harness: Harness,
        admin: Member,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # A drain has two batches in flight: the first fails, the second (claimed before that
        # failure was recorded) succeeds. The success cleared `failing_since` only when the
        # endpoint was failing at its claim, so the clock ran on from that first failure and
        # a single failure days later disabled a working endpoint.
        monkeypatch.setattr(drain, "BATCH_SIZE", 1)
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.script = [500, 200]
        await harness.record(admin.tenant_id, "complaint.created", {}, 2)
        first, second = await harness.claim(endpoint.id), await harness.claim(endpoint.id)
        assert first.batch is not None
        assert second.batch is not None
        for batch in (first.batch, second.batch):
            results = await drain.send(harness.http, batch, window=5)
            async with db.transaction() as session:
                await drain.record(session, batch, results, policy=harness.policy, now=harness.now)
        found = await harness.endpoint(endpoint.id)
        assert found.failing_since is None
        harness.advance(days=5)
        receiver.script = [500]
        await harness.record(admin.tenant_id, "complaint.created", {})
        await harness.run_due()
        assert (await harness.endpoint(endpoint.id)).is_enabled


class TestSendWindow:
    async def test_a_message_whose_worker_slot_comes_after_the_window_is_not_sent(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # The window was checked before waiting for one of the worker's request slots, so a
        # message could go out long after its window (and so its lease) had ended, while
        # the sweeper and another drainer were free to send it too.
        endpoint, _ = await endpoint_for(db, admin, receiver)
        await harness.record(admin.tenant_id, "complaint.created", {})
        claimed = await harness.claim(endpoint.id)
        assert claimed.batch is not None
        slots = asyncio.Semaphore(1)
        await slots.acquire()  # every slot busy with other endpoints' requests
        asyncio.get_running_loop().call_later(0.3, slots.release)
        results = await drain.send(harness.http, claimed.batch, window=0.1, slots=slots)
        assert results == [None]
        assert receiver.hits == 0


class TestSweeper:
    async def test_an_endpoint_with_a_backlog_does_not_hide_the_others(
        self,
        db: Database,
        harness: Harness,
        admin: Member,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The sweeper took the oldest overdue messages and woke their endpoints: while one
        # endpoint had a backlog longer than a sweep batch (a slow receiver, say), every
        # sweep found only it, and another endpoint whose drain job Redis lost waited.
        monkeypatch.setattr(replay, "SWEEP_BATCH", 3)
        busy, _ = await endpoint_for(db, admin, receiver, event_types=["complaint.*"])
        await harness.record(admin.tenant_id, "complaint.created", {}, 5)
        other, _ = await endpoint_for(db, admin, receiver, event_types=["sync.*"])
        await harness.record(admin.tenant_id, "sync.failed", {})
        later = harness.now + timedelta(minutes=5)
        async with db.transaction() as session:
            wakes = delivery.collect_wakes(session)
            swept = await replay.sweep(session, older_than=timedelta(seconds=60), now=later)
        assert swept == 2
        assert wakes == {busy.id, other.id}


class TestShortRetryAfter:
    async def test_it_does_not_use_up_the_schedule_in_seconds(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # A Retry-After replaced the schedule's delay even when shorter: a receiver busy for
        # ten seconds (503, Retry-After: 0) took all eight attempts in eight seconds, and
        # the message failed for good instead of being retried over the schedule.
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.default_status = 503
        receiver.reply_headers = {"Retry-After": "0"}
        await harness.record(admin.tenant_id, "sync.failed", {})
        for _ in range(10):
            await harness.run_due()
            harness.advance(seconds=1)
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.PENDING
        assert message.attempts == 2  # at once, and 5 s later: never sooner than asked
        receiver.default_status, receiver.reply_headers = 200, {}
        harness.advance(seconds=300)
        assert await harness.run_due() == 1
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.SUCCEEDED


class TestRetryAfterHoldsTheEndpoint:
    async def test_messages_arriving_meanwhile_wait_too(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # A Retry-After held back only the batch it answered: the next drain (the next
        # commit's wake-up) sent every new message at once to a receiver that had asked for
        # time, and each got its 429 and spent an attempt.
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.script = [429]
        receiver.reply_headers = {"Retry-After": "1"}
        await harness.record(admin.tenant_id, "complaint.created", {})
        assert await harness.run_due() == 1
        receiver.reply_headers = {}
        await harness.record(admin.tenant_id, "complaint.created", {}, 2)
        outcome = await harness.drain(endpoint.id)
        assert outcome.sent == 0
        assert outcome.stepped_aside
        assert outcome.wake_in is not None
        assert 0 < outcome.wake_in <= 1
        assert receiver.hits == 1
        harness.advance(seconds=outcome.wake_in)
        assert (await harness.drain(endpoint.id)).sent == 2
        assert len(receiver.received) == 2


class TestRedisLimiterPause:
    async def test_a_paused_endpoint_is_granted_nothing_until_the_pause_ends(
        self, redis: Any
    ) -> None:
        limiter, endpoint, other = RedisLimiter(redis), uuid7(), uuid7()
        now = time.time()
        await limiter.pause(endpoint, until=now + 30, now=now)
        grant = await limiter.take(endpoint, 5, per_second=100, now=now + 10)
        assert grant.count == 0
        assert grant.wait == pytest.approx(20, abs=0.01)
        assert (await limiter.take(other, 5, per_second=100, now=now + 10)).count == 5
        assert (await limiter.take(endpoint, 5, per_second=100, now=now + 30)).count == 5
        assert 0 < await redis.pttl(f"hub:webhooks:pause:{endpoint}") <= 30_001  # then gone
