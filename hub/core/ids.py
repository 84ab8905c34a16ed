"""Identifiers: time-ordered UUIDs (version 7) and the tenant id type."""

from __future__ import annotations

import time
from datetime import datetime
from typing import NewType
from uuid import UUID, SafeUUID

from hub.core.randomness import RandomBlocks

# Made only by hub.auth after it has checked the caller's membership (and by the CLI and
# workers, which act for a tenant they loaded). A repository taking a `TenantID` cannot be
# handed an id that nobody checked.
TenantID = NewType("TenantID", UUID)

_last_ms = 0
_counter = 0
# 80 random bits per id, drawn in blocks (never shared with a forked child).
_RANDOM: RandomBlocks[int] = RandomBlocks(10, lambda bits: int.from_bytes(bits, "big"))
_SAFE = SafeUUID.unknown


def uuid7() -> UUID:
    """A UUID version 7: 48-bit Unix milliseconds, then randomness (RFC 9562).

    Ids made in the same millisecond by this process keep increasing: a 12-bit counter
    in `rand_a` is bumped instead of drawing it at random.
    """
    global _last_ms, _counter
    now_ms = time.time_ns() // 1_000_000
    random_bits = _RANDOM.take()
    if now_ms <= _last_ms:
        _counter += 1
        if _counter > 0xFFF:
            _last_ms += 1
            _counter = 0
        now_ms = _last_ms
    else:
        _last_ms = now_ms
        _counter = (random_bits >> 64) & 0x7FF
    value = (
        (now_ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | _counter << 64
        | 0b10 << 62
        | random_bits & 0x3FFF_FFFF_FFFF_FFFF
    )
    # What UUID(int=value) builds, without re-checking a value that is valid by construction.
    made = object.__new__(UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", _SAFE)
    return made


def uuid7_floor(moment: datetime) -> UUID:
    """The smallest UUIDv7 of `moment`'s millisecond: rows keyed by `uuid7()` made at or
    after `moment` have ids `>=` it, so a time range is a primary-key range (both databases
    compare UUIDs in this byte order)."""
    millis = int(moment.timestamp() * 1000)
    return UUID(int=(millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | 0b10 << 62)
