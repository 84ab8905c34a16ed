"""Failed sign-ins, counted in Redis: after `EMAIL_LIMIT` failures of one email within
`WINDOW`, that email is refused until the window ends (whatever the password); one client
address gets `ADDRESS_LIMIT` failures over all emails."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

WINDOW_SECONDS = 15 * 60
EMAIL_LIMIT = 5
ADDRESS_LIMIT = 50


def _keys(email: str, address: str) -> tuple[str, str]:
    # Hashed: Redis holds no email address.
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    return f"hub:portal:sign-in:email:{digest}", f"hub:portal:sign-in:address:{address}"


@dataclass(frozen=True, slots=True)
class Lockout:
    retry_after: int  # seconds


async def locked(redis: Any, *, email: str, address: str) -> Lockout | None:
    by_email, by_address = _keys(email, address)
    counts = await redis.mget(by_email, by_address)
    email_count, address_count = (int(c or 0) for c in counts)
    if email_count < EMAIL_LIMIT and address_count < ADDRESS_LIMIT:
        return None
    key = by_email if email_count >= EMAIL_LIMIT else by_address
    ttl = await redis.ttl(key)
    return Lockout(retry_after=max(int(ttl), 1))


async def failed(redis: Any, *, email: str, address: str) -> None:
    # The window starts at the first failure (SET NX with its expiry; INCR keeps it). Not
    # EXPIRE NX: the embedded Redis (6.2) lacks it.
    pipe = redis.pipeline(transaction=True)
    for key in _keys(email, address):
        pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(key)
    await pipe.execute()


async def succeeded(redis: Any, *, email: str) -> None:
    await redis.delete(_keys(email, "")[0])
