"""Who drains an endpoint, and how fast: the drain lock, wake-ups and the rate limit, shared
by every worker through Redis.

One worker at a time drains an endpoint: it holds the endpoint's drain lock (a key with a
time to live, renewed on every pass, so a worker that dies lets go on its own). Holding it,
the drainer keeps the endpoint's `max_concurrency` itself. Whoever adds messages raises the
endpoint's wake flag and starts a drainer only when nobody holds the lock; a drainer looks
at the flag in the same atomic step that lets go of the lock, so a wake-up can never fall
between its last look at the database and its exit. A drainer with nothing left to send
may linger a moment, blocked on the flag, so that steady traffic keeps one drainer busy
instead of starting one per commit.

The rate limit is a one-second window counter: a drainer takes tokens for a batch and
sends only as many messages as it was granted. A drainer over the limit does not wait
holding a worker slot: it is told how long to step aside. A receiver's `Retry-After` pauses
the endpoint the same way, for every message, not just the batch it answered.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

WAKE_FLAG_SECONDS = 3600  # a flag nobody consumed (no drainer ran) expires on its own
# A drain job queued but not started yet makes further wake-ups start none; if it is lost
# (Redis lost its queue), the mark expires and the next wake-up (or the sweeper) starts one.
STARTING_SECONDS = 60

# KEYS: window, pause; ARGV: wanted, per second, now (ms). An endpoint whose receiver
# asked for time (Retry-After) is granted nothing until the pause's end (ms, on the
# drain's clock): returns minus the milliseconds left.
_TAKE = """
local paused = tonumber(redis.call('GET', KEYS[2]) or '0') - tonumber(ARGV[3])
if paused > 0 then return -paused end
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local free = tonumber(ARGV[2]) - used
if free <= 0 then return 0 end
local granted = math.min(free, tonumber(ARGV[1]))
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIRE', KEYS[1], 2)
return granted
"""

# The flag is a list of at most one item, so that a lingering drainer can block on it.
_RAISE_FLAG = """
redis.call('RPUSH', KEYS[1], '1')
redis.call('LTRIM', KEYS[1], -1, -1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
"""

# KEYS: flag, lock, starting. Returns 1 when a drainer holds the lock (it will see the
# flag) or a drain job is already queued to start (it will look); otherwise marks one as
# starting and returns 0: the caller enqueues it.
_WAKE = (
    _RAISE_FLAG
    + """
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then return 0 end
return 1
"""
)

# KEYS: flag, lock, starting; ARGV: flag ttl, holder, lock ttl (ms). The flag goes up
# first, so a holder that is finishing drains again when this acquire fails.
_ACQUIRE = (
    _RAISE_FLAG
    + """
redis.call('DEL', KEYS[3])
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return 1 end
return 0
"""
)

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
    async def take(
        self, endpoint_id: UUID, wanted: int, *, per_second: int, now: float | None = None
    ) -> Grant: ...

    async def pause(self, endpoint_id: UUID, *, until: float, now: float) -> None:
        """Grant the endpoint nothing until `until` (its receiver asked for time); both in
        seconds on the drain's clock, which `take` is given as `now`."""


def _rate_wait(now: float) -> float:
    return max(0.01, int(now) + 1 - now)


class RedisLimiter:
    """A one-second window counter per endpoint, shared by every worker."""

    def __init__(self, redis: Any, prefix: str = "hub:webhooks") -> None:
        self.redis = redis
        self.prefix = prefix

    async def take(
        self, endpoint_id: UUID, wanted: int, *, per_second: int, now: float | None = None
    ) -> Grant:
        second = time.time()
        now = second if now is None else now
        window = f"{self.prefix}:rate:{endpoint_id}:{int(second)}"
        paused = f"{self.prefix}:pause:{endpoint_id}"
        keys_and_args = (window, paused, wanted, per_second, int(now * 1000))
        granted = int(await self.redis.eval(_TAKE, 2, *keys_and_args))
        if granted < 0:
            return Grant(0, -granted / 1000)
        return Grant(granted) if granted > 0 else Grant(0, _rate_wait(second))

    async def pause(self, endpoint_id: UUID, *, until: float, now: float) -> None:
        if until > now:
            key, ms = f"{self.prefix}:pause:{endpoint_id}", int((until - now) * 1000) + 1
            await self.redis.set(key, int(until * 1000), px=ms)


class LocalLimiter:
    """The same rule within one process (tests, and tools that run without Redis)."""

    def __init__(self) -> None:
        self.windows: dict[tuple[UUID, int], int] = defaultdict(int)
        self.paused_until: dict[UUID, float] = {}

    async def take(
        self, endpoint_id: UUID, wanted: int, *, per_second: int, now: float | None = None
    ) -> Grant:
        second = time.time()
        paused = self.paused_until.get(endpoint_id, 0.0) - (second if now is None else now)
        if paused > 0:
            return Grant(0, paused)
        window = (endpoint_id, int(second))
        granted = max(0, min(wanted, per_second - self.windows[window]))
        self.windows[window] += granted
        return Grant(granted) if granted > 0 else Grant(0, _rate_wait(second))

    async def pause(self, endpoint_id: UUID, *, until: float, now: float) -> None:
        self.paused_until[endpoint_id] = max(until, self.paused_until.get(endpoint_id, 0.0))


class DrainLocks:
    """The drain lock and wake flag of each endpoint, in Redis."""

    def __init__(self, redis: Any, prefix: str = "hub:webhooks") -> None:
        self.redis = redis
        self.prefix = prefix

    def _keys(self, endpoint_id: UUID) -> tuple[str, str, str]:
        return (
            f"{self.prefix}:wake:{endpoint_id}",
            f"{self.prefix}:drain:{endpoint_id}",
            f"{self.prefix}:starting:{endpoint_id}",
        )

    async def wake(self, endpoint_ids: Sequence[UUID]) -> list[UUID]:
        """Raise each endpoint's flag (one round trip for all); returns the endpoints no
        drainer holds, which need a drain started."""
        pipeline = self.redis.pipeline(transaction=False)
        for endpoint_id in endpoint_ids:
            keys = self._keys(endpoint_id)
            pipeline.eval(_WAKE, 3, *keys, WAKE_FLAG_SECONDS, STARTING_SECONDS)
        held = await pipeline.execute()
        return [e for e, h in zip(endpoint_ids, held, strict=True) if not int(h)]

    async def acquire(self, endpoint_id: UUID, holder: str, *, ttl: float) -> bool:
        keys, ms = self._keys(endpoint_id), int(ttl * 1000)
        return bool(int(await self.redis.eval(_ACQUIRE, 3, *keys, WAKE_FLAG_SECONDS, holder, ms)))

    async def new_round(self, endpoint_id: UUID, holder: str, *, ttl: float) -> bool:
        """Lower the flag and renew the lock; False when the lock is no longer ours."""
        keys, ms = self._keys(endpoint_id)[:2], int(ttl * 1000)
        return bool(int(await self.redis.eval(_NEW_ROUND, 2, *keys, holder, ms)))

    async def linger(self, endpoint_id: UUID, seconds: float) -> bool:
        """Wait (holding the lock) up to `seconds` for a wake-up; True when one came. Under
        steady traffic the drainer stays, instead of a new drain job for every commit."""
        woken = await self.redis.blpop([self._keys(endpoint_id)[0]], timeout=seconds)
        return woken is not None

    async def finish(self, endpoint_id: UUID, holder: str, *, ttl: float) -> bool:
        """Let go of the lock unless woken meanwhile; True means drain again (still held)."""
        keys, ms = self._keys(endpoint_id)[:2], int(ttl * 1000)
        return int(await self.redis.eval(_FINISH, 2, *keys, holder, ms)) == 1

    async def release(self, endpoint_id: UUID, holder: str) -> None:
        await self.redis.eval(_RELEASE, 1, self._keys(endpoint_id)[1], holder)
