"""Identifiers: time-ordered UUIDs (version 7) and the tenant id type."""

from __future__ import annotations

import os
import time
from typing import NewType
from uuid import UUID

# Made only by hub.auth after it has checked the caller's membership (and by the CLI and
# workers, which act for a tenant they loaded). A repository taking a `TenantID` cannot be
# handed an id that nobody checked.
TenantID = NewType("TenantID", UUID)

_last_ms = 0
_counter = 0


def uuid7() -> UUID:
    """A UUID version 7: 48-bit Unix milliseconds, then randomness (RFC 9562).

    Ids made in the same millisecond by this process keep increasing: a 12-bit counter
    in `rand_a` is bumped instead of drawing it at random.
    """
    global _last_ms, _counter
    now_ms = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")  # one system call per id
    if now_ms <= _last_ms:
        _counter += 1
        if _counter > 0xFFF:
            _last_ms += 1
            _counter = 0
        now_ms = _last_ms
    else:
        _last_ms = now_ms
        _counter = (random_bits >> 64) & 0x7FF
    rand_b = random_bits & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= _counter << 64
    value |= 0b10 << 62
    value |= rand_b
    return UUID(int=value)
