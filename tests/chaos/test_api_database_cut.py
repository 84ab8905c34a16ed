"""The web process's PostgreSQL connections reset (a restart, a failover): the pool notices
at checkout and opens new ones, so the next requests are answered, not failed; the
readiness check, which may race the reset, tries once more on a new connection."""

from __future__ import annotations

import asyncio

import pytest

from hub.app import create_app
from hub.core.crypto import Crypto
from hub.core.db import Database, create_engine
from hub.settings import Settings
from tests.chaos.proxy import running_proxy
from tests.support import RecordingQueue, app_client


async def test_requests_after_a_database_reset_are_answered(
    settings: Settings, crypto: Crypto, redis: object
) -> None:
    url = settings.effective_database_url
    if not url.startswith("postgresql"):
        pytest.skip("the embedded SQLite file has no connection to cut")
    async with running_proxy(url) as proxy:
        engine = create_engine(proxy.url_for(url), pool_size=4)
        database = Database(engine, RecordingQueue(), crypto=crypto)
        try:
            app = create_app(settings, database=database, redis=redis)
            async with app_client(app) as client:
                for _ in range(3):  # a few pooled connections
                    assert (await client.get("/readyz")).status_code == 200
                assert proxy.cut() >= 2
                # At once, before the loop has read the resets: the pool has not noticed,
                # and the probe's first try fails; its second, on a new connection, passes.
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                await asyncio.sleep(0.1)  # the resets read: the pool drops them at checkout
                for _ in range(3):
                    ready = await client.get("/readyz")
                    assert ready.status_code == 200, ready.text
                answer = await client.get("/api/v1/keys")  # a real route, its own checkout
                assert answer.status_code == 401  # no token: answered, not a 500
                assert proxy.accepted >= 2, "connected again"
        finally:
            await engine.dispose()
