"""Users, memberships and API tokens: create, verify, revoke."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.models import AuditOutcome
from hub.audit.service import Actor
from hub.auth import repository, tokens
from hub.auth.models import ROLE_SCOPES, ApiToken, Membership, Role, Scope, User
from hub.auth.principal import Principal, member_principal
from hub.core.db import utcnow
from hub.core.errors import Conflict, Forbidden, Invalid, NotFound
from hub.core.ids import TenantID
from hub.core.logging import redact_value
from hub.tenants import service as tenants

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 12
# Writing last_used_at on every request would turn reads into writes; a coarse stamp is enough.
LAST_USED_RESOLUTION = timedelta(minutes=5)
MAX_TOKEN_LIFETIME = timedelta(days=366)
DURATION_PATTERN = re.compile(r"^(\d{1,4})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# A new member's generated one-time password: 16 URL-safe characters.
GENERATED_PASSWORD_BYTES = 12
MEMBERSHIP_ROLE_CHANGED = "membership.role_changed"
USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an action name
USER_PASSWORD_CHANGE_REFUSED = "user.password_change_refused"  # noqa: S105 - an action name
USER_SESSIONS_ENDED = "user.sessions_ended"


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_PATTERN.fullmatch(email) or len(email) > 320:
        raise Invalid("email", "is not an email address")
    return email


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    scopes = set()
    for value in (v.strip() for v in values):
        if not value:
            continue
        try:
            scopes.add(Scope(value))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise Invalid("scopes", f"unknown scope {value!r}; known: {known}") from None
    if not scopes:
        raise Invalid("scopes", "name at least one scope")
    return frozenset(scopes)


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` → a timedelta."""
    match = DURATION_PATTERN.fullmatch(text.strip())
    if match is None:
        raise Invalid("expires_in", "use a number and a unit: 90m, 12h, 30d or 2w")
    amount, unit = int(match.group(1)), _UNITS[match.group(2)]
    duration = timedelta(**{unit: amount})
    if duration <= timedelta(0) or duration > MAX_TOKEN_LIFETIME:
        raise Invalid("expires_in", "must be more than 0 and at most 366 days")
    return duration


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == normalise_email(email)))


async def get_user(session: AsyncSession, user_id: UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("user", user_id)
    return user


async def get_user_by_email(session: AsyncSession, email: str) -> User:
    user = await find_user_by_email(session, email)
    if user is None:
        raise NotFound("user", email)
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    display_name: str = "",
    is_operator: bool = False,
    actor: Actor | None = None,
    must_change_password: bool = False,
) -> User:
    """A new user; audited on the platform chain (a new operator may act across tenants).
    `must_change_password` when someone else chose the password (one generated to hand
    over): the user sets their own at their first sign-in to the portal."""
    email = normalise_email(email)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if await find_user_by_email(session, email) is not None:
        raise Conflict(f"a user with email {email} already exists", field="email")
    user = User(
        email=email,
        display_name=display_name.strip(),
        password_hash=tokens.hash_password(password),
        is_operator=is_operator,
        must_change_password=must_change_password,
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        actor=actor or Actor.system(),
        action=audit.USER_CREATED,
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={"email": email, "is_operator": is_operator},
    )
    return user


async def add_member(
    session: AsyncSession,
    *,
    tenant_id: TenantID,
    user: User,
    role: Role,
    actor: Actor | None = None,
) -> Membership:
    await tenants.require_active(session, tenant_id)
    if await repository.find_member_by_user(session, tenant_id, user.id) is not None:
        raise Conflict(f"{user.email} is already a member of this tenant", field="email")
    membership = Membership(tenant_id=tenant_id, user_id=user.id, role=role)
    session.add(membership)
    await session.flush()
    await audit.record(
        session,
        actor=actor or Actor.system(),
        action=audit.MEMBERSHIP_ADDED,
        tenant_id=tenant_id,
        target_type="membership",
        target_id=membership.id,
        details={"user_id": str(user.id), "role": role.value},
    )
    return membership


async def remove_member(
    session: AsyncSession, actor: Principal, *, membership_id: UUID, now: datetime | None = None
) -> Membership:
    """A tenant admin removes a member: their tokens in the tenant are revoked, and keys they
    are responsible party for need replacing (CMS keys never pass to someone else)."""
    from hub.keys.service import handle_member_left  # keys build on auth, not the reverse

    membership = await repository.get_member(session, actor.tenant, membership_id)
    if membership.user_id == actor.user_id:
        raise Conflict("a tenant admin cannot remove themselves; ask another admin")
    now = now or utcnow()
    for token in await repository.list_tokens(session, actor.tenant, user_id=membership.user_id):
        if token.revoked_at is None:
            token.revoked_at = now
    who = Actor.of_principal(actor)
    await audit.record(
        session,
        actor=who,
        action="membership.removed",
        tenant_id=actor.tenant,
        target_type="membership",
        target_id=membership.id,
        details={"user_id": str(membership.user_id), "role": membership.role.value},
    )
    await handle_member_left(session, tenant_id=actor.tenant, user_id=membership.user_id, actor=who)
    await session.delete(membership)
    await session.flush()
    return membership


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


