"""Forgot your password? A one-time link by email: the request (the same answer whatever the
email, throttled), the token (random; only its SHA-256 kept in Redis with the user id, for
30 minutes, once; a newer one replaces the older), the email (sent by a worker job, which
mints the token: it never travels through the queue) and the page that sets a new password.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape
from typing import Any
from uuid import UUID

import msgspec
import structlog
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import URLEncodedBody
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth import tokens
from hub.auth.models import User
from hub.core import jobs
from hub.core.errors import Invalid
from hub.portal import service, throttle
from hub.portal.web import PAGE_HEADERS, Access, form_errors, page, render, session_cookie
from hub.settings import Settings

log = structlog.get_logger(__name__)

TOKEN_TTL_SECONDS = 30 * 60
TOKEN_BYTES = 32
# Requests counted per email (any email, known or not: the count tells nothing) and per
# client address, over an hour. Past the email's limit nothing more is sent (the answer
# stays the same); past the address's the page says to wait.
WINDOW_SECONDS = 60 * 60
EMAIL_LIMIT = 3
ADDRESS_LIMIT = 20
JOB = "portal.send_password_reset"
PASSWORD_RESET = "user.password_reset"  # noqa: S105 - an action name (as the operator's)
# The token lands in this cookie and leaves the address bar (see `reset_link`).
COOKIE = "hub_password_reset"
RESET_PATH = "/portal/login/reset"
SENT = (
    "If an account exists for that email, an email with a link to set a new password is on "
    "its way. The link works once, for 30 minutes."
)
ASK_OPERATOR = (
    "This hub sends no email. Ask the vendor's operators to reset your password "
    "(hub users reset-password); you will choose your own at your next sign-in."
)
TOO_MANY = "Too many requests from your network. Try again in an hour."
EXPIRED = "This link has expired, was already used, or was replaced by a newer one."


# The token in Redis ------------------------------------------------------------------------


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_key(digest: str) -> str:
    return "hub:portal:password-reset:" + digest


def _user_key(user_id: UUID) -> str:
    return f"hub:portal:password-reset:user:{user_id}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


async def mint(redis: Any, user_id: UUID) -> str:
    """A new one-time token for the user (the one they had stops working)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    older = _text(await redis.get(_user_key(user_id)))
    pipe = redis.pipeline(transaction=True)
    if older is not None:
        pipe.delete(_token_key(older))
    pipe.set(_token_key(_digest(token)), str(user_id), ex=TOKEN_TTL_SECONDS)
    pipe.set(_user_key(user_id), _digest(token), ex=TOKEN_TTL_SECONDS)
    await pipe.execute()
    return token


def _well_formed(token: str) -> bool:
    return 0 < len(token) <= 128


async def find(redis: Any, token: str) -> UUID | None:
    """The user a live token is for (the token stays usable)."""
    if not _well_formed(token):
        return None
    found = _text(await redis.get(_token_key(_digest(token))))
    return UUID(found) if found else None


async def consume(redis: Any, token: str) -> UUID | None:
    """The user a live token is for, and the token is spent (GETDEL: of two at once, one
    wins)."""
    if not _well_formed(token):
        return None
    found = _text(await redis.getdel(_token_key(_digest(token))))
    if not found:
        return None
    await redis.delete(_user_key(UUID(found)))
    return UUID(found)


# Asking for a link ---------------------------------------------------------------------------


def _count_keys(email: str, address: str) -> tuple[str, str]:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]  # no email in Redis
    return f"hub:portal:forgot:email:{digest}", f"hub:portal:forgot:address:{address}"


@dataclass(frozen=True, slots=True)
class Allowance:
    email_ok: bool
    address_ok: bool


async def count_request(redis: Any, *, email: str, address: str) -> Allowance:
    """Count one request against the email and the address (the window starts at the first)."""
    pipe = redis.pipeline(transaction=True)
    for key in _count_keys(email, address):
        pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
        pipe.incr(key)
    _, by_email, _, by_address = await pipe.execute()
    return Allowance(int(by_email) <= EMAIL_LIMIT, int(by_address) <= ADDRESS_LIMIT)


