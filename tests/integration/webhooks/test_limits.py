"""Per-endpoint limits in Redis: a busy or fast endpoint is told to step aside, others are
not held up, and a lease left by a dead worker runs out."""

from __future__ import annotations

import asyncio
from typing import Any

from hub.core.ids import uuid7
from hub.webhooks.limits import CONCURRENCY_BACKOFF_SECONDS, RedisLimiter


class TestRedisLimiter:
    async def test_concurrency_limit_holds_one_endpoint_not_the_others(self, redis: Any) -> None:
        limiter = RedisLimiter(redis)
        slow, other = uuid7(), uuid7()
        first, second = uuid7(), uuid7()
        assert await limiter.acquire(slow, first, concurrency=1, per_second=100, lease=30) == 0
        waited = await limiter.acquire(slow, second, concurrency=1, per_second=100, lease=30)
        assert waited == CONCURRENCY_BACKOFF_SECONDS
        assert await limiter.acquire(other, uuid7(), concurrency=1, per_second=100, lease=30) == 0
        await limiter.release(slow, first)
        assert await limiter.acquire(slow, second, concurrency=1, per_second=100, lease=30) == 0

    async def test_rate_limit_asks_to_wait_for_the_next_second(self, redis: Any) -> None:
        limiter = RedisLimiter(redis)
        endpoint = uuid7()
        granted = []
        for _ in range(10):
            holder = uuid7()
            granted.append(
                await limiter.acquire(endpoint, holder, concurrency=10, per_second=3, lease=30)
            )
            await limiter.release(endpoint, holder)
        # Within at most two one-second windows, at most 3 + 3 go; the rest step aside.
        assert 3 <= granted.count(0) <= 6
        assert any(0 < wait <= 1 for wait in granted)

    async def test_a_lease_of_a_dead_worker_expires(self, redis: Any) -> None:
        limiter = RedisLimiter(redis)
        endpoint = uuid7()
        assert (
            await limiter.acquire(endpoint, uuid7(), concurrency=1, per_second=100, lease=0.2) == 0
        )
        assert await limiter.acquire(endpoint, uuid7(), concurrency=1, per_second=100, lease=5) > 0
        await asyncio.sleep(0.3)  # the first holder never released
        assert await limiter.acquire(endpoint, uuid7(), concurrency=1, per_second=100, lease=5) == 0
