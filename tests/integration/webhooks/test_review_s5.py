"""Review findings on delivery: each test is a defect found by review, shown on a real
receiver (or the drain's own steps) and kept fixed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hub.core.db import Database
from hub.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint
from tests.integration.webhooks.support import Harness, Receiver, make_endpoint
from tests.support import Member


async def endpoint_for(
    db: Database, admin: Member, receiver: Receiver, **options: object
) -> WebhookEndpoint:
    async with db.transaction() as session:
        endpoint, secret = await make_endpoint(session, admin, url=receiver.url, **options)
    receiver.secrets = [secret]
    return endpoint


class TestRetryAfterTooBigForAFloat:
    async def test_the_attempt_is_recorded_and_retried_after_the_cap(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # float(int("9" * 400)) overflows: the drain crashed with the message still leased,
        # so it was sent again each time the lease ran out and never recorded.
        endpoint = await endpoint_for(db, admin, receiver)
        receiver.script = [429]
        receiver.reply_headers = {"Retry-After": "9" * 400}
        await harness.record(admin.tenant_id, "sync.failed", {})
        assert await harness.run_due() == 1
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.PENDING
        assert message.attempts == 1
        assert message.last_error == "HTTP429"
        assert message.next_attempt_at == harness.now + timedelta(hours=24)


class TestResponseBodyWithANul:
    async def test_the_attempt_is_recorded(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        # PostgreSQL text refuses U+0000: recording the batch failed, the drain crashed, and
        # the message (leased) was sent again at every lease's end, never marked delivered.
        endpoint = await endpoint_for(db, admin, receiver)
        receiver.reply_body = "ok\x00done"
        await harness.record(admin.tenant_id, "sync.completed", {})
        assert await harness.run_due() == 1
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.SUCCEEDED
        async with db.transaction() as session:
            attempt = await session.scalar(
                select(WebhookAttempt).where(WebhookAttempt.message_id == message.id)
            )
        assert attempt is not None
        assert attempt.response_body == "ok\ufffddone"
