"""Bearer-token authentication for /api/v1 and the per-route scope guard."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from hub.auth import service
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.db import Database

# Every /api/v1 handler declares `opt={"scope": ...}`: one of `Scope`, or ANY_SCOPE for
# routes any valid token may call. `create_app` refuses to start if one forgot.
SCOPE_OPT = "scope"
ANY_SCOPE = "any"


def scope(value: Scope | str) -> dict[str, Any]:
    """`opt=` for a route handler: the scope a token needs to call it."""
    return {SCOPE_OPT: value}


class BearerTokenMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        kind, _, raw = header.partition(" ")
        if kind.lower() != "bearer" or not raw.strip():
            raise NotAuthorizedException("Missing bearer token in the Authorization header")
        db: Database = connection.app.state.db
        async with db.transaction() as session:
            principal = await service.authenticate(session, raw.strip())
        if principal is None:
            raise NotAuthorizedException("Invalid, expired or revoked token")
        return AuthenticationResult(user=principal, auth=principal.token_id)


def require_scope(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    if _is_automatic_options(handler):
        # Litestar answers OPTIONS itself (the methods a path allows; no CORS is granted),
        # unauthenticated: there is no caller to check, and no data in the answer.
        return
    needed = handler.opt.get(SCOPE_OPT)
    if needed == ANY_SCOPE:  # any caller the middleware let in (or a route it leaves open)
        return
    principal: Principal = connection.user
    if needed is None or Scope(needed) not in principal.scopes:
        raise PermissionDeniedException(f"This call needs the scope {needed}")


def missing_scope_declarations(handlers: list[BaseRouteHandler]) -> list[str]:
    """Names of handlers that declare no scope (a misconfiguration, refused at start)."""
    missing = []
    for handler in handlers:
        if _is_automatic_options(handler):
            continue
        needed = handler.opt.get(SCOPE_OPT)
        if needed != ANY_SCOPE and needed not in Scope._value2member_map_:
            missing.append(handler.handler_name)
    return missing


def _is_automatic_options(handler: BaseRouteHandler) -> bool:
    """Litestar's own OPTIONS handler (added to every path; CORS pre-flights would use it)."""
    return set(getattr(handler, "http_methods", ())) == {"OPTIONS"}
