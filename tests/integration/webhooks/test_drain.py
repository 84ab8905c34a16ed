"""The batch path: a drain claims batches with a lease, sends them within the endpoint's
limits (two batches in flight at once), stops a batch on 410 or Retry-After, and records
every attempt; a drainer that dies leaves its batch to be sent again once the lease ends."""

from __future__ import annotations

import asyncio
import itertools
from asyncio import FIRST_COMPLETED
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.core.db import Database
from hub.webhooks import drain, replay, sender
from hub.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint
from tests.integration.webhooks.support import Harness, Receiver, endpoint_for
from tests.support import Member


async def attempts_of(db: Database, endpoint: WebhookEndpoint) -> list[WebhookAttempt]:
    async with db.transaction() as session:
        statement = select(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id)
        return list((await session.scalars(statement)).all())


async def claimed_batches(
    db: Database, harness: Harness, admin: Member, *receivers: Receiver, count: int = 4
) -> list[drain.Batch]:
    """`count` messages to an endpoint (one at a time) on each receiver, claimed."""
    endpoints = [(await endpoint_for(db, admin, r, max_concurrency=1))[0] for r in receivers]
    await harness.record(admin.tenant_id, "complaint.created", {}, count)
    batches = [(await harness.claim(e.id)).batch for e in endpoints]
    assert all(b is not None and len(b.messages) == count for b in batches)
    return [b for b in batches if b is not None]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 4, so that a few messages make several batches (and two in flight)."""
    monkeypatch.setattr(drain, "BATCH_SIZE", 4)
    monkeypatch.setattr(drain, "ORDERED_BATCH_SIZE", 4)


class TestBatches:
    async def test_many_batches_deliver_every_message_once_with_one_attempt_each(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver, small_batches: None
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        await harness.record(admin.tenant_id, "complaint.created", {}, 13)
        assert await harness.run_due() == 13
        assert receiver.refused == []
        assert sorted(receiver.ids()) == sorted(
            str(m.id) for m in await harness.messages(endpoint.id)
        )
        attempts = await attempts_of(db, endpoint)
        assert len(attempts) == 13
        assert {(a.number, a.status_code, a.error_class, a.is_success) for a in attempts} == {
            (1, 200, None, True)
        }
        assert all(a.response_body == "ok" and a.duration_ms >= 0 for a in attempts)
        messages = await harness.messages(endpoint.id)
        assert {m.status for m in messages} == {MessageStatus.SUCCEEDED}
        assert all(m.next_attempt_at is None and m.delivered_at is not None for m in messages)

    async def test_ordered_endpoint_keeps_event_order_across_batches(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver, small_batches: None
    ) -> None:
        await endpoint_for(db, admin, receiver, is_ordered=True, max_concurrency=8)
        receiver.delay = 0.005
        await harness.record(admin.tenant_id, "complaint.created", {}, 11)
        assert await harness.run_due() == 11
        assert [r.payload["data"]["n"] for r in receiver.received] == list(range(11))
        assert receiver.most_in_flight == 1  # one at a time, whatever the concurrency

    async def test_ordered_failure_mid_batch_holds_back_the_rest(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver, small_batches: None
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, is_ordered=True)
        receiver.script = [200, 500]
        await harness.record(admin.tenant_id, "complaint.created", {}, 6)
        assert await harness.run_due() == 2  # the first, then the failing second; no more
        assert [r.payload["data"]["n"] for r in receiver.received] == [0]
        harness.advance(seconds=5)
        assert await harness.run_due() == 5
        assert [r.payload["data"]["n"] for r in receiver.received] == [0, 1, 2, 3, 4, 5]
        assert [m.attempts for m in await harness.messages(endpoint.id)] == [1, 2, 1, 1, 1, 1]


class TestLimits:
    async def test_concurrency_limit_holds_across_batches_in_flight(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver, small_batches: None
    ) -> None:
        await endpoint_for(db, admin, receiver, max_concurrency=3)
        receiver.delay = 0.02
        await harness.record(admin.tenant_id, "complaint.created", {}, 20)
        assert await harness.run_due() == 20
        assert len(set(receiver.ids())) == 20
        assert 1 < receiver.most_in_flight <= 3

    async def test_worker_slots_bound_requests_over_every_endpoint(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver, small_batches: None
    ) -> None:
        await endpoint_for(db, admin, receiver, max_concurrency=8)
        receiver.delay = 0.02
        await harness.record(admin.tenant_id, "complaint.created", {}, 12)
        drainer = drain.Drainer(harness.policy, harness.http, harness.limiter, asyncio.Semaphore(2))
        [endpoint_id] = await harness.due()
        outcome = await drainer.drain(db, endpoint_id, clock=lambda: harness.now)
        assert outcome.sent == 12
        assert receiver.most_in_flight <= 2

    async def test_a_slow_receiver_gives_the_worker_slot_back_between_its_requests(
        self,
        db: Database,
        harness: Harness,
        admin: Member,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # One worker slot: a runner keeps it for a run of messages, but not past
        # HOLD_SECONDS, so the fast endpoint is served between the slow one's requests
        # instead of after its whole batch.
        monkeypatch.setattr(drain, "HOLD_SECONDS", 0.05)
        slow = await Receiver(delay=0.25).start()
        try:
            slow_batch, fast_batch = await claimed_batches(db, harness, admin, slow, receiver)
            slots = asyncio.Semaphore(1)

            def send(batch: drain.Batch) -> asyncio.Task[list[sender.SendResult | None]]:
                return asyncio.create_task(drain.send(harness.http, batch, window=60, slots=slots))

            slow_send = send(slow_batch)
            await asyncio.sleep(0.1)  # the slow one holds the only slot
            assert slow.in_flight == 1
            fast_send = send(fast_batch)
            done, _ = await asyncio.wait({slow_send, fast_send}, return_when=FIRST_COMPLETED)
            assert done == {fast_send}
            assert slow.hits < 4
            assert all(r is not None and r.is_success for r in fast_send.result())
            assert all(r is not None and r.is_success for r in await slow_send)
            assert len(set(slow.ids())) == len(set(receiver.ids())) == 4
        finally:
            await slow.stop()

    async def test_runners_take_turns_at_the_worker_slots_a_run_at_a_time(
        self,
        db: Database,
        harness: Harness,
        admin: Member,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(drain, "RUN_LENGTH", 2)
        other = await Receiver().start()
        posted: list[str] = []
        real_post = sender.post

        async def logged(http: Any, url: str, **options: Any) -> sender.SendResult:
            posted.append(url)
            return await real_post(http, url, **options)

        monkeypatch.setattr(sender, "post", logged)
        try:
            batches = await claimed_batches(db, harness, admin, receiver, other, count=6)
            slots = asyncio.Semaphore(1)
            results = await asyncio.gather(
                *(drain.send(harness.http, b, window=60, slots=slots) for b in batches)
            )
            assert all(r is not None and r.is_success for batch in results for r in batch)
            runs = [len(list(group)) for _, group in itertools.groupby(posted)]
            assert len(runs) > 2  # they took turns
            assert max(runs) <= 2
        finally:
            await other.stop()

    async def test_over_the_rate_limit_the_drain_steps_aside(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, rate_limit_per_second=5)
        await harness.record(admin.tenant_id, "complaint.created", {}, 12)
        first = await harness.drain(endpoint.id)
        assert first.stepped_aside
        assert first.wake_in is not None
        assert 0 < first.wake_in <= 1
        assert 5 <= first.sent <= 10  # the window may turn once while it runs
        assert len(receiver.received) == first.sent
        pending = [
            m for m in await harness.messages(endpoint.id) if m.status is MessageStatus.PENDING
        ]
        assert len(pending) == 12 - first.sent
        assert all(
            m.next_attempt_at is not None and m.next_attempt_at <= harness.now for m in pending
        )
        while len(receiver.received) < 12:  # each coming back when told, a window at a time
            outcome = await harness.drain(endpoint.id)
            assert outcome.sent <= 10
            if outcome.wake_in is not None:
                await asyncio.sleep(outcome.wake_in)
        assert len(set(receiver.ids())) == 12


class TestRecordMadeAgain:
    """A connection lost in the very moment of the commit leaves it unknown whether the
    record was written; the drain makes it again, and must not count the attempts twice."""

    async def test_the_same_record_twice_writes_each_attempt_once(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, max_concurrency=1)
        receiver.script = [200, 500]
        await harness.record(admin.tenant_id, "complaint.created", {}, 2)
        batch = (await harness.claim(endpoint.id)).batch
        assert batch is not None
        results = await drain.send(harness.http, batch, window=60)
        wakes = []
        for _ in range(2):
            async with db.transaction() as session:
                wakes.append(
                    await drain.record(
                        session, batch, results, policy=harness.policy, now=harness.now
                    )
                )
        assert wakes[0] is not None
        assert wakes[1] == wakes[0]  # the retry is still asked for
        attempts = await attempts_of(db, endpoint)
        assert sorted((a.number, a.status_code) for a in attempts) == [(1, 200), (1, 500)]
        messages = await harness.messages(endpoint.id)
        assert [m.attempts for m in messages] == [1, 1]
        assert [m.status for m in messages] == [MessageStatus.SUCCEEDED, MessageStatus.PENDING]

    async def test_a_drain_whose_record_is_made_again_counts_each_attempt_once(
        self,
        db: Database,
        harness: Harness,
        admin: Member,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, max_concurrency=1)
        receiver.script = [200, 500, 200]
        await harness.record(admin.tenant_id, "complaint.created", {}, 3)
        calls = 0

        async def twice_after_the_claim(self: Database, work: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls > 1:  # the record: its commit landed, but the answer was lost
                await work()
            return await work()

        monkeypatch.setattr(Database, "again_if_disconnected", twice_after_the_claim)
        outcome = await harness.drain(endpoint.id)
        assert outcome.sent == 3
        assert outcome.wake_in is not None  # the failed one comes back
        attempts = await attempts_of(db, endpoint)
        assert sorted(a.status_code for a in attempts) == [200, 200, 500]
        assert {a.number for a in attempts} == {1}
        assert [m.attempts for m in await harness.messages(endpoint.id)] == [1, 1, 1]


class TestHalts:
    async def test_410_mid_batch_disables_once_and_sends_no_more(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, max_concurrency=1)
        receiver.script = [200, 410]
        await harness.record(admin.tenant_id, "complaint.created", {}, 5)
        assert await harness.run_due() == 2
        assert receiver.hits == 2
        found = await harness.endpoint(endpoint.id)
        assert not found.is_enabled
        messages = await harness.messages(endpoint.id)
        assert [m.status for m in messages] == [MessageStatus.SUCCEEDED] + [
            MessageStatus.FAILED
        ] * 4
        assert [m.attempts for m in messages] == [1, 1, 0, 0, 0]  # the unsent never tried
        assert len(await attempts_of(db, endpoint)) == 2
        assert len(await harness.events_of_type(admin.tenant_id, "webhook.endpoint_disabled")) == 1

    async def test_410s_in_flight_together_disable_the_endpoint_once(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, max_concurrency=8)
        receiver.default_status = 410
        await harness.record(admin.tenant_id, "complaint.created", {}, 4)
        sent = await harness.run_due()
        assert 1 <= sent <= 4
        assert {m.status for m in await harness.messages(endpoint.id)} == {MessageStatus.FAILED}
        assert len(await harness.events_of_type(admin.tenant_id, "webhook.endpoint_disabled")) == 1

    async def test_retry_after_mid_batch_holds_the_rest_until_then(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, max_concurrency=1)
        receiver.script = [200, 503]
        receiver.reply_headers = {"Retry-After": "30"}
        await harness.record(admin.tenant_id, "complaint.created", {}, 4)
        outcome = await harness.drain(endpoint.id)
        assert outcome.sent == 2
        assert outcome.wake_in == 30
        messages = await harness.messages(endpoint.id)
        assert [m.attempts for m in messages] == [1, 1, 0, 0]  # the rest not even tried
        later = harness.now + timedelta(seconds=30)
        assert [m.next_attempt_at for m in messages[1:]] == [later] * 3
        harness.advance(seconds=29)
        assert await harness.run_due() == 0
        harness.advance(seconds=1)
        assert await harness.run_due() == 3
        assert len(set(receiver.ids())) == 4


class TestLeases:
    async def test_a_batch_claimed_by_a_drainer_that_died_is_sent_after_its_lease(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        await harness.record(admin.tenant_id, "complaint.created", {}, 3)
        claimed = await harness.claim(endpoint.id)  # claimed, then the worker died
        assert claimed.batch is not None
        assert len(claimed.batch.messages) == 3
        assert await harness.run_due() == 0  # leased: no other drainer takes them
        async with db.transaction() as session:
            assert (
                await replay.sweep(session, older_than=timedelta(seconds=60), now=harness.now) == 0
            )
        lease_over = harness.now + harness.policy.lease + timedelta(seconds=61)
        async with db.transaction() as session:  # the sweeper finds the endpoint
            assert (
                await replay.sweep(session, older_than=timedelta(seconds=60), now=lease_over) == 1
            )
        harness.now = lease_over
        assert await harness.run_due() == 3
        assert sorted(receiver.ids()) == sorted(str(m.message_id) for m in claimed.batch.messages)
        async with db.transaction() as session:
            count = await session.scalar(select(func.count()).select_from(WebhookAttempt))
        assert count == 3
