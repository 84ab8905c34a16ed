"""create_app(settings): plugins, routes, error mapping — no logic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from hub import __version__
from hub.alerts.api import AlertController
from hub.audit.api import AuditController
from hub.auth.api import AuthController
from hub.auth.guards import BearerTokenMiddleware, missing_scope_declarations, require_scope
from hub.complaints.api import ComplaintController
from hub.core import jobs
from hub.core import redis as hub_redis
from hub.core.crypto import Crypto
from hub.core.db import Database
from hub.core.errors import exception_handlers
from hub.core.web import (
    ClosedStructSchemaPlugin,
    RequestContextMiddleware,
    add_security_headers,
    healthz,
    provide_principal,
    provide_session,
    readyz,
)
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.events.api import EventController
from hub.gateway import passthrough as gateway
from hub.gateway.api import GatewayController, KeyTokenController
from hub.keys.api import ContractController, KeyController
from hub.keys.service import KeyVerifier
from hub.keys.verify import CtmVerifier
from hub.metrics.api import metrics
from hub.metrics.http import observe_response
from hub.portal import routes as portal
from hub.portal.templates import template_config
from hub.reports.api import ReportController
from hub.settings import Settings
from hub.syncs.api import SyncController
from hub.webhooks.api import WebhookController

API_PREFIX = "/api/v1"
API_CONTROLLERS: list[type[Any]] = [
    AuthController,
    EventController,
    AuditController,
    KeyController,
    ContractController,
    WebhookController,
    AlertController,
    ComplaintController,
    SyncController,
    ReportController,
    KeyTokenController,
    GatewayController,
]


class MisconfiguredRoutes(RuntimeError):
    pass


def _api_router() -> Router:
    router = Router(
        API_PREFIX,
        route_handlers=API_CONTROLLERS,
        middleware=[DefineMiddleware(BearerTokenMiddleware)],
        guards=[require_scope],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
        security=[{"BearerToken": []}],
    )
    return router


def _check_scopes(app: Litestar) -> None:
    handlers: list[BaseRouteHandler] = [
        handler
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith(API_PREFIX)
        for handler in route.route_handlers
    ]
    missing = missing_scope_declarations(handlers)
    if missing:
        raise MisconfiguredRoutes(f"API handlers declare no scope: {', '.join(sorted(missing))}")


def _attach(state: State, database: Database, redis: Any) -> None:
    queue = jobs.ArqQueue(redis)
    database.queue = database.queue or queue
    state.db, state.redis, state.queue = database, redis, queue


def create_app(
    settings: Settings,
    *,
    database: Database | None = None,
    redis: Any | None = None,
    ctm_verifier: KeyVerifier | None = None,
    ctm_clients: Mapping[CtmEnvironment, CtmClient] | None = None,
) -> Litestar:
    """The web application. Tests pass their own `database`, `redis` (and a `ctm_verifier`
    and the gateway's `ctm_clients` on the CTM simulator); otherwise the lifespan builds
    them from `settings` and closes them at shutdown."""

    state = State({"settings": settings, "ctm_verifier": ctm_verifier})
    if ctm_clients is not None:
        state.ctm_clients = ctm_clients
    if database is not None and redis is not None:
        # Handed in (tests): usable at once, even by a client that runs no lifespan.
        _attach(state, database, redis)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if "db" in app.state:
            yield
            return
        client = redis or await hub_redis.connect(settings.effective_redis_url)
        db = database or Database.from_url(settings.effective_database_url)
        if db.crypto is None:
            db.crypto = Crypto.from_settings(settings)  # loads the master key ring
        _attach(app.state, db, client)
        verifier = CtmVerifier(settings) if ctm_verifier is None else None
        if verifier is not None:
            app.state.ctm_verifier = verifier
        try:
            yield
        finally:
            if verifier is not None:
                await verifier.aclose()
            if database is None:
                await db.dispose()
            if redis is None:
                await client.aclose()

    @asynccontextmanager
    async def gateway_clients(app: Litestar) -> AsyncIterator[None]:
        """The CTM gateway's clients, one per environment, unless handed in (not closed)."""
        if "ctm_clients" in app.state:
            yield
            return
        app.state.ctm_clients = gateway.open_clients(settings)
        try:
            yield
        finally:
            await gateway.close_clients(app.state.ctm_clients)

    app = Litestar(
        route_handlers=[healthz, readyz, metrics, _api_router(), *portal.routers()],
        dependencies={"db_session": Provide(provide_session)},
        exception_handlers=exception_handlers(),
        middleware=[RequestContextMiddleware()],
        before_send=[add_security_headers, observe_response],
        lifespan=[lifespan, gateway_clients],
        plugins=[ClosedStructSchemaPlugin()],
        template_config=template_config(),
        state=state,
        openapi_config=OpenAPIConfig(
            title="CTM Hub",
            version=__version__,
            path="/schema",
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(
                        type="http", scheme="bearer", description="A hub API token (hub_…)"
                    )
                }
            ),
        ),
        logging_config=None,  # hub.core.logging configures logging once per process
        debug=False,
    )
    _check_scopes(app)
    portal.check_pages(app)
    return app