async def issue_token(
    session: AsyncSession,
    *,
    user: User,
    tenant_id: TenantID | None,
    scopes: frozenset[Scope],
    name: str,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
    actor: Actor | None = None,
    api_key_id: UUID | None = None,
) -> IssuedToken:
    """Mint a token for `user` in `tenant_id` (or a platform token for an operator);
    `api_key_id` binds it to one HPMS key (revoked with the key; see hub/gateway).

    Audited (without the token) as done by `actor`, by default the user it is for."""
    if tenant_id is None:
        if not user.is_operator:
            raise Forbidden("only platform operators hold tokens outside a tenant")
    else:
        await tenants.require_active(session, tenant_id)
        membership = await repository.find_member_by_user(session, tenant_id, user.id)
        if membership is None:
            raise Invalid("user", f"{user.email} is not a member of this tenant")
        beyond = scopes - ROLE_SCOPES[membership.role]
        if beyond:
            names = ", ".join(sorted(s.value for s in beyond))
            raise Invalid("scopes", f"role {membership.role.value} may not hold: {names}")
    name = name.strip() or "token"
    if len(name) > 200:
        raise Invalid("name", "must be at most 200 characters")
    plaintext = tokens.new_token()
    issued_at = now or utcnow()
    token = ApiToken(
        tenant_id=tenant_id,
        user_id=user.id,
        name=name,
        prefix=tokens.display_prefix(plaintext),
        token_hash=tokens.token_hash(plaintext),
        scopes=sorted(s.value for s in scopes),
        expires_at=issued_at + expires_in if expires_in else None,
        api_key_id=api_key_id,
    )
    session.add(token)
    await session.flush()
    details = {
        "user_id": str(user.id),
        "name": redact_value(name),
        "prefix": token.prefix,
        "scopes": list(token.scopes),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
    }
    if api_key_id is not None:
        details["key"] = str(api_key_id)
    await audit.record(
        session,
        actor=actor or Actor.of_user(user),
        action=audit.TOKEN_ISSUED,
        tenant_id=tenant_id,
        target_type="api_token",
        target_id=token.id,
        details=details,
    )
    return IssuedToken(token=token, plaintext=plaintext)


async def issue_caller_token(
    session: AsyncSession,
    actor: Principal,
    *,
    scopes: frozenset[Scope],
    name: str,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
    api_key_id: UUID | None = None,
) -> IssuedToken:
    """Mint a token for the caller through the API. A token never mints a stronger one:
    the new token holds no scope the calling token lacks, and ends no later than it does
    (a narrow token handed to a downstream system must not become an admin token); a token
    bound to an HPMS key mints only tokens bound to the same key (`api_key_id`)."""
    beyond = scopes - actor.scopes
    if beyond:
        names = ", ".join(sorted(s.value for s in beyond))
        raise Invalid("scopes", f"this token does not hold, so may not grant: {names}")
    now = now or utcnow()
    if actor.token_id is not None:
        caller = await repository.get_token(session, actor.tenant, actor.token_id)
        if caller.api_key_id is not None and caller.api_key_id != api_key_id:
            # An unbound token would outlive the key's compromise, and reach other keys.
            raise Forbidden(
                f"this token is bound to key {caller.api_key_id}: it issues only tokens bound "
                f"to that key (POST /api/v1/keys/{caller.api_key_id}/tokens)"
            )
        ends = caller.expires_at
        if ends is not None and (expires_in is None or now + expires_in > ends):
            raise Invalid(
                "expires_in", f"must end by the calling token's own expiry ({ends.isoformat()})"
            )
    user = await get_user(session, actor.user_id)
    return await issue_token(
        session, user=user, tenant_id=actor.tenant, scopes=scopes, name=name,
        expires_in=expires_in, now=now, api_key_id=api_key_id,
    )  # fmt: skip


def manages_tokens(actor: Principal) -> bool:
    """Whether the caller may see and revoke other members' tokens: a tenant admin calling
    with a token that holds `tenant:admin` (an admin's narrow token acts as its owner only)."""
    return actor.is_tenant_admin and actor.has_scope(Scope.TENANT_ADMIN)


