"""The portal (`/portal`, for tenants' people) and the console (`/console`, for the vendor's
operators): each domain's pages in one router, behind the session middleware and the page
guard, answering errors as pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router

from hub.alerts import portal as alerts
from hub.audit import portal as audit
from hub.auth import portal as auth
from hub.complaints import portal as complaints
from hub.core.errors import NotFound
from hub.keys import portal as keys
from hub.portal import once, pages, recovery, two_step
from hub.portal.web import (
    Access,
    PortalMiddleware,
    missing_page_declarations,
    page,
    page_exception_handlers,
    require_page,
)
from hub.reports import portal as reports
from hub.syncs import portal as syncs
from hub.tenants import portal as console
from hub.webhooks import portal as webhooks

STATIC_DIRECTORY = Path(__file__).resolve().parents[1] / "static"
PREFIXES = ("/portal", "/console")


class MisconfiguredPages(RuntimeError):
    pass


@get("/{rest:path}", opt=page(Access.SIGNED_IN))
async def no_such_page(request: Request[Any, Any, Any], rest: FromPath[str]) -> None:
    """Any other path under the prefix: a 404 page, not the API's JSON."""
    raise NotFound("page", request.url.path, detail="There is no such page.")


@get("/", include_in_schema=False, sync_to_thread=False)
def root() -> Redirect:
    return Redirect("/portal/")


def _router(path: str, handlers: list[Any]) -> Router:
    return Router(
        path,
        route_handlers=[*handlers, no_such_page],
        middleware=[PortalMiddleware()],
        # In this order: who may send the form, then whether it was sent before.
        guards=[require_page, once.claim_form],
        exception_handlers=page_exception_handlers(),
        include_in_schema=False,
    )


def routers() -> list[Any]:
    portal = [
        *pages.PAGES,
        *two_step.PAGES,
        *recovery.PAGES,
        *complaints.PAGES,
        *reports.PAGES,
        *keys.PAGES,
        *syncs.PAGES,
        *alerts.PAGES,
        *webhooks.PAGES,
        *auth.PAGES,
        *audit.PAGES,
    ]
    return [
        root,
        _router("/portal", portal),
        _router("/console", console.PAGES),
        create_static_files_router(
            path="/static", directories=[STATIC_DIRECTORY], include_in_schema=False
        ),
    ]


def check_pages(app: Litestar) -> None:
    """Refuse to start when a portal handler does not say who may open it."""
    handlers: list[BaseRouteHandler] = [
        handler
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith(PREFIXES)
        for handler in route.route_handlers
    ]
    missing = missing_page_declarations(handlers)
    if missing:
        raise MisconfiguredPages(f"portal pages declare no access: {', '.join(sorted(missing))}")
