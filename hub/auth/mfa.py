"""Two-step sign-in: a TOTP secret per user (RFC 6238, 30-second steps, 6 digits, as every
authenticator app reads it), wrapped by the master key ring with the user's id bound as
context. Enrolling shows the secret once; a code is accepted once, within a step either
side of now; turning it off is audited, by the user or by an operator (a lost phone)."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import pyotp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth.models import User, UserTotp
from hub.core.crypto import CryptoError, crypto_of
from hub.core.crypto.keyring import WrapKeyRejected, WrapKeyUnknown, WrappedKey
from hub.core.db import utcnow
from hub.core.errors import Conflict, Invalid

ISSUER = "CTM Hub"
STEP_SECONDS = 30
CODE = re.compile(r"^\d{6}$")


class TotpKeyUnavailable(CryptoError):
    """The ring cannot unwrap a user's two-step secret (its master key is gone or wrong)."""

    def __init__(self, *, master_version: str, user_id: UUID, missing: bool) -> None:
        problem = "is not in the key ring" if missing else "does not unwrap"
        super().__init__(
            f"master key {master_version!r} {problem}: the two-step secret of user {user_id} "
            "(add the key back to HUB_MASTER_KEYS, or run `hub master-key rotate` first)"
        )


@dataclass(frozen=True, slots=True)
class Enrollment:
    secret: str  # base32, shown to the user once
    uri: str  # otpauth://…, what the QR code holds


def _context(user_id: UUID) -> bytes:
    return b"hub.user-totp|%b" % user_id.bytes


async def _secret(session: AsyncSession, row: UserTotp) -> str:
    provider = crypto_of(session).provider
    try:
        plain = await provider.unwrap(
            WrappedKey(row.master_key_version, row.wrapped_secret), context=_context(row.user_id)
        )
    except (WrapKeyUnknown, WrapKeyRejected) as error:
        raise TotpKeyUnavailable(
            master_version=row.master_key_version,
            user_id=row.user_id,
            missing=isinstance(error, WrapKeyUnknown),
        ) from None
    return plain.decode()


async def find(session: AsyncSession, user_id: UUID) -> UserTotp | None:
    return await session.scalar(select(UserTotp).where(UserTotp.user_id == user_id))


async def is_enabled(session: AsyncSession, user_id: UUID) -> bool:
    row = await find(session, user_id)
    return row is not None and row.enabled_at is not None


async def begin(session: AsyncSession, user: User) -> Enrollment:
    """A new secret for the user to add to their authenticator (replacing an unconfirmed
    one). It counts only once `confirm` has seen a code from it."""
    row = await find(session, user.id)
    if row is not None and row.enabled_at is not None:
        raise Conflict("two-step sign-in is already on: turn it off first to start again")
    secret = pyotp.random_base32()  # 160 bits
    wrapped = await crypto_of(session).provider.wrap(secret.encode(), context=_context(user.id))
    if row is None:
        row = UserTotp(user_id=user.id, last_step=0)
        session.add(row)
    row.wrapped_secret, row.master_key_version = wrapped.blob, wrapped.master_version
    await session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrollment(secret, uri)


async def pending(session: AsyncSession, user: User) -> Enrollment | None:
    """The enrolment waiting for its first code (shown again after a wrong one), if any."""
    row = await find(session, user.id)
    if row is None or row.enabled_at is not None:
        return None
    secret = await _secret(session, row)
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Enrollment(secret, uri)


def _step_of(secret: str, code: str, now: datetime) -> int | None:
    """The step (of those either side of now) whose code this is, or None."""
    code = code.replace(" ", "").strip()
    if not CODE.fullmatch(code):
        return None
    totp, step = pyotp.TOTP(secret), int(now.timestamp()) // STEP_SECONDS
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            return candidate
    return None


async def confirm(
    session: AsyncSession, user: User, code: str, *, now: datetime | None = None
) -> None:
    """Turn two-step sign-in on, once the user shows a code from the new secret."""
    row = await find(session, user.id)
    if row is None or row.enabled_at is not None:
        raise Conflict("there is no enrolment waiting: start again")
    now = now or utcnow()
    step = _step_of(await _secret(session, row), code, now)
    if step is None:
        raise Invalid("code", "is not the app's current code: check the phone's clock, try again")
    row.enabled_at, row.last_step = now, step
    await audit.record(
        session,
        actor=Actor.of_user(user),
        action="user.two_step_enabled",
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={},
    )


async def verify(
    session: AsyncSession, user_id: UUID, code: str, *, now: datetime | None = None
) -> bool:
    """Whether `code` is the user's current code, not taken before (a code seen once, by
    someone looking over a shoulder, opens nothing a second time)."""
    row = await find(session, user_id)
    if row is None or row.enabled_at is None:
        return False
    step = _step_of(await _secret(session, row), code, now or utcnow())
    if step is None or step <= row.last_step:
        return False
    row.last_step = step
    return True


async def disable(session: AsyncSession, user: User, *, actor: Actor) -> bool:
    """Turn two-step sign-in off (the user, or an operator for someone who lost their
    phone); False when it was not on."""
    row = await find(session, user.id)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="user.two_step_disabled",
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={"by_self": actor.id == user.id},
    )
    return True


# The master key ring: two-step secrets rotate and are checked with the tenant keys ----------


async def count_to_rewrap(session: AsyncSession) -> dict[str, int]:
    """Two-step secrets not under the active master key, by version; refuses (before any
    write) when one is under a version the ring lacks."""
    provider = crypto_of(session).provider
    rows = await session.execute(
        select(UserTotp.master_key_version, func.count())
        .where(UserTotp.master_key_version != provider.active_version)
        .group_by(UserTotp.master_key_version)
    )
    counts = {str(version): int(count) for version, count in rows}
    for version in counts:
        if not provider.has_version(version):
            row = await session.scalar(
                select(UserTotp).where(UserTotp.master_key_version == version).limit(1)
            )
            assert row is not None
            raise TotpKeyUnavailable(master_version=version, user_id=row.user_id, missing=True)
    return counts


async def rewrap_all(session: AsyncSession) -> int:
    """Re-wrap every two-step secret under the active master key (few: one per user)."""
    provider = crypto_of(session).provider
    rows = (
        await session.scalars(
            select(UserTotp)
            .where(UserTotp.master_key_version != provider.active_version)
            .with_for_update()
        )
    ).all()
    for row in rows:
        secret = await _secret(session, row)
        wrapped = await provider.wrap(secret.encode(), context=_context(row.user_id))
        row.wrapped_secret, row.master_key_version = wrapped.blob, wrapped.master_version
    await session.flush()
    return len(rows)


async def check_ring(session: AsyncSession) -> None:
    """At start: each master key version two-step secrets are under must unwrap one."""
    versions = await session.scalars(select(UserTotp.master_key_version).distinct())
    for version in versions.all():
        row = await session.scalar(
            select(UserTotp).where(UserTotp.master_key_version == version).limit(1)
        )
        if row is not None:
            await _secret(session, row)
