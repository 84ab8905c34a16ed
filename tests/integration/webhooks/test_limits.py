"""Shared through Redis: the rate limit grants a batch only what the window has left, and the
drain lock keeps one drainer per endpoint without ever losing a wake-up."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.core.ids import uuid7
from hub.webhooks.limits import DrainLocks, LocalLimiter, RedisLimiter


class TestRedisLimiter:
    async def test_a_batch_gets_what_the_window_has_left_then_steps_aside(self, redis: Any) -> None:
        limiter, endpoint, other = RedisLimiter(redis), uuid7(), uuid7()
        grants = [await limiter.take(endpoint, 4, per_second=10) for _ in range(4)]
        counts = [g.count for g in grants]
        # Within at most two one-second windows, at most 10 + 10 are granted.
        assert 10 <= sum(counts) <= 16
        if sum(counts) == 10:
            assert counts == [4, 4, 2, 0]
            assert 0 < grants[3].wait <= 1
        # Another endpoint has a window of its own.
        assert (await limiter.take(other, 4, per_second=10)).count == 4

    async def test_the_window_turns_each_second(self, redis: Any) -> None:
        limiter, endpoint = RedisLimiter(redis), uuid7()
        while (grant := await limiter.take(endpoint, 100, per_second=3)).count:
            pass
        await asyncio.sleep(grant.wait + 0.01)
        assert (await limiter.take(endpoint, 100, per_second=3)).count == 3


class TestLocalLimiter:
    async def test_same_rule_in_process(self) -> None:
        limiter, endpoint = LocalLimiter(), uuid7()
        first = await limiter.take(endpoint, 5, per_second=3)
        second = await limiter.take(endpoint, 5, per_second=3)
        assert first.count + second.count in (3, 6)  # a window may turn in between
        if first.count + second.count == 3:
            assert second.count == 0
            assert second.wait > 0


class TestDrainLocks:
    async def test_one_drainer_per_endpoint(self, redis: Any) -> None:
        locks, endpoint, other = DrainLocks(redis), uuid7(), uuid7()
        assert await locks.acquire(endpoint, "a", ttl=30)
        assert not await locks.acquire(endpoint, "b", ttl=30)
        assert await locks.acquire(other, "b", ttl=30)
        idle = uuid7()
        assert await locks.wake([endpoint, idle]) == [idle]  # only the idle one needs a drain
        assert await locks.wake([idle]) == []  # its drain job is queued: no second one
        assert await locks.acquire(idle, "c", ttl=30)  # the job starts
        await locks.release(idle, "c")
        assert await locks.wake([idle]) == [idle]

    async def test_a_wake_up_while_draining_makes_the_drainer_go_again(self, redis: Any) -> None:
        locks, endpoint = DrainLocks(redis), uuid7()
        assert await locks.acquire(endpoint, "a", ttl=30)
        assert await locks.new_round(endpoint, "a", ttl=30)  # the flag goes down
        assert await locks.wake([endpoint]) == []  # messages came during the round
        assert await locks.finish(endpoint, "a", ttl=30)  # so it keeps the lock, drains again
        assert await locks.new_round(endpoint, "a", ttl=30)
        assert not await locks.finish(endpoint, "a", ttl=30)  # nothing new: let go
        assert await locks.wake([endpoint]) == [endpoint]  # the next wake-up starts a drainer
        assert await locks.acquire(endpoint, "b", ttl=30)

    async def test_a_drain_job_that_finds_the_lock_held_still_leaves_its_wake_up(
        self, redis: Any
    ) -> None:
        locks, endpoint = DrainLocks(redis), uuid7()
        assert await locks.acquire(endpoint, "a", ttl=30)
        assert await locks.new_round(endpoint, "a", ttl=30)
        assert not await locks.acquire(endpoint, "b", ttl=30)  # b's messages: a drains them
        assert await locks.finish(endpoint, "a", ttl=30)

    async def test_the_lock_of_a_dead_worker_expires(self, redis: Any) -> None:
        locks, endpoint = DrainLocks(redis), uuid7()
        assert await locks.acquire(endpoint, "dead", ttl=0.2)
        assert not await locks.acquire(endpoint, "b", ttl=30)
        await asyncio.sleep(0.3)  # the first holder never let go
        assert await locks.acquire(endpoint, "b", ttl=30)
        assert not await locks.new_round(endpoint, "dead", ttl=30)  # it is b's now
        assert await locks.finish(endpoint, "dead", ttl=30) is False
        await locks.release(endpoint, "dead")  # not the holder: nothing happens
        assert await locks.wake([endpoint]) == []
