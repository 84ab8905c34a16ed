"""The web process's Redis connections reset (a Redis restart or failover): the next
request that needs Redis reconnects and is answered, rather than failing or reporting the
process unready; while Redis stays away, readiness says so by name."""

from __future__ import annotations

from hub.app import create_app
from hub.core.db import Database
from hub.core.redis import connect
from hub.settings import Settings
from tests.chaos.proxy import running_proxy
from tests.support import app_client


async def test_readiness_and_the_sign_in_throttle_ride_out_a_redis_reset(
    settings: Settings, db: Database, redis_url: str
) -> None:
    async with running_proxy(redis_url) as proxy:
        pool = await connect(proxy.url_for(redis_url))
        try:
            app = create_app(settings, database=db, redis=pool)
            async with app_client(app) as client:
                assert (await client.get("/readyz")).status_code == 200
                form = {"email": "nobody@chaos.test", "password": "not it"}
                assert (await client.post("/portal/login", data=form)).status_code == 401
                assert proxy.cut() >= 2  # the pool's connections, reset
                ready = await client.get("/readyz")
                assert ready.status_code == 200, ready.text
                # The throttle (Redis) still answers and counts: the same refusal.
                assert (await client.post("/portal/login", data=form)).status_code == 401
                assert proxy.accepted >= 2, "connected again"
                await proxy.stop()  # Redis gone for good
                gone = await client.get("/readyz")
                assert gone.status_code == 503
                assert gone.json()["extra"]["redis"] != "ok"
                assert gone.json()["extra"]["database"] == "ok"
        finally:
            await pool.aclose()
