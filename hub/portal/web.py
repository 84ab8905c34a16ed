"""The portal's plumbing: the session cookie, the middleware that finds the signed-in user
and checks every form's origin and CSRF token, the page guard, rendering with the layout,
and errors as pages (or, for an htmx request, as a message in the page)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import repository as alerts_repository
from hub.auth.models import Scope as TokenScope
from hub.auth.principal import Principal
from hub.core import web as core_web
from hub.core.db import Database, utcnow
from hub.core.errors import Conflict, DomainError, Invalid
from hub.portal import challenge, once, service
from hub.portal.nav import NAV, NavItem
from hub.settings import Settings
from hub.tenants.models import Tenant

log = structlog.get_logger(__name__)

PAGE_OPT = "page"
# Set on the few routes a user reaches while a password someone else chose awaits changing.
BEFORE_NEW_PASSWORD_OPT = "before-new-password"  # noqa: S105 - an option name
NEW_PASSWORD_PAGE = "/portal/account/password"  # noqa: S105 - a path
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
# Pages show PHI: a browser or proxy keeps none of them, and they load nothing from
# elsewhere (see hub/core/web.py, which puts these on every answer under the page prefixes,
# a wrong method's too).
PAGE_HEADERS = core_web.PAGE_HEADERS


class Access(enum.StrEnum):
    """Who may open a page, beside the token scopes (`hub.auth.models.Scope`)."""

    PUBLIC = "public"  # signed out too (the sign-in page)
    SIGNED_IN = "signed-in"  # any signed-in user, with or without a tenant chosen
    # Signed in, even before turning on the two-step sign-in the hub requires (the pages
    # that turn it on, and signing out).
    ENROLLING = "enrolling"
    MEMBER = "member"  # a member working in a tenant, any role
    OPERATOR = "operator"  # a platform operator (the console)


def page(
    access: Access | TokenScope,
    *,
    before_new_password: bool = False,
    acts_once: once.OnceForm | None = None,
) -> dict[str, Any]:
    """`opt=` for a portal handler: who may open it (refused at start if missing).
    `before_new_password`: open too while the user must still replace a password someone
    else chose (setting it, and signing out); every other page sends them there first.
    `acts_once`: the form makes a secret, and acts once per token its page gave it (see
    hub/portal/once.py)."""
    opt: dict[str, Any] = {PAGE_OPT: access.value}
    if before_new_password:
        opt[BEFORE_NEW_PASSWORD_OPT] = True
    if acts_once is not None:
        opt[once.OPT] = acts_once
    return opt


class LoginRequired(Exception):
    """No live session: go to the sign-in page."""


class TenantRequired(Exception):
    """Signed in, but working in no tenant yet: choose one."""


class TwoStepRequired(Exception):
    """The hub requires two-step sign-in, and this user has not turned it on yet."""


class NewPasswordRequired(Exception):
    """The user signed in with a password someone else chose (generated for them): they set
    their own before anything else, two-step enrolment included."""


def cookie_name(settings: Settings) -> str:
    # `__Host-`: only set over https, for this host and path /, never by a subdomain.
    return "__Host-hub_session" if settings.public_url.startswith("https://") else "hub_session"


def session_cookie(settings: Settings, value: str, *, clear: bool = False) -> Cookie:
    return Cookie(
        key=cookie_name(settings),
        value="" if clear else value,
        path="/",
        httponly=True,
        secure=settings.public_url.startswith("https://"),
        samesite="lax",
        max_age=0 if clear else None,
    )


def step_cookie(settings: Settings, value: str, *, clear: bool = False) -> Cookie:
    """The pending two-step sign-in's cookie (see hub/portal/challenge.py)."""
    secure = settings.public_url.startswith("https://")
    return Cookie(
        key=("__Host-" if secure else "") + challenge.COOKIE,
        value="" if clear else value,
        path="/",
        httponly=True,
        secure=secure,
        samesite="lax",
        max_age=0 if clear else challenge.TTL_SECONDS,
    )


def signed_of(connection: ASGIConnection[Any, Any, Any, Any]) -> service.Signed | None:
    signed: service.Signed | None = connection.scope.get("auth")
    return signed


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    """The member the page acts as (pages guarded by `Access.MEMBER` or a scope)."""
    principal: Principal | None = request.scope.get("user")
    if principal is None:
        raise TenantRequired
    return principal


