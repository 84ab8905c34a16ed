"""Two-step sign-in pages: the code asked after a right password, and turning it on (a new
secret shown once, as a QR code and as text) and off."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import segno
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import URLEncodedBody
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.service import Actor
from hub.auth import mfa
from hub.auth import service as auth
from hub.auth.models import User
from hub.core.errors import Conflict, Invalid, NotFound
from hub.portal import challenge, once, service, throttle
from hub.portal.pages import locked_out, signed_in
from hub.portal.web import (
    PAGE_HEADERS,
    Access,
    form_errors,
    go,
    page,
    render,
    signed_of,
    step_cookie,
)
from hub.settings import Settings

ACCOUNT = "/portal/account/two-step"


async def _key_made(session: AsyncSession, signed: service.Signed, user_id: UUID) -> once.Made:
    if await mfa.find(session, user_id) is None:
        raise NotFound("user_totp", user_id)
    return once.Made(signed.user.email, ACCOUNT)


BEGIN = once.OnceForm(
    "two-step.begin",
    made="a two-step sign-in key for {label} was made",
    shown_once="It",
    lost="if your app did not take it, start again on the two-step sign-in page",
    find=_key_made,
)


class CodeForm(msgspec.Struct):
    code: str = ""


class TurnOffForm(msgspec.Struct):
    password: str = ""
    code: str = ""


def _step_cookie_of(request: Request[Any, Any, Any]) -> str:
    settings: Settings = request.app.state.settings
    return request.cookies.get(step_cookie(settings, "").key, "")


@get("/login/code", opt=page(Access.PUBLIC))
async def code_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    pending = await challenge.find(request.app.state.redis, _step_cookie_of(request))
    if pending is None:
        return Redirect("/portal/login", status_code=303, headers=PAGE_HEADERS)
    return await render(request, db_session, "portal/login_code.html", title="Sign in", error="")


@post("/login/code", opt=page(Access.PUBLIC), status_code=200)
async def enter_code(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[CodeForm],
) -> Response[Any]:
    """The second step: the code from the user's app. Five wrong codes end the attempt (and
    count, as wrong passwords do, toward locking the email)."""
    redis, cookie = request.app.state.redis, _step_cookie_of(request)
    pending = await challenge.find(redis, cookie)
    user = await db_session.get(User, pending.user_id) if pending is not None else None
    if pending is None or user is None or not user.is_active:
        return Redirect("/portal/login", status_code=303, headers=PAGE_HEADERS)
    address = request.client.host if request.client else ""
    # Locked meanwhile (by this attempt's codes or another's): no code is tried, right or
    # wrong, else each right password would bring five more guesses past the lockout.
    lockout = await throttle.locked(redis, email=user.email, address=address)
    if lockout is not None:
        await challenge.finish(redis, cookie)
        await service.record_failed_sign_in(db_session, email=user.email, locked=True, step="code")
        refused = await render(
            request, db_session, "portal/login.html", title="Sign in", status_code=429,
            next=pending.next, email=user.email, error=locked_out(lockout),
        )  # fmt: skip
        refused.set_cookie(step_cookie(request.app.state.settings, "", clear=True))
        return refused
    if not await mfa.verify(db_session, user.id, data.code):
        await throttle.failed(redis, email=user.email, address=address)
        over = await challenge.missed(redis, cookie, pending)
        await service.record_failed_sign_in(db_session, email=user.email, locked=over, step="code")
        if over:
            return await render(
                request, db_session, "portal/login.html", title="Sign in", status_code=401,
                next=pending.next, email=user.email,
                error="Too many wrong codes. Sign in again with your password.",
            )  # fmt: skip
        return await render(
            request, db_session, "portal/login_code.html", title="Sign in", status_code=401,
            error="That is not the current code. Enter the code your app shows now.",
        )  # fmt: skip
    await challenge.finish(redis, cookie)
    await throttle.succeeded(redis, email=user.email)
    response = await signed_in(request, db_session, user, next=pending.next, two_step=True)
    response.set_cookie(step_cookie(request.app.state.settings, "", clear=True))
    return response


def _user(request: Request[Any, Any, Any]) -> User:
    signed = signed_of(request)
    assert signed is not None  # the guard
    return signed.user


async def _account(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    *,
    status_code: int = 200,
    **context: Any,
) -> Template:
    settings: Settings = request.app.state.settings
    return await render(
        request, session, "portal/two_step.html", title="Two-step sign-in",
        status_code=status_code, is_on=await mfa.is_enabled(session, _user(request).id),
        required=settings.portal_require_two_step, **{"errors": {}, **context},
    )  # fmt: skip


@get("/account/two-step", opt=page(Access.ENROLLING))
async def two_step_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    return await _account(request, db_session)


@post("/account/two-step/begin", opt=page(Access.ENROLLING, acts_once=BEGIN), status_code=200)
async def begin(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    """A new secret, shown on this answer only: scan it, then confirm with a code."""
    enrollment = await mfa.begin(db_session, _user(request))
    once.record(request, _user(request).id)
    return await _account(request, db_session, enrollment=enrollment, qr=_qr(enrollment))


def _qr(enrollment: mfa.Enrollment) -> str:
    return str(segno.make(enrollment.uri, error="m").svg_data_uri(scale=4, border=2))


@post("/account/two-step/confirm", opt=page(Access.ENROLLING), status_code=200)
async def confirm(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[CodeForm],
) -> Response[Any]:
    signed = signed_of(request)
    assert signed is not None  # the guard
    try:
        await mfa.confirm(db_session, signed.user, data.code)
    except Invalid as error:
        waiting = await mfa.pending(db_session, _user(request))
        return await _account(
            request, db_session, status_code=400, errors=form_errors(error),
            enrollment=waiting, qr=_qr(waiting) if waiting else "",
        )  # fmt: skip
    # A session opened elsewhere with the password alone (perhaps by whoever has it) would
    # pass for a two-step one from now on: every other session ends.
    user = await auth.get_user(db_session, signed.user.id)
    await auth.end_other_sessions(db_session, user, keep_session=signed.session.id)
    return await _account(
        request, db_session, flash="Two-step sign-in is on. Your other sessions were signed out."
    )


@post("/account/two-step/disable", opt=page(Access.SIGNED_IN), status_code=200)
async def disable(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[TurnOffForm],
) -> Response[Any]:
    """Off, with the password and a current code (a session left open is not enough)."""
    settings: Settings = request.app.state.settings
    user = _user(request)
    if settings.portal_require_two_step:
        raise Conflict("this hub requires two-step sign-in: it cannot be turned off")
    # Guesses here count as wrong sign-ins do: a session left open must not become a place
    # to try passwords and codes without limit.
    redis = request.app.state.redis
    address = request.client.host if request.client else ""
    lockout = await throttle.locked(redis, email=user.email, address=address)
    if lockout is not None:
        errors = {"password": locked_out(lockout)}
        return await _account(request, db_session, status_code=429, errors=errors)
    if not await service.password_matches(user, data.password):
        await throttle.failed(redis, email=user.email, address=address)
        errors = {"password": "is not your password"}
        return await _account(request, db_session, status_code=400, errors=errors)
    if not await mfa.verify(db_session, user.id, data.code):
        await throttle.failed(redis, email=user.email, address=address)
        errors = {"code": "is not the app's current code"}
        return await _account(request, db_session, status_code=400, errors=errors)
    await mfa.disable(db_session, user, actor=Actor.of_user(user))
    return go(request, ACCOUNT)


PAGES = [code_page, enter_code, two_step_page, begin, confirm, disable]
