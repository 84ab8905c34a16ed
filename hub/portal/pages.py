"""The portal's own pages: sign in and out, choose a tenant, and the overview."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import mfa
from hub.auth.models import User
from hub.core.db import utcnow
from hub.metrics.tenants import tenant_health
from hub.portal import challenge, service, throttle
from hub.portal.web import (
    NEW_PASSWORD_PAGE,
    PAGE_HEADERS,
    Access,
    go,
    page,
    principal_of,
    render,
    session_cookie,
    signed_of,
    step_cookie,
)
from hub.settings import Settings
from hub.tenants.models import Tenant


class SignInForm(msgspec.Struct):
    email: str = ""
    password: str = ""
    next: str = ""


class ChooseForm(msgspec.Struct):
    tenant_id: str = ""


def _address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


@get("/login", opt=page(Access.PUBLIC), name="portal.login")
async def login_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    next: FromQuery[str] = "",
) -> Response[Any]:
    if signed_of(request) is not None:
        return Redirect(service.safe_next(next), headers=PAGE_HEADERS)
    return await render(
        request, db_session, "portal/login.html", title="Sign in", next=next, email="", error=""
    )


@post("/login", opt=page(Access.PUBLIC), status_code=200)
async def login(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[SignInForm],
) -> Response[Any]:
    """Check the email and password (after too many failures, refuse the email for a while
    whatever the password), then start a session and set its cookie."""
    settings: Settings = request.app.state.settings
    redis, address = request.app.state.redis, _address(request)

    async def refused(message: str, status_code: int) -> Template:
        return await render(
            request, db_session, "portal/login.html", title="Sign in", status_code=status_code,
            next=data.next, email=data.email, error=message,
        )  # fmt: skip

    if not data.email.strip() or not data.password:
        return await refused("Enter your email and your password.", 400)
    lockout = await throttle.locked(redis, email=data.email, address=address)
    if lockout is not None:
        await service.record_failed_sign_in(db_session, email=data.email, locked=True)
        return await refused(locked_out(lockout), 429)
    user = await service.check_password(db_session, email=data.email, password=data.password)
    if user is None:
        await throttle.failed(redis, email=data.email, address=address)
        await service.record_failed_sign_in(db_session, email=data.email, locked=False)
        return await refused(service.WRONG_LOGIN, 401)
    if await mfa.is_enabled(db_session, user.id):
        # The password was right; the session waits for the code from the user's app.
        cookie = await challenge.start(redis, user_id=user.id, next=data.next)
        response = Redirect("/portal/login/code", status_code=303, headers=PAGE_HEADERS)
        response.set_cookie(step_cookie(settings, cookie))
        return response
    await throttle.succeeded(redis, email=data.email)
    return await signed_in(request, db_session, user, next=data.next, two_step=False)


def locked_out(lockout: throttle.Lockout) -> str:
    minutes = -(-lockout.retry_after // 60)
    return (
        f"Too many failed sign-ins. Try again in {minutes} minute(s), or ask your "
        "tenant admin to check your account."
    )


async def signed_in(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    user: User,
    *,
    next: str,
    two_step: bool,
) -> Response[Any]:
    """Start the session (ending one this browser had) and go on to `next`."""
    settings: Settings = request.app.state.settings
    previous = signed_of(request)
    if previous is not None:  # signing in again in the same browser: the old session ends
        await service.end(session, previous)
    started = await service.start(
        session,
        user,
        limits=service.SessionLimits.from_settings(settings),
        client_ip=_address(request),
        user_agent=request.headers.get("user-agent", ""),
        two_step=two_step,
    )
    target = landing(user, tenant_chosen=started.session.tenant_id is not None, next=next)
    if user.must_change_password:  # first their own password; then on where they were going
        target = f"{NEW_PASSWORD_PAGE}?next={quote(target, safe='/')}"
    response = Redirect(target, status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(session_cookie(settings, started.cookie))
    return response


def landing(user: User, *, tenant_chosen: bool, next: str) -> str:
    """Where a signed-in user goes: `next` (a portal or console path), else the overview;
    with no tenant chosen the tenant list, or an operator's console."""
    target = service.safe_next(next)
    if not tenant_chosen:
        target = "/console/" if user.is_operator and target == "/portal/" else "/portal/tenants"
    return target


@post("/logout", opt=page(Access.ENROLLING, before_new_password=True), status_code=200)
async def logout(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    signed = signed_of(request)
    if signed is not None:
        await service.end(db_session, signed)
    response = go(request, "/portal/login")
    response.set_cookie(session_cookie(request.app.state.settings, "", clear=True))
    return response


@get("/tenants", opt=page(Access.SIGNED_IN))
async def tenants_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    signed = signed_of(request)
    assert signed is not None  # the guard
    memberships = await service.memberships_of(db_session, signed.user.id)
    return await render(
        request, db_session, "portal/tenants.html", title="Choose a tenant",
        memberships=memberships, is_operator=signed.user.is_operator,
    )  # fmt: skip


@post("/tenants", opt=page(Access.SIGNED_IN), status_code=200)
async def choose_tenant(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[ChooseForm],
) -> Response[Any]:
    signed = signed_of(request)
    assert signed is not None  # the guard
    try:
        tenant_id = UUID(data.tenant_id)
    except ValueError:
        tenant_id = UUID(int=0)  # not a tenant of theirs either: the same 404
    await service.choose_tenant(db_session, signed, tenant_id=tenant_id)
    return go(request, "/portal/")


@get("/", opt=page(Access.MEMBER))
async def overview(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    """The tenant at a glance: what needs someone first, then the figures behind it."""
    principal = principal_of(request)
    tenant = await db_session.get(Tenant, principal.tenant)
    assert tenant is not None  # the session's membership was checked this request
    found = await tenant_health(db_session, now=utcnow(), slug=tenant.slug)
    return await render(
        request, db_session, "portal/overview.html", title="Overview",
        health=found[0] if found else None,
    )  # fmt: skip


PAGES = [login_page, login, logout, tenants_page, choose_tenant, overview]
