"""Forms that make a secret act once. The answer to such a form shows the secret (a new API
token, a one-time password, a signing secret) and, as every page, is not stored: a reload,
or going back and forward, sends the form again. So the page gives each such form a token
(`once_field`), and the POST claims it in Redis (`SET NX`, per portal session) before the
handler acts. Sent again, the form makes nothing: the answer (409) names what the first one
made. Without a token this session was given for the form, it makes nothing either (400)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import structlog
from jinja2 import pass_context
from jinja2.runtime import Context
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Message, Scope, Send
from markupsafe import Markup
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Database, utcnow
from hub.core.errors import Conflict, Invalid, NotFound
from hub.core.ids import TenantID
from hub.portal.service import Signed

log = structlog.get_logger(__name__)

FIELD = "_form_token"
OPT = "once"  # a handler's `opt` key: the `OnceForm` it acts for
NONCE_BYTES = 16  # 128 random bits
MAC_CHARS = 32  # 128 bits of the HMAC, in hex
_CLAIM = "hub.portal.once"  # the request's claim, in the scope's state
_ACTING = "acting"  # a claim whose request has not answered yet
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Made:
    """The object a form made, as the answer to the form sent again names it (never its
    secret): its label, and the page where it is seen."""

    label: str
    href: str


# The object a claim recorded, read again (`NotFound` when it is gone since).
Finder = Callable[[AsyncSession, Signed, UUID], Awaitable[Made]]


@dataclass(frozen=True, slots=True)
class OnceForm:
    """A form whose answer shows a secret once. `name` is what its page asks a token for
    (`once_field(name)`); `made` says what the first sending made, around the object's
    label (`{label}`); `shown_once` names the secret shown then, and `lost` what to do if
    nobody copied it; `find` reads the object again by the id its handler recorded."""

    name: str
    made: str
    shown_once: str
    lost: str
    find: Finder

    def already_sent(self, made: Made | None, *, shown: bool) -> str:
        label = f'"{made.label}"' if made else "(no longer found)"
        done = f"This form was already sent, and {self.made.format(label=label)} then."
        if not shown:
            return f"{done} Nothing was done a second time."
        return f"{done} {self.shown_once} was shown once and cannot be shown again: {self.lost}."


class AlreadySent(Conflict):
    """The form's token was claimed before: nothing is done again. `href` is where the
    object the first sending made is seen."""

    def __init__(self, detail: str, *, href: str | None = None) -> None:
        super().__init__(detail, field=FIELD)
        self.href = href


class NotClaimed(RuntimeError):
    """A handler recorded what it made, but its route declares no `OnceForm`."""


@dataclass(slots=True)
class Claim:
    """A request's hold on its form token: what it made, once the handler says so."""

    redis: Any
    key: str
    made: UUID | None = None
    shown: bool = True


def tenant_of(signed: Signed) -> TenantID:
    """The tenant the session works in, where a finder reads a tenant's object."""
    if signed.principal is None:
        raise NotFound("tenant", None)
    return signed.principal.tenant


def _mac(form_key: bytes, name: str, nonce: str) -> str:
    message = f"{name}|{nonce}".encode()
    return hmac.new(form_key, message, hashlib.sha256).hexdigest()[:MAC_CHARS]


def issue(form_key: bytes, name: str) -> str:
    """A new token for the form `name` of the session whose key this is."""
    nonce = secrets.token_urlsafe(NONCE_BYTES)
    return f"{nonce}.{_mac(form_key, name, nonce)}"


@pass_context
def once_field(context: Context, name: str) -> Markup:
    """`{{ once_field("tokens.create") }}` in a form: its hidden token, new on each page."""
    signed: Signed | None = context["request"].scope.get("auth")
    if signed is None:
        return Markup("")
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        FIELD, issue(signed.form_key, name)
    )


def _nonce(signed: Signed, form: OnceForm, offered: str | None) -> str:
    """The offered token's random part, once its signature shows this session was given it
    for this form; a 400 naming the field otherwise."""
    if not offered:
        raise Invalid(
            FIELD,
            "is missing: this form is sent from its page, which gives it a token; open the "
            "page again and send the form from there. Nothing was done",
        )
    nonce, _, mac = offered.partition(".")
    if len(offered) > 128 or not hmac.compare_digest(mac, _mac(signed.form_key, form.name, nonce)):
        raise Invalid(
            FIELD,
            "is not a token this page gave you for this form (or your session changed since); "
            "open the page again and send the form from there. Nothing was done",
        )
    return nonce


