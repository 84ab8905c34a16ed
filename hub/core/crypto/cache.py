"""`Crypto`: the key provider and the in-process cache of unwrapped tenant keys.

Built once per process (create_app, the worker's on_startup, the CLI) and carried by
`Database` into every session's `info`, so services seal and open with only a session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from uuid import UUID

from hub.core.crypto.keyring import KeyProvider, LocalKeyRingProvider, load_key_ring
from hub.core.crypto.sealed import TenantCipher
from hub.settings import Settings

# A data key unwrapped in this process is forgotten after this long: a key destroyed or
# rotated by another process stops being used here within this bound.
DEFAULT_CACHE_TTL_SECONDS = 300.0
DEFAULT_CACHE_SIZE = 10_000


class Crypto:
    """A key provider and a bounded, time-limited cache of `TenantCipher`s."""

    def __init__(
        self,
        provider: KeyProvider,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL_SECONDS,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_ttl <= 0 or cache_size <= 0:
            raise ValueError("cache_ttl and cache_size must be positive")
        self.provider = provider
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._clock = clock
        # Keyed by the id's integer: hashing and comparing ints runs in C, a UUID's in Python.
        self._ciphers: dict[int, tuple[TenantCipher, float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Crypto:
        return cls(LocalKeyRingProvider(load_key_ring(settings)))

    def cached(self, tenant_id: UUID) -> TenantCipher | None:
        entry = self._ciphers.get(tenant_id.int)
        if entry is not None:
            cipher, expires_at = entry
            if self._clock() < expires_at:
                return cipher
            self._ciphers.pop(tenant_id.int, None)
        return None

    def remember(self, cipher: TenantCipher) -> None:
        key = cipher.tenant_id.int
        self._ciphers.pop(key, None)
        while len(self._ciphers) >= self.cache_size:
            self._ciphers.pop(next(iter(self._ciphers)))  # the oldest entry
        self._ciphers[key] = (cipher, self._clock() + self.cache_ttl)

    def forget(self, tenant_id: UUID) -> None:
        self._ciphers.pop(tenant_id.int, None)

    def clear(self) -> None:
        self._ciphers.clear()

    def __len__(self) -> int:
        return len(self._ciphers)

    def __repr__(self) -> str:
        return f"Crypto(provider={type(self.provider).__name__}, cached={len(self._ciphers)})"
