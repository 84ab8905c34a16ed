"""Portal sign-in: check a password, start a session, find the session a cookie stands for,
choose the tenant it works in, end it. Every sign-in and sign-out is audited."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.models import AuditOutcome
from hub.audit.service import Actor
from hub.auth import mfa, tokens
from hub.auth import repository as auth_repository
from hub.auth.models import ROLE_SCOPES, Membership, User
from hub.auth.principal import Principal, member_principal
from hub.core.db import utcnow
from hub.core.errors import Invalid, NotFound
from hub.core.ids import TenantID
from hub.portal.models import PortalSession
from hub.settings import Settings
from hub.tenants.models import Tenant

# A session's cookie value: 32 random bytes (only its SHA-256 is stored).
COOKIE_BYTES = 32
# `last_seen_at` is written at most this often (reads must not all become writes).
SEEN_RESOLUTION = timedelta(seconds=60)
# What a wrong email or password always says (never which of the two was wrong).
WRONG_LOGIN = "The email or the password is wrong."
# A password hash verified when the email is unknown, so that both take as long.
_DUMMY_HASH: list[str] = []


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle: timedelta
    lifetime: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionLimits:
        return cls(
            idle=timedelta(minutes=settings.portal_idle_minutes),
            lifetime=timedelta(hours=settings.portal_session_hours),
        )


@dataclass(frozen=True, slots=True)
class Started:
    session: PortalSession
    cookie: str  # shown to the browser once, never stored


@dataclass(frozen=True, slots=True)
class Signed:
    """A live session with its user, and the principal it acts as in its tenant (None
    until a tenant is chosen, and for an operator's console)."""

    session: PortalSession
    user: User
    principal: Principal | None
    csrf: str
    has_two_step: bool = False
    # The key this session's one-time form tokens are signed with (see hub/portal/once.py).
    form_key: bytes = field(default=b"", repr=False)

    @property
    def console(self) -> Principal:
        """The user as the operator console sees them (no tenant, no scope)."""
        return Principal(
            user_id=self.user.id,
            email=self.user.email,
            scopes=frozenset(),
            is_operator=self.user.is_operator,
        )


def cookie_hash(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


def csrf_token(cookie: str) -> str:
    """The session's form token: derived from the cookie (which a page on another site can
    neither read nor compute it from), so nothing more is stored."""
    return hmac.new(cookie.encode(), b"ctm-hub portal csrf", hashlib.sha256).hexdigest()


def csrf_matches(cookie: str, offered: str | None) -> bool:
    return offered is not None and hmac.compare_digest(csrf_token(cookie), offered)


def form_key(cookie: str) -> bytes:
    """The key of the session's one-time form tokens: derived from the cookie, as the CSRF
    token is, but never shown (the CSRF token is on every page)."""
    return hmac.new(cookie.encode(), b"ctm-hub portal form tokens", hashlib.sha256).digest()


async def _verify(password_hash: str | None, password: str) -> bool:
    # Argon2 takes tens of milliseconds: off the event loop.
    return await asyncio.to_thread(tokens.verify_password, password_hash, password)


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(tokens.hash_password(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


async def check_password(session: AsyncSession, *, email: str, password: str) -> User | None:
    """The active user with this email and password, or None (after the same work either way)."""
    address = email.strip().lower()
    user = await session.scalar(select(User).where(User.email == address)) if address else None
    if user is None:
        await _verify(await asyncio.to_thread(_dummy_hash), password)
        return None
    if not await _verify(user.password_hash, password) or not user.is_active:
        return None
    return user


async def password_matches(user: User, password: str) -> bool:
    return bool(password) and await _verify(user.password_hash, password)


async def memberships_of(session: AsyncSession, user_id: UUID) -> list[tuple[Membership, Tenant]]:
    """The user's memberships in tenants still active, by tenant name."""
    rows = await session.execute(
        select(Membership, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user_id, Tenant.offboarded_at.is_(None))
        .order_by(Tenant.name)
    )
    return [(membership, tenant) for membership, tenant in rows]


async def start(
    session: AsyncSession,
    user: User,
    *,
    limits: SessionLimits,
    client_ip: str,
    user_agent: str,
    two_step: bool = False,
    now: datetime | None = None,
) -> Started:
    """A new session for a user whose password was checked. With one membership it works in
    that tenant at once; with several the user chooses."""
    now = now or utcnow()
    cookie = secrets.token_urlsafe(COOKIE_BYTES)
    memberships = await memberships_of(session, user.id)
    row = PortalSession(
        user_id=user.id,
        tenant_id=TenantID(memberships[0][1].id) if len(memberships) == 1 else None,
        token_hash=cookie_hash(cookie),
        expires_at=now + limits.lifetime,
        last_seen_at=now,
        client_ip=client_ip[:64],
        user_agent=user_agent[:200],
    )
    session.add(row)
    user.last_login_at = now
    await session.flush()
    await audit.record(
        session,
        actor=Actor.of_user(user),
        action="user.sign_in",
        tenant_id=None,
        target_type="portal_session",
        target_id=row.id,
        details={"two_step": two_step},
    )
    return Started(row, cookie)


async def record_failed_sign_in(
    session: AsyncSession, *, email: str, locked: bool, step: str = "password"
) -> None:
    """Audit a refused sign-in on the platform chain (the email as typed, never the password;
    the client's address comes from the request). Its target is the account of that email,
    when there is one, so an operator finds every attempt on an account by its id; the
    actor stays the portal (whoever typed it is not known)."""
    address = email.strip().lower()[:320]
    account = await session.scalar(select(User.id).where(User.email == address))
    await audit.record(
        session,
        actor=Actor.system("portal"),
        action="user.sign_in",
        tenant_id=None,
        target_type="user",
        target_id=account,
        outcome=AuditOutcome.DENIED,
        details={"email": address, "locked": locked, "step": step},
    )


async def authenticate(
    session: AsyncSession, cookie: str, *, limits: SessionLimits, now: datetime | None = None
) -> Signed | None:
    """The live session this cookie stands for, or None: unknown, ended, idle too long, past
    its lifetime, or its user deactivated. The tenant's membership is read on every request,
    so a removed member or a changed role takes effect at once."""
    if not cookie or len(cookie) > 128:
        return None
    now = now or utcnow()
    row = (
        await session.execute(
            select(PortalSession, User)
            .join(User, User.id == PortalSession.user_id)
            .where(PortalSession.token_hash == cookie_hash(cookie))
        )
    ).one_or_none()
    if row is None:
        return None
    found, user = row
    if found.ended_at is not None:
        return None
    if not user.is_active or now >= found.expires_at or now - found.last_seen_at > limits.idle:
        found.ended_at = now
        return None
    if now - found.last_seen_at > SEEN_RESOLUTION:
        found.last_seen_at = now
    principal = await _principal(session, found, user)
    has_two_step = await mfa.is_enabled(session, user.id)
    return Signed(found, user, principal, csrf_token(cookie), has_two_step, form_key(cookie))


async def _principal(session: AsyncSession, found: PortalSession, user: User) -> Principal | None:
    if found.tenant_id is None:
        return None
    membership = await auth_repository.find_member_by_user(session, found.tenant_id, user.id)
    tenant = await session.get(Tenant, found.tenant_id)
    if membership is None or tenant is None or tenant.offboarded_at is not None:
        found.tenant_id = None  # removed from it meanwhile: choose again
        return None
    return member_principal(
        user_id=user.id,
        email=user.email,
        tenant_id=found.tenant_id,
        role=membership.role,
        scopes=ROLE_SCOPES[membership.role],
        is_operator=user.is_operator,
    )


async def _row(session: AsyncSession, signed: Signed) -> PortalSession:
    """The signed-in session's row in this transaction (the middleware read it in its own)."""
    row = await session.get(PortalSession, signed.session.id)
    if row is None:
        raise NotFound("portal_session", signed.session.id)
    return row


async def choose_tenant(session: AsyncSession, signed: Signed, *, tenant_id: UUID) -> Tenant:
    """Work in another of the user's tenants (404 for one they are not a member of)."""
    for _, tenant in await memberships_of(session, signed.user.id):
        if tenant.id == tenant_id:
            (await _row(session, signed)).tenant_id = TenantID(tenant.id)
            await session.flush()
            return tenant
    raise NotFound("tenant", tenant_id)


async def end(session: AsyncSession, signed: Signed, *, now: datetime | None = None) -> None:
    """Sign out: the session ends, and its cookie opens nothing any more."""
    (await _row(session, signed)).ended_at = now or utcnow()
    await audit.record(
        session,
        actor=Actor.of_user(signed.user),
        action="user.sign_out",
        tenant_id=None,
        target_type="portal_session",
        target_id=signed.session.id,
        details={},
    )


async def end_all(
    session: AsyncSession, user_id: UUID, *, keep: UUID | None = None, now: datetime | None = None
) -> int:
    """End every live session of a user but `keep` (deactivated, a new password, signing
    out everywhere else); returns how many ended."""
    statement = update(PortalSession).where(
        PortalSession.user_id == user_id, PortalSession.ended_at.is_(None)
    )
    if keep is not None:
        statement = statement.where(PortalSession.id != keep)
    result = await session.execute(
        statement.values(ended_at=now or utcnow()).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of the portal or console only (never another
    site: `//evil.example` and `/\\evil` are refused)."""
    if (
        target
        and target.startswith(("/portal", "/console"))
        and not target.startswith(("//", "/\\"))
        and "\\" not in target
        and all(ord(c) > 31 for c in target)
    ):
        return target
    return "/portal/"


def check_new_password(password: str, repeated: str) -> None:
    if len(password) < 12:
        raise Invalid("password", "must be at least 12 characters")
    if password != repeated:
        raise Invalid("repeated", "the two passwords differ")