def reset_email_job(user_id: UUID) -> jobs.Job:
    # One per user while queued: a double click sends one email.
    return jobs.Job(JOB, (str(user_id),), job_id=f"{JOB}:{user_id}")


async def request_reset(session: AsyncSession, *, email: str) -> None:
    """Queue the email (after commit) if an active user has this email; else nothing. The
    caller answers the same either way."""
    address = email.strip().lower()
    user = await session.scalar(select(User).where(User.email == address)) if address else None
    if user is not None and user.is_active:
        jobs.enqueue(session, reset_email_job(user.id))


# The email (the worker sends it) --------------------------------------------------------------


def reset_link(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{RESET_PATH}?token={token}"


def reset_message(*, sender: str, to: str, link: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"] = sender, to
    message["Subject"] = "[CTM Hub] Set a new password"
    message["Message-ID"] = make_msgid(domain="ctm-hub")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f"Someone (you, we hope) asked to set a new password for {to} on CTM Hub.\n\n"
        f"Open this link within 30 minutes to choose one (it works once):\n{link}\n\n"
        "If you did not ask, ignore this email: your password stays as it is.\n"
    )
    message.add_alternative(
        "<!doctype html><html><body>"
        f"<p>Someone (you, we hope) asked to set a new password for {escape(to)} on CTM Hub.</p>"
        f'<p><a href="{escape(link)}">Choose a new password</a> within 30 minutes '
        "(the link works once).</p>"
        "<p>If you did not ask, ignore this email: your password stays as it is.</p>"
        "</body></html>",
        subtype="html",
    )
    return message


async def send_reset_email(
    session: AsyncSession, redis: Any, user_id: UUID, *, mailer: Any, public_url: str
) -> bool:
    """Mint the user's token and email its link; False when there is nothing to send (no
    mailer, or the user is gone or deactivated). The mailer's errors propagate (retry)."""
    user = await session.get(User, user_id)
    if mailer is None or user is None or not user.is_active:
        return False
    token = await mint(redis, user.id)
    link = reset_link(public_url, token)
    await mailer.send(reset_message(sender=mailer.sender, to=user.email, link=link))
    log.info("password reset email sent", user_id=str(user.id))
    return True


# Setting the new password -------------------------------------------------------------------


async def reset_password(
    session: AsyncSession, redis: Any, *, token: str, password: str, repeated: str
) -> User | None:
    """Set the password the token's user chose: None when the token is dead (or its user was
    deactivated). Every portal session of theirs ends, a password someone else chose needs
    changing no more, the sign-in lockout of their email lifts; audited as the user."""
    service.check_new_password(password, repeated)
    user_id = await consume(redis, token)
    user = await session.get(User, user_id) if user_id is not None else None
    if user is None or not user.is_active:
        return None
    user.password_hash = await asyncio.to_thread(tokens.hash_password, password)
    user.must_change_password = False
    ended = await service.end_all(session, user.id)
    await throttle.succeeded(redis, email=user.email)
    await audit.record(
        session,
        actor=Actor.of_user(user),
        action=PASSWORD_RESET,
        tenant_id=None,
        target_type="user",
        target_id=user.id,
        details={"via": "email", "sessions_ended": ended},
    )
    return user


# Pages ------------------------------------------------------------------------------------


class ForgotForm(msgspec.Struct):
    email: str = ""


class ResetForm(msgspec.Struct):
    password: str = ""
    repeated: str = ""


def _address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def _settings(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def reset_cookie(settings: Settings, value: str, *, clear: bool = False) -> Cookie:
    return Cookie(
        key=COOKIE,
        value="" if clear else value,
        path=RESET_PATH,
        httponly=True,
        secure=settings.public_url.startswith("https://"),
        samesite="lax",
        max_age=0 if clear else TOKEN_TTL_SECONDS,
    )


# The link's address holds the token: its answer (a redirect to the bare page) sends it to no
# one. The pages after it carry no token in their address, and keep the portal's policy:
# under `no-referrer` a browser posts their form with `Origin: null`, which is refused.
NO_REFERRER = {**PAGE_HEADERS, "Referrer-Policy": "no-referrer"}


@get("/login/forgot", opt=page(Access.PUBLIC))
async def forgot_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    return await render(
        request, db_session, "portal/forgot.html", title="Forgot your password?",
        can_email=bool(_settings(request).smtp_url), message="", error="",
    )  # fmt: skip


@post("/login/forgot", opt=page(Access.PUBLIC), status_code=200)
async def forgot(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[ForgotForm],
) -> Template:
    """The same answer for every email; an email only to an active account, and not more
    than `EMAIL_LIMIT` an hour."""
    can_email = bool(_settings(request).smtp_url)

    async def answer(message: str = "", error: str = "", status_code: int = 200) -> Template:
        return await render(
            request, db_session, "portal/forgot.html", title="Forgot your password?",
            status_code=status_code, can_email=can_email, message=message, error=error,
        )  # fmt: skip

    if not can_email:
        return await answer(error=ASK_OPERATOR)
    if not data.email.strip():
        return await answer(error="Enter your email.", status_code=400)
    allowed = await count_request(
        request.app.state.redis, email=data.email[:320], address=_address(request)
    )
    if not allowed.address_ok:
        return await answer(error=TOO_MANY, status_code=429)
    if allowed.email_ok:
        await request_reset(db_session, email=data.email[:320])
    return await answer(message=SENT)


@get(RESET_PATH.removeprefix("/portal"), opt=page(Access.PUBLIC))
async def reset_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Response[Any]:
    """The link from the email: its token goes into a cookie and out of the address bar (so
    no history, log or Referer holds it), then the form."""
    settings = _settings(request)
    offered = request.query_params.get("token")
    if offered is not None:
        response = Redirect(RESET_PATH, status_code=303, headers=NO_REFERRER)
        response.set_cookie(reset_cookie(settings, offered[:128]))
        return response
    token = request.cookies.get(COOKIE, "")
    if await find(request.app.state.redis, token) is None:  # a page that says so, not a fault
        return await _expired(request, db_session, status_code=200)
    return await _form(request, db_session, errors={})


async def _form(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    *,
    errors: dict[str, str],
    status_code: int = 200,
) -> Template:
    page_ = await render(
        request, session, "portal/reset.html", title="Set a new password",
        status_code=status_code, errors=errors, expired=False,
    )  # fmt: skip
    return page_


async def _expired(
    request: Request[Any, Any, Any], session: AsyncSession, *, status_code: int = 400
) -> Template:
    page_ = await render(
        request, session, "portal/reset.html", title="Set a new password", status_code=status_code,
        errors={}, expired=True, message=EXPIRED,
    )  # fmt: skip
    page_.set_cookie(reset_cookie(_settings(request), "", clear=True))
    return page_


@post(RESET_PATH.removeprefix("/portal"), opt=page(Access.PUBLIC), status_code=200)
async def reset(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[ResetForm],
) -> Template:
    token = request.cookies.get(COOKIE, "")
    redis = request.app.state.redis
    try:
        user = await reset_password(
            db_session, redis, token=token, password=data.password, repeated=data.repeated
        )
    except Invalid as error:
        if await find(redis, token) is None:
            return await _expired(request, db_session)
        return await _form(request, db_session, errors=form_errors(error), status_code=400)
    if user is None:
        return await _expired(request, db_session)
    # A session this browser had ended with the others: the page shows nobody signed in.
    request.scope["auth"], request.scope["user"] = None, None
    done = await render(request, db_session, "portal/reset_done.html", title="Password set")
    done.set_cookie(reset_cookie(_settings(request), "", clear=True))
    done.set_cookie(session_cookie(_settings(request), "", clear=True))
    return done


PAGES = [forgot_page, forgot, reset_page, reset]
