"""The auth pages of the portal: the tenant's members, API tokens, and one's own account."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import repository, service
from hub.auth.models import ROLE_SCOPES, Role, Scope, User
from hub.core.errors import Conflict, Invalid, NotFound
from hub.portal import once, throttle
from hub.portal.service import SessionLimits, Signed, check_new_password, safe_next
from hub.portal.web import Access, go, page, principal_of, render, signed_of
from hub.settings import Settings

# What the pages say after an action that redirects (`?done=…`): fixed words, never text
# taken from the address.
DONE = {
    "role": "The member's role was changed.",
    "removed": "The member was removed; their tokens were revoked.",
    "revoked": "The token was revoked.",
    "password": "Your password was changed; your other sessions were signed out.",
    "signed-out": "Your other sessions were signed out.",
}
EXPIRIES = (("30d", "30 days"), ("90d", "90 days"), ("7d", "7 days"), ("366d", "a year"))
NEVER = "never"


def _field(error: Invalid | Conflict) -> str:
    return error.field or ""


def _done(done: str) -> dict[str, Any]:
    return {"flash": DONE[done], "flash_kind": "ok"} if done in DONE else {}


# Members ---------------------------------------------------------------------------------


class AddMemberForm(msgspec.Struct):
    email: str = ""
    display_name: str = ""
    role: str = ""


class RoleForm(msgspec.Struct):
    role: str = ""


async def _member_made(session: AsyncSession, signed: Signed, user_id: UUID) -> once.Made:
    member = await repository.find_member_by_user(session, once.tenant_of(signed), user_id)
    if member is None:
        raise NotFound("membership", user_id)
    return once.Made(member.user.email, "/portal/members")


ADD_MEMBER = once.OnceForm(
    "members.add",
    made="the member {label} was added",
    shown_once="A new user's one-time password",
    lost="if you did not copy it, ask an operator to reset their password",
    find=_member_made,
)


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise Invalid("role", f"must be one of {allowed}") from None


async def _members_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    *,
    status_code: int = 200,
    form: AddMemberForm | None = None,
    errors: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    principal = principal_of(request)
    members = await repository.list_members(db_session, principal.tenant)
    return await render(
        request, db_session, "auth/members.html", title="Members", status_code=status_code,
        members=members, roles=list(Role), me=principal.user_id,
        form=form or AddMemberForm(role=Role.VIEWER.value), errors=errors or {}, **context,
    )  # fmt: skip


@get("/members", opt=page(Scope.TENANT_ADMIN))
async def members_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    done: FromQuery[str] = "",
) -> Template:
    return await _members_page(request, db_session, **_done(done))


@post("/members", opt=page(Scope.TENANT_ADMIN, acts_once=ADD_MEMBER), status_code=200)
async def add_member(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[AddMemberForm],
) -> Template:
    """Add an existing user by email, or make a new user whose one-time password is shown on
    this answer only."""
    principal = principal_of(request)
    try:
        added = await service.add_member_by_email(
            db_session, principal, email=data.email, role=_role(data.role),
            display_name=data.display_name,
        )  # fmt: skip
    except (Invalid, Conflict) as error:
        return await _members_page(
            request, db_session, status_code=400 if isinstance(error, Invalid) else 409,
            form=data, errors={_field(error): error.detail},
        )  # fmt: skip
    once.record(request, added.user.id, shown=added.password is not None)
    flash = f"{added.user.email} was added as {added.membership.role.value}."
    return await _members_page(
        request, db_session, flash=flash, flash_kind="ok", new_password=added.password,
        new_email=added.user.email,
    )  # fmt: skip


@post("/members/{membership_id:uuid}/role", opt=page(Scope.TENANT_ADMIN), status_code=200)
async def change_role(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    membership_id: FromPath[UUID],
    data: URLEncodedBody[RoleForm],
) -> Response[Any]:
    principal = principal_of(request)
    try:
        changed = await service.change_role(
            db_session, principal, membership_id=membership_id, role=_role(data.role)
        )
    except (Invalid, Conflict) as error:
        return await _members_page(
            request, db_session, status_code=400 if isinstance(error, Invalid) else 409,
            flash=error.detail, flash_kind="error",
        )  # fmt: skip
    if changed.user_id == principal.user_id and changed.role is not Role.ADMIN:
        return go(request, "/portal/")  # no longer theirs to manage
    return go(request, "/portal/members?done=role")


@post("/members/{membership_id:uuid}/remove", opt=page(Scope.TENANT_ADMIN), status_code=200)
async def remove_member(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    membership_id: FromPath[UUID],
) -> Response[Any]:
    """Remove a member: their tokens are revoked and the keys they hold pass to the keys'
    lifecycle (the service's rules, as the API's)."""
    await service.remove_member(db_session, principal_of(request), membership_id=membership_id)
    return go(request, "/portal/members?done=removed")


# API tokens ------------------------------------------------------------------------------


class TokenForm(msgspec.Struct):
    name: str = ""
    # One ticked box arrives as a single value, several as a list.
    scopes: list[str] | str = msgspec.field(default_factory=list)
    expires_in: str = "90d"

    def __post_init__(self) -> None:
        if isinstance(self.scopes, str):
            self.scopes = [self.scopes]


async def _token_made(session: AsyncSession, signed: Signed, token_id: UUID) -> once.Made:
    token = await repository.get_token(session, once.tenant_of(signed), token_id)
    return once.Made(token.name, "/portal/tokens")


CREATE_TOKEN = once.OnceForm(
    "tokens.create",
    made="the token {label} was made",
    shown_once="Its secret",
    lost="if you did not copy it, revoke it and make another",
    find=_token_made,
)


async def _tokens_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    *,
    status_code: int = 200,
    form: TokenForm | None = None,
    errors: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    principal = principal_of(request)
    found = await service.list_visible_tokens(db_session, principal)
    everyone = service.manages_tokens(principal)
    owners = (
        {
            m.user_id: m.user.email
            for m in await repository.list_members(db_session, principal.tenant)
        }
        if everyone
        else {}
    )
    grantable = sorted(ROLE_SCOPES[principal.role] if principal.role else principal.scopes)
    return await render(
        request, db_session, "auth/tokens.html", title="API tokens", status_code=status_code,
        tokens=list(reversed(found)), owners=owners, everyone=everyone, me=principal.user_id,
        grantable=grantable, expiries=EXPIRIES, never=NEVER, form=form or TokenForm(),
        errors=errors or {}, **context,
    )  # fmt: skip


@get("/tokens", opt=page(Access.MEMBER))
async def tokens_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    done: FromQuery[str] = "",
) -> Template:
    return await _tokens_page(request, db_session, **_done(done))


@post("/tokens", opt=page(Access.MEMBER, acts_once=CREATE_TOKEN), status_code=200)
async def create_token(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[TokenForm],
) -> Template:
    """Mint a token for the signed-in member, within their role; the token is on this answer
    only."""
    principal = principal_of(request)
    try:
        if not data.name.strip():
            raise Invalid("name", "give the token a name, to recognise it later")
        expiry = data.expires_in.strip()
        issued = await service.issue_session_token(
            db_session, principal, scopes=service.parse_scopes(data.scopes), name=data.name,
            expires_in=None if expiry == NEVER else service.parse_duration(expiry),
        )  # fmt: skip
    except Invalid as error:
        return await _tokens_page(
            request, db_session, status_code=400, form=data, errors={error.field: error.detail}
        )
    once.record(request, issued.token.id)
    return await _tokens_page(
        request, db_session, flash=f"Token {issued.token.name} was created.", flash_kind="ok",
        secret=issued.plaintext, created=issued.token,
    )  # fmt: skip


@post("/tokens/{token_id:uuid}/revoke", opt=page(Access.MEMBER), status_code=200)
async def revoke_token(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    token_id: FromPath[UUID],
) -> Response[Any]:
    await service.revoke_token(db_session, principal_of(request), token_id=token_id)
    return go(request, "/portal/tokens?done=revoked")


# The account -----------------------------------------------------------------------------


class PasswordForm(msgspec.Struct):
    current: str = ""
    password: str = ""
    repeated: str = ""
    next: str = ""


async def _account_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    signed = signed_of(request)
    assert signed is not None  # the guard
    settings: Settings = request.app.state.settings
    sessions = await service.list_live_sessions(
        db_session, signed.user.id, idle=SessionLimits.from_settings(settings).idle
    )
    return await render(
        request, db_session, "auth/account.html", title="Your account", status_code=status_code,
        user=signed.user, sessions=sessions, current=signed.session.id, errors=errors or {},
        **context,
    )  # fmt: skip


async def _new_password_page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    *,
    next: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
) -> Template:
    signed = signed_of(request)
    assert signed is not None  # the guard
    return await render(
        request, db_session, "auth/new_password.html", title="Choose your password",
        status_code=status_code, user=signed.user, next=safe_next(next), errors=errors or {},
    )  # fmt: skip


@get("/account", opt=page(Access.SIGNED_IN))
async def account_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    done: FromQuery[str] = "",
) -> Template:
    return await _account_page(request, db_session, **_done(done))


@get("/account/password", opt=page(Access.SIGNED_IN, before_new_password=True))
async def new_password_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    next: FromQuery[str] = "",
) -> Response[Any]:
    """The one page open after signing in with a password someone else chose: set one's
    own (the account page changes it otherwise)."""
    signed = signed_of(request)
    assert signed is not None  # the guard
    if not signed.user.must_change_password:
        return go(request, "/portal/account")
    return await _new_password_page(request, db_session, next=next)


class Locked(Exception):
    """The account is locked after too many wrong passwords (sign-ins or this page's)."""


async def _refuse_if_locked(
    request: Request[Any, Any, Any], db_session: AsyncSession, user: User
) -> None:
    """A locked email changes no password, whatever is typed: a session left open is no
    way round the sign-in lockout."""
    lockout = await throttle.locked(request.app.state.redis, email=user.email, address=_ip(request))
    if lockout is not None:
        await service.record_refused_password_change(db_session, user, locked=True)
        minutes = -(-lockout.retry_after // 60)
        raise Locked(
            f"Too many wrong passwords: your password cannot be changed for {minutes} more "
            "minute(s)."
        )


async def _count_wrong_current(
    request: Request[Any, Any, Any], db_session: AsyncSession, user: User
) -> None:
    """A wrong current password counts toward the lockout as a failed sign-in does."""
    await throttle.failed(request.app.state.redis, email=user.email, address=_ip(request))
    await service.record_refused_password_change(db_session, user, locked=False)


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


@post("/account/password", opt=page(Access.SIGNED_IN, before_new_password=True), status_code=200)
async def change_password(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[PasswordForm],
) -> Response[Any]:
    """Change one's own password; every other session of the user ends, this one stays. A
    password someone else chose is then replaced: on to where the user was going."""
    signed = signed_of(request)
    assert signed is not None  # the guard
    user = await service.get_user(db_session, signed.user.id)
    forced = user.must_change_password
    try:
        await _refuse_if_locked(request, db_session, user)
        if not data.current:
            raise Invalid("current", "enter your current password")
        check_new_password(data.password, data.repeated)
        await service.change_password(
            db_session, user, current=data.current, new=data.password,
            keep_session=signed.session.id,
        )  # fmt: skip
    except (Invalid, Locked) as error:
        status_code, errors = 429, {"current": str(error)}
        if isinstance(error, Invalid):
            status_code, errors = 400, {error.field: error.reason}
            if error.field == "current" and data.current:
                await _count_wrong_current(request, db_session, user)
        if forced:
            return await _new_password_page(
                request, db_session, next=data.next, status_code=status_code, errors=errors
            )
        return await _account_page(request, db_session, status_code=status_code, errors=errors)
    if forced:
        return go(request, safe_next(data.next))
    return go(request, "/portal/account?done=password")


@post("/account/sessions/end-others", opt=page(Access.SIGNED_IN), status_code=200)
async def end_other_sessions(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    signed = signed_of(request)
    assert signed is not None  # the guard
    user = await service.get_user(db_session, signed.user.id)
    await service.end_other_sessions(db_session, user, keep_session=signed.session.id)
    return go(request, "/portal/account?done=signed-out")


PAGES = [
    members_page,
    add_member,
    change_role,
    remove_member,
    tokens_page,
    create_token,
    revoke_token,
    account_page,
    new_password_page,
    change_password,
    end_other_sessions,
]
