"""The step between a right password and a session, for a user with two-step sign-in: a
random cookie whose SHA-256 names a Redis entry (the user, where to go next, the codes
tried), for five minutes and five codes at most."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID

TTL_SECONDS = 5 * 60
MAX_CODES = 5
COOKIE = "hub_sign_in_step"


def _key(cookie: str) -> str:
    return "hub:portal:sign-in-step:" + hashlib.sha256(cookie.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Pending:
    user_id: UUID
    next: str
    tries: int


async def start(redis: Any, *, user_id: UUID, next: str) -> str:
    """A new pending sign-in; the cookie value to set (only its hash is kept)."""
    cookie = secrets.token_urlsafe(32)
    document = json.dumps({"user_id": str(user_id), "next": next, "tries": 0})
    await redis.set(_key(cookie), document, ex=TTL_SECONDS)
    return cookie


async def find(redis: Any, cookie: str) -> Pending | None:
    if not cookie or len(cookie) > 128:
        return None
    raw = await redis.get(_key(cookie))
    if raw is None:
        return None
    document = json.loads(raw)
    return Pending(UUID(document["user_id"]), document["next"], int(document["tries"]))


async def missed(redis: Any, cookie: str, pending: Pending) -> bool:
    """Count a wrong code; True when that was the last one allowed (the step is over)."""
    if pending.tries + 1 >= MAX_CODES:
        await redis.delete(_key(cookie))
        return True
    document = json.dumps(
        {"user_id": str(pending.user_id), "next": pending.next, "tries": pending.tries + 1}
    )
    await redis.set(_key(cookie), document, keepttl=True)
    return False


async def finish(redis: Any, cookie: str) -> None:
    await redis.delete(_key(cookie))
