"""Identifiers: time-ordered UUIDs (version 7) and the tenant id type."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import NewType
from uuid import UUID, SafeUUID

# Made only by hub.auth after it has checked the caller's membership (and by the CLI and
# workers, which act for a tenant they loaded). A repository taking a `TenantID` cannot be
# handed an id that nobody checked.
TenantID = NewType("TenantID", UUID)

_last_ms = 0
_counter = 0
# Randomness drawn from the OS in blocks (one system call per 4096 ids). A forked child
# forgets the block it inherited, so parent and child never hand out the same bits.
_BLOCK = 4096
_randoms: Iterator[int] = iter(())
_fork_hook_installed = False
_SAFE = SafeUUID.unknown


def _forget_randoms() -> None:
    global _randoms
    _randoms = iter(())


def _refill() -> int:
    global _randoms, _fork_hook_installed
    if not _fork_hook_installed:
        os.register_at_fork(after_in_child=_forget_randoms)
        _fork_hook_installed = True
    block = os.urandom(10 * _BLOCK)
    fresh = iter([int.from_bytes(block[i : i + 10], "big") for i in range(0, len(block), 10)])
    _randoms = fresh
    return next(fresh)


def uuid7() -> UUID:
    """A UUID version 7: 48-bit Unix milliseconds, then randomness (RFC 9562).

    Ids made in the same millisecond by this process keep increasing: a 12-bit counter
    in `rand_a` is bumped instead of drawing it at random.
    """
    global _last_ms, _counter
    now_ms = time.time_ns() // 1_000_000
    random_bits = next(_randoms, None) or _refill()
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
