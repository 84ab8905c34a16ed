"""A worker's database connections reset while it delivers webhooks (after some posts, before
their outcome is recorded): the batch's record is made again on a new connection, so every
message is delivered exactly once and recorded, at once. (Were the record lost for good, a
worker dying, the messages would be sent again under the same `webhook-id` once their
lease ran out: the receiver keeps the ids it has seen, as the Standard Webhooks spec asks.)"""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from sqlalchemy import func, select

from hub.core.db import Database
from hub.events.service import record_events
from hub.settings import Settings
from hub.webhooks.models import MessageStatus, WebhookMessage
from tests.chaos.proxy import FaultProxy, running_proxy
from tests.chaos.test_connections_cut import running_worker, until
from tests.integration.webhooks.support import Receiver, make_endpoint
from tests.support import make_member, make_tenant
from tests.workers.test_sync_crash import worker_env

pytestmark = pytest.mark.slow

EVENTS = 20
CUT_AT = 5  # the receiver cuts the worker's database connections as this post arrives


async def test_deliveries_cut_from_their_database_are_recorded_again_and_sent_once(
    live: Database, settings: Settings
) -> None:
    url = settings.effective_database_url
    if not url.startswith("postgresql"):
        pytest.skip("the embedded SQLite file has no connection to cut")
    posts: list[tuple[str, bytes]] = []  # (webhook-id, body) of each post
    proxy: FaultProxy | None = None

    async def handle(request: web.Request) -> web.StreamResponse:
        posts.append((request.headers["webhook-id"], await request.read()))
        print(
            "post",
            len(posts),
            round(time.monotonic() % 1000, 1),
            request.headers["webhook-id"][-6:],
        )
        if len(posts) == CUT_AT and proxy is not None:
            proxy.cut()  # the worker learns when it records what it sent
        return web.Response(text="ok")

    receiver = await Receiver(handler=handle).start()
    try:
        async with live.transaction() as session:
            owner = await make_member(
                session, await make_tenant(session, "hooks-cut"), email="a@hooks.example"
            )
            await make_endpoint(session, owner, url=receiver.url)
        async with running_proxy(url) as proxy:
            env = worker_env(settings, "http://127.0.0.1:9")  # no CMS in this test
            env.update(
                HUB_DATABASE_URL=proxy.url_for(url),
                HUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
                HUB_WEBHOOK_ALLOW_HTTP_HOSTS="127.0.0.1",
                HUB_WEBHOOK_TIMEOUT_SECONDS="1",  # the shortest lease: 25 + 1 + 30 s
            )
            async with running_worker(env) as worker:
                async with live.transaction() as session:
                    items = [
                        ("complaint.created", {"complaint_id": f"C{n}"}) for n in range(EVENTS)
                    ]
                    record_events(session, owner.tenant_id, items)

                async def all_delivered() -> bool:
                    async with live.transaction(read_only=True) as session:
                        done = await session.scalar(
                            select(func.count())
                            .select_from(WebhookMessage)
                            .where(WebhookMessage.status == MessageStatus.SUCCEEDED)
                        )
                    return done == EVENTS

                started = time.monotonic()
                await until(all_delivered, worker, "every message recorded delivered", 60)
                assert proxy.cuts == 1
                assert worker.poll() is None, "the same worker, no restart"
        async with live.transaction(read_only=True) as session:
            ids = set(map(str, await session.scalars(select(WebhookMessage.id))))
        assert {message_id for message_id, _ in posts} == ids, "each message, under its own id"
        assert len(posts) == EVENTS, "none sent twice: the record was made again, not lost"
        # Well inside the lease (56 s here) that a lost record would have waited out.
        assert time.monotonic() - started < 30
    finally:
        await receiver.stop()
