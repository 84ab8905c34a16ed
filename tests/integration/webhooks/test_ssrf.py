"""The SSRF guard at connect time: internal addresses are refused when the request is made
(whatever the endpoint looked like when registered), and redirects are never followed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from sqlalchemy import select

from hub.core.db import Database
from hub.webhooks.models import MessageStatus, WebhookAttempt
from tests.integration.webhooks.support import Harness, Receiver, make_endpoint, policy
from tests.support import Member


@pytest.fixture
async def strict(db: Database) -> AsyncIterator[Harness]:
    """Delivery with private networks *not* allowed (the production default)."""
    http = policy(allow_private=False).create_session()
    harness = Harness(db, http, allow_private=False)
    try:
        yield harness
    finally:
        await http.close()


async def attempts(db: Database) -> list[WebhookAttempt]:
    async with db.transaction() as session:
        return list((await session.scalars(select(WebhookAttempt))).all())


class TestConnectTimeGuard:
    @pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
    async def test_loopback_receiver_is_refused_when_private_networks_are_not_allowed(
        self, db: Database, strict: Harness, admin: Member, receiver: Receiver, host: str
    ) -> None:
        # Registered while the name was acceptable; resolves to 127.0.0.1 at send time.
        async with db.transaction() as session:
            await make_endpoint(session, admin, url=f"http://{host}:{receiver.port}/hook")
        await strict.record(admin.tenant_id, "complaint.created", {})
        assert await strict.run_due() == 1
        assert receiver.hits == 0
        [attempt] = await attempts(db)
        assert attempt.status_code is None
        assert attempt.error_class == "BlockedAddress"
        assert not attempt.is_success

    async def test_the_same_receiver_is_reached_when_allowed(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        async with db.transaction() as session:
            _, secret = await make_endpoint(
                session, admin, url=f"http://localhost:{receiver.port}/"
            )
        receiver.secrets = [secret]
        await harness.record(admin.tenant_id, "complaint.created", {})
        await harness.run_due()
        assert len(receiver.received) == 1


class TestRedirects:
    async def test_a_redirect_to_an_internal_address_is_not_followed(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        internal = await Receiver().start()
        try:

            async def redirect(_: web.Request) -> web.Response:
                raise web.HTTPFound(f"{internal.url}?stolen=1")

            receiver.handler = redirect
            async with db.transaction() as session:
                endpoint, _ = await make_endpoint(session, admin, url=receiver.url)
            await harness.record(admin.tenant_id, "complaint.created", {})
            assert await harness.run_due() == 1
            assert receiver.hits == 1
            assert internal.hits == 0
            [attempt] = await attempts(db)
            assert attempt.status_code == 302
            assert not attempt.is_success
            [message] = await harness.messages(endpoint.id)
            assert message.status is MessageStatus.PENDING  # retried later, never followed
        finally:
            await internal.stop()