class PortalMiddleware(ASGIMiddleware):
    """Find the session of the cookie (`scope["auth"]`, `scope["user"]` the member
    principal); refuse a form from another origin, or without the session's CSRF token."""

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        app = scope["litestar_app"]
        settings: Settings = app.state.settings
        request: Request[Any, Any, Any] = Request(scope, receive)
        cookie = request.cookies.get(cookie_name(settings), "")
        signed = None
        if cookie:
            database: Database = app.state.db
            async with database.transaction() as session:
                signed = await service.authenticate(
                    session, cookie, limits=service.SessionLimits.from_settings(settings)
                )
        scope["auth"] = signed
        scope["user"] = signed.principal if signed else None
        if request.method not in SAFE_METHODS:
            _check_origin(request, settings)
            # The sign-in form carries no token (there is no session yet, or the one there
            # is being replaced): its origin is checked, and it grants nothing by itself.
            if _access_of(scope) is not Access.PUBLIC:
                await _check_csrf(request, cookie if signed else "")
        async with once.settling(scope, send) as settling_send:
            await next_app(scope, receive, settling_send)


def _access_of(scope: Scope) -> Access | TokenScope | None:
    handler = scope.get("route_handler")
    value = handler.opt.get(PAGE_OPT) if handler is not None else None
    if not isinstance(value, str):
        return None
    if value in Access._value2member_map_:
        return Access(value)
    if value in TokenScope._value2member_map_:
        return TokenScope(value)
    return None


def _check_origin(request: Request[Any, Any, Any], settings: Settings) -> None:
    """A form posted from another site is refused, whatever its token (browsers send
    `Origin` on every POST; `Referer` is the fallback)."""
    offered = request.headers.get("origin") or request.headers.get("referer")
    if not offered:
        return
    parts = urlsplit(offered)
    origin = f"{parts.scheme}://{parts.netloc}"
    own = {f"{request.url.scheme}://{request.url.netloc}", settings.public_url}
    own.add(f"{urlsplit(settings.public_url).scheme}://{urlsplit(settings.public_url).netloc}")
    if origin not in own:
        raise PermissionDeniedException("This form came from another site, and was refused")


async def _check_csrf(request: Request[Any, Any, Any], cookie: str) -> None:
    offered = request.headers.get(CSRF_HEADER)
    if offered is None and request.content_type[0] in {
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }:
        value = (await request.form()).get(CSRF_FIELD)
        offered = value if isinstance(value, str) else None
    if not cookie or not service.csrf_matches(cookie, offered):
        raise PermissionDeniedException(
            "This form has expired or did not come from the portal: reload the page and try again"
        )


