"""Who drains an endpoint, and how fast: the drain lock, wake-ups and the rate limit, shared
by every worker through Redis.

One worker at a time drains an endpoint: it holds the endpoint's drain lock (a key with a
time to live, renewed on every pass, so a worker that dies lets go on its own). Holding it,
the drainer keeps the endpoint's `max_concurrency` itself. Whoever adds messages raises the
endpoint's wake flag and starts a drainer only when nobody holds the lock; a drainer looks
at the flag in the same atomic step that lets go of the lock, so a wake-up can never fall
between its last look at the database and its exit.

The rate limit is a one-second window counter: a drainer takes tokens for a batch and
sends only as many messages as it was granted. A drainer over the limit does not wait
holding a worker slot: it is told how long to step aside.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

WAKE_FLAG_SECONDS = 3600  # a flag nobody consumed (no drainer ran) expires on its own

_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local free = tonumber(ARGV[2]) - used
if free <= 0 then return 0 end
local granted = math.min(free, tonumber(ARGV[1]))
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIRE', KEYS[1], 2)
return granted
"""

# KEYS: flag, lock. Returns 1 when a drainer holds the lock (it will see the flag).
_WAKE = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return redis.call('EXISTS', KEYS[2])
"""

# KEYS: flag, lock; ARGV: flag ttl, holder, lock ttl (ms). The flag goes up first, so a
# holder that is finishing drains again when this acquire fails.
_ACQUIRE = """
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""

# KEYS: flag, lock; ARGV: holder, lock ttl (ms). Start a round: lower the flag, renew.
_NEW_ROUND = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""

# KEYS: flag, lock; ARGV: holder, lock ttl (ms). 1: woken meanwhile, the lock is kept;
# 0: released; -1: the lock had passed to another drainer.
_FINISH = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class Grant:
    """Messages the drainer may send now; with none, the seconds to step aside."""

    count: int
    wait: float = 0.0


class Limiter(Protocol):
    async def take(self, endpoint_id: UUID, wanted: int, *, per_second: int) -> Grant: ...


def _rate_wait(now: float) -> float:
    return max(0.01, int(now) + 1 - now)


class RedisLimiter:
    """A one-second window counter per endpoint, shared by every worker."""

    def __init__(self, redis: Any, prefix: str = "hub:webhooks") -> None:
        self.redis = redis
        self.prefix = prefix

    async def take(self, endpoint_id: UUID, wanted: int, *, per_second: int) -> Grant:
        now = time.time()
        window = f"{self.prefix}:rate:{endpoint_id}:{int(now)}"
        granted = int(await self.redis.eval(_TAKE, 1, window, wanted, per_second))
        return Grant(granted) if granted > 0 else Grant(0, _rate_wait(now))


class LocalLimiter:
    """The same rule within one process (tests, and tools that run without Redis)."""

    def __init__(self) -> None:
        self.windows: dict[tuple[UUID, int], int] = defaultdict(int)

    async def take(self, endpoint_id: UUID, wanted: int, *, per_second: int) -> Grant:
        now = time.time()
        window = (endpoint_id, int(now))
        granted = max(0, min(wanted, per_second - self.windows[window]))
        self.windows[window] += granted
        return Grant(granted) if granted > 0 else Grant(0, _rate_wait(now))


class DrainLocks:
    """The drain lock and wake flag of each endpoint, in Redis."""

    def __init__(self, redis: Any, prefix: str = "hub:webhooks") -> None:
        self.redis = redis
        self.prefix = prefix

    def _keys(self, endpoint_id: UUID) -> tuple[str, str]:
        return f"{self.prefix}:wake:{endpoint_id}", f"{self.prefix}:drain:{endpoint_id}"

    async def wake(self, endpoint_id: UUID) -> bool:
        """Raise the flag; True when a drainer holds the lock (no new drainer is needed)."""
        held = await self.redis.eval(_WAKE, 2, *self._keys(endpoint_id), WAKE_FLAG_SECONDS)
        return bool(int(held))

    async def acquire(self, endpoint_id: UUID, holder: str, *, ttl: float) -> bool:
        keys, ms = self._keys(endpoint_id), int(ttl * 1000)
        return bool(int(await self.redis.eval(_ACQUIRE, 2, *keys, WAKE_FLAG_SECONDS, holder, ms)))

    async def new_round(self, endpoint_id: UUID, holder: str, *, ttl: float) -> bool:
        """Lower the flag and renew the lock; False when the lock is no longer ours."""
        keys, ms = self._keys(endpoint_id), int(ttl * 1000)
        return bool(int(await self.redis.eval(_NEW_ROUND, 2, *keys, holder, ms)))

    async def finish(self, endpoint_id: UUID, holder: str, *, ttl: float) -> bool:
        """Let go of the lock unless woken meanwhile; True means drain again (still held)."""
        keys, ms = self._keys(endpoint_id), int(ttl * 1000)
        return int(await self.redis.eval(_FINISH, 2, *keys, holder, ms)) == 1

    async def release(self, endpoint_id: UUID, holder: str) -> None:
        await self.redis.eval(_RELEASE, 1, self._keys(endpoint_id)[1], holder)
