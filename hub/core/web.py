"""Request plumbing shared by every route: the per-request session, request ids, health, and
how request bodies appear in the OpenAPI schema."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, Response, get

# Litestar's own schema plugin for msgspec structs (not re-exported publicly).
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.datastructures import MutableScopeHeaders, State
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import Schema
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.typing import FieldDefinition
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.principal import Principal
from hub.core.db import Database
from hub.core.errors import documented
from hub.core.ids import uuid7
from hub.core.logging import bind_context, clear_context
from hub.metrics.http import mark_start

READINESS_TIMEOUT_SECONDS = 2.0
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# On every answer: no MIME sniffing, no framing, no referrer. API answers (a token is shown
# once in one) are never stored by a browser or a proxy.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
API_PATH_PREFIX = "/api/"
PAGE_PATH_PREFIXES = ("/portal", "/console")
# The portal's pages (and every other answer under their prefixes: a redirect, an error, a
# wrong method's refusal) show PHI: kept by no browser or proxy, and loading nothing from
# elsewhere (htmx and the stylesheet come from /static; no inline script or style).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


async def provide_session(
    state: State, request: Request[Any, Any, Any]
) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the handler succeeds, rolled back otherwise.
    GET requests read only (on SQLite they then never wait behind a writer)."""
    database: Database = state.db
    async with database.transaction(read_only=request.method in {"GET", "HEAD"}) as session:
        yield session


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.user
    return principal


def request_id_of(scope: Scope) -> str:
    """The request's id, made on first use: a caller's `X-Request-ID` if it is sane."""
    state = scope.setdefault("state", {})
    request_id: str | None = state.get("request_id")
    if request_id is None:
        offered = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = offered if _REQUEST_ID.fullmatch(offered) else str(uuid7())
        state["request_id"] = request_id
    return request_id


class RequestContextMiddleware(ASGIMiddleware):
    """Give every request an id (a caller's `X-Request-ID` if it is sane) and log it."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = request_id_of(scope)
        mark_start(scope)
        clear_context()
        client = scope.get("client")
        # The peer address as the server saw it (a proxy in front sets its own; trusting
        # X-Forwarded-For is a deployment decision, not made here). The audit log reads it.
        bind_context(request_id=request_id, client_ip=client[0] if client else None)
        try:  # the answer's X-Request-ID: `add_security_headers`, which sees every answer
            await next_app(scope, receive, send)
        finally:
            clear_context()


async def add_security_headers(message: Message, scope: Scope) -> None:
    """`before_send` hook: it sees every answer, errors raised by middleware (a 401) too,
    which `RequestContextMiddleware`'s own send does not, nor a path no route matched
    (middleware runs per route): the request id goes on here."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    # A page that carries a one-time token in its address (a password reset link) asks for
    # no referrer at all; that is kept whatever the defaults below say.
    own_referrer = headers.get("referrer-policy")
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    headers["X-Request-ID"] = request_id_of(scope)
    path = scope.get("path", "")
    if path.startswith(API_PATH_PREFIX):
        headers["Cache-Control"] = "no-store"
    elif path.startswith(PAGE_PATH_PREFIXES):
        # With `no-referrer` a browser sends `Origin: null` on the portal's own forms, and
        # the portal refuses forms whose origin is not its own.
        headers["Referrer-Policy"] = (
            "no-referrer" if own_referrer == "no-referrer" else "same-origin"
        )
        for name, value in PAGE_HEADERS.items():
            headers[name] = value


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """A request body that refuses unknown fields (`forbid_unknown_fields`) says so in the
    OpenAPI schema (`additionalProperties: false`); Litestar's plugin leaves that out."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return super().is_plugin_supported_field(field_definition) and bool(
            field_definition.type_.__struct_config__.forbid_unknown_fields
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema


@get("/healthz", include_in_schema=True, tags=["health"], sync_to_thread=False)
def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe(), READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        return name, "timed out"
    except Exception as error:
        return name, f"unreachable ({type(error).__name__})"
    return name, "ok"


@get("/readyz", tags=["health"], responses=documented(HTTP_503_SERVICE_UNAVAILABLE))
async def readyz(state: State) -> Response[dict[str, Any]]:
    """The database and Redis both answer; 503 names whichever does not."""
    database: Database = state.db
    checks = dict(
        await asyncio.gather(
            _check("database", database.ping),
            _check("redis", state.redis.ping),
        )
    )
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        detail = ", ".join(f"{name} {checks[name]}" for name in failing)
        body = {"status_code": HTTP_503_SERVICE_UNAVAILABLE, "detail": detail, "extra": checks}
        return Response(body, status_code=HTTP_503_SERVICE_UNAVAILABLE)
    return Response({"status": "ok", "checks": checks}, status_code=HTTP_200_OK)