async def claim_form(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """A guard of every portal route, after the page guard: a form that makes a secret is
    claimed before its handler acts, or refused (400 without its token, 409 sent again)."""
    form = handler.opt.get(OPT)
    request: Request[Any, Any, Any] = Request(connection.scope, connection.receive)
    if not isinstance(form, OnceForm) or request.method in _SAFE_METHODS:
        return
    signed: Signed = connection.scope["auth"]  # the page guard lets no one else by
    offered = (await request.form()).get(FIELD)
    nonce = _nonce(signed, form, offered if isinstance(offered, str) else None)
    redis = connection.app.state.redis
    key = f"hub:portal:once:{signed.session.id}:{nonce}"
    # As long as the session lives: after it, no request can send this token again.
    ttl = max(1, int((signed.session.expires_at - utcnow()).total_seconds()))
    recorded = None
    for _ in range(2):  # twice: a claim let go between our SET and GET is free again
        if await redis.set(key, _ACTING, nx=True, ex=ttl):
            connection.scope.setdefault("state", {})[_CLAIM] = Claim(redis, key)
            return
        if (recorded := await redis.get(key)) is not None:
            break
    raise await _refusal(connection.app.state.db, form, signed, recorded)


async def _refusal(
    database: Database, form: OnceForm, signed: Signed, recorded: bytes | str | None
) -> AlreadySent:
    if recorded is None or recorded in {_ACTING, _ACTING.encode()}:
        # The first is still being answered (a double click), or its answer was lost.
        return AlreadySent(
            "This form was already sent, and the hub is still answering it (or that answer "
            "was lost on the way). Nothing was done a second time: open the page again to "
            "see what was made."
        )
    document = json.loads(recorded)
    made: Made | None = None
    # NotFound: gone since (deleted, removed), or not in the tenant the session works in now.
    async with database.transaction(read_only=True) as session:
        with contextlib.suppress(NotFound):
            made = await form.find(session, signed, UUID(document["id"]))
    return AlreadySent(
        form.already_sent(made, shown=bool(document["shown"])), href=made.href if made else None
    )


def record(request: Request[Any, Any, Any], ident: UUID, *, shown: bool = True) -> None:
    """Record what the form made (its id; `shown`: whether a secret was on the answer). The
    claim keeps it once the answer starts, when the request's transaction has committed."""
    claim: Claim | None = request.scope.get("state", {}).get(_CLAIM)
    if claim is None:
        raise NotClaimed(f"{request.url.path} declares no OnceForm")
    claim.made, claim.shown = ident, shown


def forget(scope: Scope) -> None:
    """The request answers with an error (its transaction rolled back): nothing it recorded
    was made, and its claim is let go (an htmx error's answer is a 200, so its status
    cannot tell)."""
    claim: Claim | None = scope.get("state", {}).get(_CLAIM)
    if claim is not None:
        claim.made = None


@contextlib.asynccontextmanager
async def settling(scope: Scope, send: Send) -> AsyncIterator[Send]:
    """`send` for a request that may hold a claim: as its answer starts (the transaction has
    committed by then, or failed and the answer says so), the claim keeps what was made, or
    is let go when nothing was (a refusal, an error): sent again, it acts again."""

    async def settle_then_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            await _settle(scope, kept=message["status"] < 400)
        await send(message)

    try:
        yield settle_then_send
    finally:
        await _settle(scope, kept=False)  # no answer started: nothing is known made


async def _settle(scope: Scope, *, kept: bool) -> None:
    claim: Claim | None = scope.get("state", {}).pop(_CLAIM, None)
    if claim is None:
        return
    try:
        if kept and claim.made is not None:
            document = json.dumps({"id": str(claim.made), "shown": claim.shown})
            await claim.redis.set(claim.key, document, xx=True, keepttl=True)
        else:
            await claim.redis.delete(claim.key)
    except RedisError as error:
        # The answer (perhaps a secret) must still go out; the claim stays "being answered"
        # until the session ends, so the form is still not acted on twice.
        log.warning("form claim not settled", error_class=type(error).__name__)