async def authenticate(
    session: AsyncSession, raw: str, *, now: datetime | None = None
) -> Principal | None:
    """The principal a bearer token stands for, or None (unknown, expired, revoked, orphaned).

    Scopes are cut to what the user's current role allows, so a demotion takes effect on
    tokens already issued.
    """
    if not tokens.is_well_formed(raw):
        return None
    now = now or utcnow()
    row = (
        await session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == tokens.token_hash(raw))
        )
    ).one_or_none()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or not user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    scopes = frozenset(Scope(s) for s in token.scopes if s in Scope._value2member_map_)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
    if token.tenant_id is None:
        return Principal(
            user_id=user.id,
            email=user.email,
            scopes=scopes,
            is_operator=user.is_operator,
            token_id=token.id,
        )
    membership = await repository.find_member_by_user(session, token.tenant_id, user.id)
    if membership is None:
        return None
    return member_principal(
        user_id=user.id,
        email=user.email,
        tenant_id=token.tenant_id,
        role=membership.role,
        scopes=scopes & ROLE_SCOPES[membership.role],
        token_id=token.id,
        is_operator=user.is_operator,
    )


async def revoke_token(
    session: AsyncSession, actor: Principal, *, token_id: UUID, now: datetime | None = None
) -> ApiToken:
    """Revoke a token: one's own, or any of the tenant's as a tenant admin."""
    # Fetch before the permission check so a 403 never reveals another tenant's ids.
    token = await repository.get_token(session, actor.tenant, token_id)
    if token.user_id != actor.user_id and not manages_tokens(actor):
        raise Forbidden("only the token's owner or a tenant admin may revoke it")
    already_revoked = token.revoked_at is not None
    if token.revoked_at is None:
        token.revoked_at = now or utcnow()
    await audit.record(
        session,
        actor=Actor.of_principal(actor),
        action=audit.TOKEN_REVOKED,
        tenant_id=actor.tenant,
        target_type="api_token",
        target_id=token.id,
        details={"prefix": token.prefix, "already_revoked": already_revoked},
    )
    return token


# Shared by the API and the portal ----------------------------------------------------------


async def list_visible_tokens(session: AsyncSession, actor: Principal) -> Sequence[ApiToken]:
    """The tokens the caller may see: every token of the tenant for a tenant admin acting
    with `tenant:admin`, else their own."""
    owner = None if manages_tokens(actor) else actor.user_id
    return await repository.list_tokens(session, actor.tenant, user_id=owner)


