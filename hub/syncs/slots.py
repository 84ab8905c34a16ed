"""A key's sync slots: how many calls may use one key at once, across every worker and web
process (syncs, and the CTM gateway's pass-through). Protects CMS, and the key's own rate
limit, from us. Held in Redis, each holder leasing its slot until a deadline of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import uuid4

from hub.core.jobs import JOB_TIMEOUT_SECONDS

# How many calls may use one key at once (syncs and gateway calls alike).
PER_KEY_CONCURRENCY = 2
# The longest one try of a sync runs: the worker cancels it then, and the slot is given back.
JOB_TIMEOUT = timedelta(seconds=JOB_TIMEOUT_SECONDS)
# Each holder leases its slot until a deadline of its own: only a worker that died without
# giving the slot back (SIGKILL, a lost host) outlives its job, and its slot frees itself then.
SLOT_LEASE = JOB_TIMEOUT + timedelta(seconds=60)

# KEYS[1]: the key's holders, each scored with its deadline (ms on Redis's clock, so the
# workers' clocks do not matter). ARGV: holder, lease in ms, slots. Drops the expired holders
# and adds this one if a slot is free; never touches another holder's deadline. The set's
# own expiry (garbage collection once every holder has gone) only ever grows.
_TAKE_SLOT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
if redis.call('PTTL', KEYS[1]) < lease then
    redis.call('PEXPIRE', KEYS[1], lease)
end
return 1
"""


def slots_name(key_id: str) -> str:
    return f"hub:sync-leases:{key_id}"


@asynccontextmanager
async def key_slot(
    redis: Any, key_id: str, *, lease: timedelta = SLOT_LEASE
) -> AsyncIterator[bool]:
    """One of the key's `PER_KEY_CONCURRENCY` slots if one is free (True), held until exit."""
    name, holder = slots_name(key_id), uuid4().hex
    taken: bool | None = None
    try:
        take = redis.register_script(_TAKE_SLOT)
        lease_ms = int(lease.total_seconds() * 1000)
        taken = bool(await take(keys=[name], args=[holder, lease_ms, PER_KEY_CONCURRENCY]))
        yield taken
    finally:
        # Also when cancelled while taking it: the script may have run.
        if taken is not False:
            await redis.zrem(name, holder)
