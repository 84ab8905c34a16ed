"""Per-endpoint concurrency and rate limits, shared by every worker through Redis.

A delivery that would exceed either limit does not wait holding a worker slot: it is told
how long to step aside, so one slow receiver cannot starve the others. Each in-flight
delivery holds a lease that expires on its own, so a worker that dies mid-request does not
shrink the endpoint's concurrency for good.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Protocol
from uuid import UUID

CONCURRENCY_BACKOFF_SECONDS = 0.1

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 1 end
local sent = redis.call('INCR', KEYS[2])
if sent == 1 then redis.call('EXPIRE', KEYS[2], 2) end
if sent > tonumber(ARGV[5]) then return 2 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], 3600)
return 0
"""


class Limiter(Protocol):
    async def acquire(
        self, endpoint_id: UUID, holder: UUID, *, concurrency: int, per_second: int, lease: float
    ) -> float:
        """0 when `holder` may send now (and holds a slot for at most `lease` seconds);
        otherwise the seconds to step aside."""

    async def release(self, endpoint_id: UUID, holder: UUID) -> None: ...


def _rate_wait(now: float) -> float:
    return max(0.01, int(now) + 1 - now)


class RedisLimiter:
    """In-flight leases in a sorted set and a one-second window counter, per endpoint."""

    def __init__(self, redis: Any, prefix: str = "hub:webhooks") -> None:
        self.redis = redis
        self.prefix = prefix

    def _inflight(self, endpoint_id: UUID) -> str:
        return f"{self.prefix}:inflight:{endpoint_id}"

    async def acquire(
        self, endpoint_id: UUID, holder: UUID, *, concurrency: int, per_second: int, lease: float
    ) -> float:
        now = time.time()
        keys = [self._inflight(endpoint_id), f"{self.prefix}:rate:{endpoint_id}:{int(now)}"]
        args = [now, now + lease, str(holder), concurrency, per_second]
        verdict = int(await self.redis.eval(_ACQUIRE, len(keys), *keys, *args))
        if verdict == 0:
            return 0.0
        return CONCURRENCY_BACKOFF_SECONDS if verdict == 1 else _rate_wait(now)

    async def release(self, endpoint_id: UUID, holder: UUID) -> None:
        await self.redis.zrem(self._inflight(endpoint_id), str(holder))


class LocalLimiter:
    """The same rules within one process (tests, and tools that run without Redis)."""

    def __init__(self) -> None:
        self.inflight: dict[UUID, dict[UUID, float]] = defaultdict(dict)
        self.windows: dict[tuple[UUID, int], int] = defaultdict(int)

    async def acquire(
        self, endpoint_id: UUID, holder: UUID, *, concurrency: int, per_second: int, lease: float
    ) -> float:
        now = time.time()
        leases = self.inflight[endpoint_id]
        for expired in [h for h, until in leases.items() if until <= now]:
            del leases[expired]
        if len(leases) >= concurrency:
            return CONCURRENCY_BACKOFF_SECONDS
        window = (endpoint_id, int(now))
        if self.windows[window] >= per_second:
            return _rate_wait(now)
        self.windows[window] += 1
        leases[holder] = now + lease
        return 0.0

    async def release(self, endpoint_id: UUID, holder: UUID) -> None:
        self.inflight[endpoint_id].pop(holder, None)
