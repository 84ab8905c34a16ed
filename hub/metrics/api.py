"""`GET /metrics`: this process's request figures and the platform's state, for Prometheus.

Off unless `HUB_METRICS_TOKEN` is set; Prometheus then sends it as a bearer token
(`authorization: {credentials: …}` in its scrape config). The figures carry no secret and
no PHI, but they span every tenant, so no tenant's API token opens them.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import structlog
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, NotFoundException
from prometheus_client import REGISTRY, generate_latest

from hub.core.db import Database, utcnow
from hub.metrics import snapshot
from hub.settings import Settings

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CACHE = "metrics_snapshot"


def _check_token(settings: Settings, request: Request[Any, Any, Any]) -> None:
    expected = settings.metrics_token
    if expected is None:
        raise NotFoundException("metrics are off: set HUB_METRICS_TOKEN to serve them")
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        offered.strip().encode(), expected.encode()
    ):
        raise NotAuthorizedException(
            "metrics need the bearer token set in HUB_METRICS_TOKEN",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


async def _platform(state: State) -> bytes:
    """The platform's figures, read at most once per `CACHE_SECONDS`. A database that
    does not answer leaves `hub_metrics_snapshot_ok` at 0 (and the request figures still
    come): the scrape itself never fails for it."""
    cached: tuple[float, bytes] | None = state.get(_CACHE)
    if cached is not None and time.monotonic() - cached[0] < snapshot.CACHE_SECONDS:
        return cached[1]
    database: Database = state.db
    try:
        async with database.transaction(read_only=True) as session:
            samples = await snapshot.collect(session, state.redis, now=utcnow())
        ok = 1.0
    except Exception as error:
        log.warning("metrics snapshot failed", error=type(error).__name__)
        samples, ok = [], 0.0
    samples.append(
        snapshot.Sample(
            "hub_metrics_snapshot_ok", "1 when the platform's figures could be read", ok
        )
    )
    text = snapshot.render(samples)
    state[_CACHE] = (time.monotonic(), text)
    return text


@get("/metrics", tags=["health"], include_in_schema=False)
async def metrics(state: State, request: Request[Any, Any, Any]) -> Response[bytes]:
    _check_token(state.settings, request)
    body = generate_latest(REGISTRY) + await _platform(state)
    return Response(body, media_type=CONTENT_TYPE)