def require_page(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The guard of every portal route: sign in first, replace a password someone else
    chose, turn on two-step sign-in if the hub requires it, choose a tenant, hold the scope."""
    if set(getattr(handler, "http_methods", ())) == {"OPTIONS"}:
        return
    access = _access_of(connection.scope)
    if access is Access.PUBLIC:
        return
    signed = signed_of(connection)
    if signed is None:
        raise LoginRequired
    # Before two-step enrolment: a second step is not bound to an account while whoever
    # handed over its password (or saw it on the way) could still be the one signed in.
    forced = signed.user.must_change_password
    if forced and handler.opt.get(BEFORE_NEW_PASSWORD_OPT) is not True:
        raise NewPasswordRequired
    if access is Access.ENROLLING:
        return
    settings: Settings = connection.app.state.settings
    if settings.portal_require_two_step and not signed.has_two_step and not forced:
        raise TwoStepRequired
    if access is Access.SIGNED_IN:
        return
    if access is Access.OPERATOR:
        if not signed.user.is_operator:
            raise PermissionDeniedException("The console is for platform operators")
        return
    principal = signed.principal
    if principal is None:
        raise TenantRequired
    if isinstance(access, TokenScope) and access not in principal.scopes:
        role = principal.role.value if principal.role else "none"
        raise PermissionDeniedException(f"Your role ({role}) may not open this page")


def missing_page_declarations(handlers: list[BaseRouteHandler]) -> list[str]:
    return [
        handler.handler_name
        for handler in handlers
        if set(getattr(handler, "http_methods", ())) != {"OPTIONS"}
        and handler.opt.get(PAGE_OPT) not in {*Access._value2member_map_, *TokenScope}
    ]


@dataclass(frozen=True, slots=True)
class Layout:
    """What every page's frame shows: who is signed in, where, the open alerts, the menu."""

    signed: service.Signed | None
    tenant: Tenant | None
    alerts_open: int
    alerts_critical: int
    nav: list[NavItem]
    csrf: str


async def layout_of(session: AsyncSession, request: Request[Any, Any, Any]) -> Layout:
    signed = signed_of(request)
    if signed is None:
        return Layout(None, None, 0, 0, [], "")
    principal, tenant, counts = signed.principal, None, {"open": 0, "critical": 0}
    if principal is not None:
        tenant = await session.get(Tenant, principal.tenant)
        if TokenScope.ALERTS_READ in principal.scopes:
            counts = await alerts_repository.unresolved_counts(session, principal.tenant)
    nav = [item for item in NAV if item.allows(principal, signed.user.is_operator)]
    return Layout(signed, tenant, counts["open"], counts["critical"], nav, signed.csrf)


async def render(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    template: str,
    *,
    title: str,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A whole page in the layout (or, for an htmx request that asks for a part, that part:
    templates check `partial`)."""
    layout = await layout_of(session, request)
    return Template(
        template_name=template,
        context={
            "request": request,
            "layout": layout,
            "title": title,
            "path": request.url.path,
            "partial": is_htmx(request),
            "now": utcnow(),
            **context,
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


def fragment(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Template:
    """A part of a page (an htmx swap), without the layout."""
    signed = signed_of(request)
    return Template(
        template_name=template,
        context={"request": request, "csrf": signed.csrf if signed else "", **context},
        status_code=status_code,
        headers={**PAGE_HEADERS, **(headers or {})},
    )


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def go(request: Request[Any, Any, Any], path: str) -> Response[Any]:
    """After a form: to `path` (htmx follows `HX-Redirect`; a plain form a 303)."""
    if is_htmx(request):
        return Response(b"", status_code=200, headers={**PAGE_HEADERS, "HX-Redirect": path})
    return Redirect(path, status_code=303, headers=PAGE_HEADERS)


def form_errors(error: Invalid | Conflict, *, default: str = "") -> dict[str, str]:
    """A refusal as a form shows it: its message beside the field it names (`default` when
    it names none)."""
    field = error.field or default
    if isinstance(error, Invalid):
        return {field: error.reason}
    return {field: error.detail.removeprefix(f"{error.field}: ")}


# Errors as pages -------------------------------------------------------------------------


def _error_page(
    request: Request[Any, Any, Any],
    status_code: int,
    detail: str,
    *,
    heading: str = "",
    made: str | None = None,
) -> Response[Any]:
    """An error as a page, or for htmx as a message in the page (`made`: where to see what
    a form sent before made)."""
    once.forget(request.scope)  # an error answer made nothing
    if is_htmx(request):
        # Shown in the page's message area, whatever the request meant to swap or select.
        return Template(
            template_name="portal/_flash.html",
            context={"kind": "error", "message": detail, "made_href": made},
            status_code=200,
            headers={
                **PAGE_HEADERS,
                "HX-Retarget": "#flash",
                "HX-Reswap": "innerHTML",
                "HX-Reselect": "unset",
            },
        )
    signed = signed_of(request)
    return Template(
        template_name="portal/error.html",
        context={
            "request": request,
            "layout": Layout(signed, None, 0, 0, [], signed.csrf if signed else ""),
            "title": f"{status_code}",
            "status_code": status_code,
            "detail": detail,
            "heading": heading,
            "made_href": made,
            "request_id": request.scope.get("state", {}).get("request_id", ""),
            "partial": False,
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


def _to_login(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    path = "/portal/login?next=" + quote(service.safe_next(target), safe="/")
    return go(request, path)


def _to_tenants(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    return go(request, "/portal/tenants")


def _to_two_step(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    return go(request, "/portal/account/two-step")


def _to_new_password(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    return go(request, NEW_PASSWORD_PAGE)


def _domain(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    if isinstance(error, once.AlreadySent):
        return _error_page(
            request, error.status_code, error.detail, heading="Already sent", made=error.href
        )
    return _error_page(request, error.status_code, error.detail)


def _http(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    if isinstance(error, NotAuthorizedException):
        return _to_login(request, error)
    detail = error.detail
    if isinstance(error, NotFoundException):
        detail = "There is no such page, or it is not yours to see."
    return _error_page(request, error.status_code, detail)


def _internal(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.error(
        "unhandled error",
        error_class=type(error).__name__,
        path=request.url.path,
        method=request.method,
        exc_info=error,
    )
    return _error_page(request, 500, "Something went wrong on our side. It has been logged.")


def page_exception_handlers() -> dict[Any, Any]:
    return {
        LoginRequired: _to_login,
        TenantRequired: _to_tenants,
        TwoStepRequired: _to_two_step,
        NewPasswordRequired: _to_new_password,
        DomainError: _domain,
        # The app's handlers answer these (and HTTPException) in JSON: the closer layer wins.
        ValidationException: _http,
        NotAuthorizedException: _http,
        HTTPException: _http,
        500: _internal,
    }