async def issue_session_token(
    session: AsyncSession,
    actor: Principal,
    *,
    scopes: frozenset[Scope],
    name: str,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """Mint a token for a member signed in to the portal: a sign-in session has no token to
    bound the new one, so its limit is what the member's role holds (checked again by
    `issue_token` against the membership as it is now)."""
    if actor.token_id is not None:
        raise Forbidden("a token mints tokens through the API, within its own scopes")
    beyond = scopes - actor.scopes
    if beyond:
        names = ", ".join(sorted(s.value for s in beyond))
        raise Invalid("scopes", f"your role may not grant: {names}")
    user = await get_user(session, actor.user_id)
    return await issue_token(
        session, user=user, tenant_id=actor.tenant, scopes=scopes, name=name,
        expires_in=expires_in, now=now,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class NewMember:
    membership: Membership
    user: User
    password: str | None  # a new user's one-time password, shown once; None for an existing user


async def add_member_by_email(
    session: AsyncSession, actor: Principal, *, email: str, role: Role, display_name: str = ""
) -> NewMember:
    """A tenant admin adds someone: the user with this email if there is one, else a new user
    with a generated password that the admin hands over once (it is never shown again)."""
    who = Actor.of_principal(actor)
    user = await find_user_by_email(session, email)
    password = None
    if user is None:
        password = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        user = await create_user(
            session, email=email, password=password, display_name=display_name, actor=who,
            must_change_password=True,
        )  # fmt: skip
    membership = await add_member(session, tenant_id=actor.tenant, user=user, role=role, actor=who)
    return NewMember(membership=membership, user=user, password=password)


async def change_role(
    session: AsyncSession, actor: Principal, *, membership_id: UUID, role: Role
) -> Membership:
    """A tenant admin changes a member's role; the tenant always keeps one admin. Tokens
    already issued are cut to the new role's scopes when they are next used."""
    membership = await repository.get_member(session, actor.tenant, membership_id)
    before = membership.role
    if before is role:
        return membership
    if before is Role.ADMIN and await repository.count_admins(session, actor.tenant) <= 1:
        raise Conflict(
            "the tenant's last admin keeps that role; make another admin first", field="role"
        )
    membership.role = role
    await session.flush()
    await audit.record(
        session,
        actor=Actor.of_principal(actor),
        action=MEMBERSHIP_ROLE_CHANGED,
        tenant_id=actor.tenant,
        target_type="membership",
        target_id=membership.id,
        details={"user_id": str(membership.user_id), "from": before.value, "to": role.value},
    )
    return membership


async def change_password(
    session: AsyncSession,
    user: User,
    *,
    current: str,
    new: str,
    keep_session: UUID | None = None,
    now: datetime | None = None,
) -> int:
    """A user changes their own password (the current one checked first); every other portal
    session of theirs ends, `keep_session` (the one they are using) stays, and a password
    someone else chose no longer needs changing. Audited on the platform chain, as sign-ins
    are; returns how many sessions ended."""
    if not await asyncio.to_thread(tokens.verify_password, user.password_hash, current):
        raise Invalid("current", "is not your current password")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise Invalid("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if new == current:
        raise Invalid("password", "must differ from the current one")
    user.password_hash = await asyncio.to_thread(tokens.hash_password, new)
    required = user.must_change_password
    user.must_change_password = False
    ended = await end_other_sessions(
        session, user, keep_session=keep_session, now=now, audited=False
    )
    await audit.record(
        session,
        actor=Actor.of_user(user),
        action=USER_PASSWORD_CHANGED,
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={"sessions_ended": ended, "required": required},
    )
    return ended


async def record_refused_password_change(
    session: AsyncSession, user: User, *, locked: bool
) -> None:
    """Audit a change of password refused for a wrong current password, or because the
    account is locked after too many (never a password)."""
    await audit.record(
        session,
        actor=Actor.of_user(user),
        action=USER_PASSWORD_CHANGE_REFUSED,
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        outcome=AuditOutcome.DENIED,
        details={"locked": locked},
    )


async def end_other_sessions(
    session: AsyncSession,
    user: User,
    *,
    keep_session: UUID | None,
    now: datetime | None = None,
    audited: bool = True,
) -> int:
    """End every live portal session of the user but `keep_session` ("sign out everywhere
    else"); returns how many ended."""
    from hub.portal.service import end_all  # the portal builds on auth

    ended = await end_all(session, user.id, keep=keep_session, now=now)
    if audited:
        await audit.record(
            session,
            actor=Actor.of_user(user),
            action=USER_SESSIONS_ENDED,
            tenant_id=None,
            target_type="user",
            target_id=user.id,
            details={"sessions_ended": ended},
        )
    return ended


async def list_live_sessions(
    session: AsyncSession, user_id: UUID, *, idle: timedelta, now: datetime | None = None
) -> Sequence[Any]:
    """The user's portal sessions that still open pages, most recently used first."""
    from hub.portal.models import PortalSession  # the portal builds on auth

    now = now or utcnow()
    statement = (
        select(PortalSession)
        .where(
            PortalSession.user_id == user_id,
            PortalSession.ended_at.is_(None),
            PortalSession.expires_at > now,
            PortalSession.last_seen_at >= now - idle,
        )
        .order_by(PortalSession.last_seen_at.desc())
    )
    return (await session.scalars(statement)).all()


# Operators manage users (the console and `hub users`) --------------------------------------

USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an action name
USER_DEACTIVATED = "user.deactivated"
USER_REACTIVATED = "user.reactivated"
# A search lists at most this many users (an operator narrows it by email).
USER_SEARCH_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PasswordReset:
    password: str  # shown once to the operator, never stored
    sessions_ended: int


@dataclass(frozen=True, slots=True)
class UserMembership:
    tenant_slug: str
    tenant_name: str
    tenant_active: bool
    role: Role


@dataclass(frozen=True, slots=True)
class UserOverview:
    """What an operator sees of a user: who, where, and whether they can sign in; never a
    password hash, a token or a two-step secret."""

    user: User
    memberships: list[UserMembership]
    has_two_step: bool
    live_sessions: int


def _not_oneself(user: User, actor: Actor, refusal: str) -> None:
    if actor.id is not None and actor.id == user.id:
        raise Conflict(refusal)


async def reset_password(
    session: AsyncSession,
    user: User,
    *,
    actor: Actor,
    password: str | None = None,
    now: datetime | None = None,
) -> PasswordReset:
    """An operator sets a new password for someone who forgot theirs: `password`, or one
    generated to hand over once, which the user must change at their next sign-in (a
    password given is taken as the user's own: automation, or the user at the operator's
    side). Every portal session of the user ends (whoever holds one is signed out);
    audited on the platform chain, without the password."""
    from hub.portal.service import end_all  # the portal builds on auth

    _not_oneself(user, actor, "change your own password on your account page")
    generated = password is None
    password = tokens.generate_password() if password is None else password
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = await asyncio.to_thread(tokens.hash_password, password)
    user.must_change_password = generated
    ended = await end_all(session, user.id, now=now)
    await audit.record(
        session,
        actor=actor,
        action=USER_PASSWORD_RESET,
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={"generated": generated, "sessions_ended": ended},
    )
    return PasswordReset(password=password, sessions_ended=ended)


async def count_active_operators(session: AsyncSession) -> int:
    statement = select(func.count()).where(User.is_operator, User.is_active)
    return int(await session.scalar(statement) or 0)


async def deactivate_user(
    session: AsyncSession, user: User, *, actor: Actor, now: datetime | None = None
) -> int | None:
    """Someone left the plan or the vendor: they sign in no more, their portal sessions end
    and their API tokens stop working (kept, so that reactivating restores them; memberships
    stay too); keys they are responsible party of need replacing in every tenant. Never
    oneself, never the last active operator. Returns the sessions ended, or None when the
    user was already inactive (nothing changed, nothing audited)."""
    from hub.keys import service as keys  # keys build on auth, not the reverse
    from hub.portal.service import end_all  # the portal builds on auth

    _not_oneself(user, actor, "you cannot deactivate yourself; ask another operator")
    if not user.is_active:
        return None
    if user.is_operator and await count_active_operators(session) <= 1:
        raise Conflict(f"{user.email} is the last active operator; make another operator first")
    user.is_active = False
    ended = await end_all(session, user.id, now=now)
    await audit.record(
        session,
        actor=actor,
        action=USER_DEACTIVATED,
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={"email": user.email, "sessions_ended": ended},
    )
    # In every tenant they belong to, as if they had left it: keys they are responsible
    # party of need replacing (`key.orphaned`: audited, alerted, sent to webhooks), since
    # nobody else may ever act as them; they stop being anyone's designee, and their
    # key-bound tokens as designee are revoked. Memberships and other tokens stay.
    for membership in (
        await session.scalars(select(Membership).where(Membership.user_id == user.id))
    ).all():
        await keys.handle_member_left(
            session, tenant_id=TenantID(membership.tenant_id), user_id=user.id, actor=actor,
            reason=keys.USER_DEACTIVATED,
        )  # fmt: skip
    return ended


async def reactivate_user(session: AsyncSession, user: User, *, actor: Actor) -> bool:
    """Let a deactivated user sign in again (their memberships and unexpired tokens are as
    they were; keys orphaned by the deactivation stay so until they rotate or replace
    them, as after leaving); False when they were active already."""
    if user.is_active:
        return False
    user.is_active = True
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action=USER_REACTIVATED,
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={"email": user.email},
    )
    return True


async def reset_two_step(session: AsyncSession, user: User, *, actor: Actor) -> bool:
    """Turn off someone's two-step sign-in (a lost phone): they sign in with their password
    and enrol again. False when it was not on. An operator's own goes through their account
    page, which asks for a code."""
    from hub.auth import mfa

    _not_oneself(user, actor, "turn off your own two-step sign-in on your account page")
    return await mfa.disable(session, user, actor=actor)


async def list_users(
    session: AsyncSession,
    *,
    tenant_id: TenantID | None = None,
    email: str = "",
    limit: int = USER_SEARCH_LIMIT,
) -> Sequence[User]:
    """Users by email: those whose email contains `email`, members of `tenant_id` only."""
    statement = select(User).order_by(User.email).limit(limit)
    if tenant_id is not None:
        statement = statement.join(Membership, Membership.user_id == User.id).where(
            Membership.tenant_id == tenant_id
        )
    needle = email.strip().lower()
    if needle:
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(User.email.like(f"%{escaped}%", escape="\\"))
    return (await session.scalars(statement)).all()


async def overview_of(
    session: AsyncSession, user: User, *, idle: timedelta, now: datetime | None = None
) -> UserOverview:
    """A user as the console and `hub users list` show them."""
    from hub.auth import mfa
    from hub.tenants.models import Tenant

    rows = await session.execute(
        select(Membership.role, Tenant)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user.id)
        .order_by(Tenant.slug)
    )
    memberships = [
        UserMembership(tenant.slug, tenant.name, tenant.is_active, role) for role, tenant in rows
    ]
    live = await list_live_sessions(session, user.id, idle=idle, now=now)
    return UserOverview(
        user=user,
        memberships=memberships,
        has_two_step=await mfa.is_enabled(session, user.id),
        live_sessions=len(live),
    )
