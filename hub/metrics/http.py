"""Requests this process answered, as Prometheus counters and a latency histogram.

Counted in a `before_send` hook, which sees every answer: a 401 from the token middleware
and a path no route matched too (middleware runs per route, so it sees neither). The route
label is the route's template (`/api/v1/keys/{key_id}`), never the path asked for, so
ids do not multiply the series; a path no route matched is `unmatched`.
"""

from __future__ import annotations

import time

from litestar.types import Message, Scope
from prometheus_client import Counter, Histogram

UNMATCHED = "unmatched"
_STARTED = "hub.metrics.started"

REQUESTS = Counter(
    "hub_http_requests",
    "HTTP requests answered, by method, route template and status code",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "hub_http_request_duration_seconds",
    "Seconds from the request's arrival to the start of its answer, by method and route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def mark_start(scope: Scope) -> None:
    """Called by the request middleware as a request arrives."""
    scope.setdefault("state", {})[_STARTED] = time.perf_counter()


async def observe_response(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    method = scope.get("method", "")
    route = scope.get("path_template") or UNMATCHED
    REQUESTS.labels(method, route, str(message["status"])).inc()
    started = scope.get("state", {}).get(_STARTED)
    if started is not None:
        LATENCY.labels(method, route).observe(time.perf_counter() - started)
