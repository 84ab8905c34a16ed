"""Delivery on a real local receiver, every request verified by `standardwebhooks`."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import select

from hub.audit.models import AuditEntry
from hub.core import crypto
from hub.core.db import Database, utcnow
from hub.core.ids import uuid7
from hub.events.models import Event
from hub.events.service import dispatch
from hub.keys import service as keys
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.webhooks import delivery, drain, replay, service, signing
from hub.webhooks.models import (
    PREVIOUS_SECRET_FIELD,
    SECRET_FIELD,
    MessageStatus,
    WebhookAttempt,
    WebhookEndpoint,
)
from tests.integration.webhooks.support import (
    Harness,
    Receiver,
    endpoint_for,
    principal_of,
)
from tests.support import Member


class TestSignedDelivery:
    async def test_every_message_verifies_with_the_reference_library(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, event_types=["complaint.*"])
        await harness.record(admin.tenant_id, "complaint.created", {"complaint_id": "C9"}, 3)
        assert await harness.run_due() == 3
        assert receiver.refused == []
        assert len(receiver.received) == 3
        first = receiver.received[0]
        assert first.payload["type"] == "complaint.created"
        assert first.payload["tenant"] == "plan-a"
        assert first.payload["schema_version"] == 1
        assert first.payload["data"]["complaint_id"] == "C9"
        assert first.payload["timestamp"].endswith("Z")
        assert first.headers["content-type"] == "application/json"
        assert first.headers["user-agent"].startswith("CTM-Hub-Webhooks/")
        assert first.headers["webhook-signature"].startswith("v1,")
        messages = await harness.messages(endpoint.id)
        assert {m.status for m in messages} == {MessageStatus.SUCCEEDED}
        assert sorted(receiver.ids()) == sorted(str(m.id) for m in messages)

    async def test_unsubscribed_types_and_other_contracts_make_no_message(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(
            db, admin, receiver, event_types=["complaint.created"], contracts=["H1234"]
        )
        await harness.record(admin.tenant_id, "complaint.updated", {"contract": "H1234"})
        await harness.record(admin.tenant_id, "complaint.created", {"contract": "H9999"})
        await harness.record(admin.tenant_id, "complaint.created", {"contract": "H1234"})
        await harness.run_due()
        assert [r.payload["data"]["contract"] for r in receiver.received] == ["H1234"]
        assert len(await harness.messages(endpoint.id)) == 1

    async def test_a_key_event_reaches_endpoints_filtered_to_the_keys_contracts_only(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        theirs, _ = await endpoint_for(
            db, admin, receiver, event_types=["key.*"], contracts=["S5678"]
        )
        ours, _ = await endpoint_for(  # the receiver checks the last endpoint's signatures
            db, admin, receiver, event_types=["key.*"], contracts=["H1234"]
        )
        async with db.transaction() as session:
            for number in ("H1234", "S5678"):
                await keys.add_contract(session, principal_of(admin), number=number)
            key = await keys.create_key(
                session, principal_of(admin),
                data=KeyCreate(
                    environment="sandbox", key_id="K-H1234", secret="s3cret",
                    hpms_user_id="RPUSER01", technical_poc=TechnicalPoc("Pat", "p@x.example"),
                    contracts=["H1234"], verify=False,
                ),
                verifier=None,
            )  # fmt: skip
            await keys.mark_invalid(
                session, tenant_id=admin.tenant_id, key_id=key.id, reason="refused (403)"
            )
            recorded = (
                await session.scalars(select(Event.id).where(Event.type.like("key.%")))
            ).all()
        for event_id in recorded:  # as the dispatch job does after the commit
            async with db.transaction() as session:
                await dispatch(session, event_id, harness.bus)
        harness.now = max(harness.now, utcnow())
        await harness.run_due()
        delivered = {m.endpoint_id for m in await harness.messages(ours.id)}
        assert delivered == {ours.id}
        assert await harness.messages(theirs.id) == [], "a key serving only H1234"
        invalid = [r for r in receiver.received if r.payload["type"] == "key.invalid"]
        assert [r.payload["data"]["contracts"] for r in invalid] == [["H1234"]]

    async def test_fan_out_twice_makes_one_message(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        [event_id] = await harness.record(admin.tenant_id, "sync.completed", {})
        async with db.transaction() as session:
            event = await session.get(Event, event_id)
            assert event is not None
            await delivery.fan_out(session, event)
        assert len(await harness.messages(endpoint.id)) == 1

    async def test_rotation_signs_with_both_secrets_during_the_grace(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, old = await endpoint_for(db, admin, receiver)
        async with db.transaction() as session:
            _, new = await service.rotate_secret(
                session,
                principal_of(admin),
                endpoint_id=endpoint.id,
                grace=timedelta(hours=24),
                now=harness.now,
            )
        assert new != old
        assert new.startswith("whsec_")
        receiver.secrets = [old, new]  # each alone must verify the request
        await harness.record(admin.tenant_id, "key.rotated", {"key_id": "K1"})
        await harness.run_due()
        assert receiver.refused == []
        assert len(receiver.received) == 1
        assert len(receiver.received[0].headers["webhook-signature"].split(" ")) == 2

        harness.advance(hours=25)  # grace over: only the new secret signs
        receiver.secrets = [new]
        await harness.record(admin.tenant_id, "key.rotated", {"key_id": "K2"})
        await harness.run_due()
        assert receiver.refused == []
        assert len(receiver.received) == 2
        assert len(receiver.received[1].headers["webhook-signature"].split(" ")) == 1
        receiver.secrets = [old]
        await harness.record(admin.tenant_id, "key.rotated", {"key_id": "K3"})
        await harness.run_due()
        assert receiver.refused == ["WebhookVerificationError"]

    async def test_a_second_rotation_within_the_grace_keeps_the_first_secret_to_its_end(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, first = await endpoint_for(db, admin, receiver)

        async def rotate(grace: timedelta) -> str:
            async with db.transaction() as session:
                _, raw = await service.rotate_secret(
                    session, principal_of(admin), endpoint_id=endpoint.id, grace=grace,
                    now=harness.now,
                )  # fmt: skip
            return raw

        second = await rotate(timedelta(hours=24))
        harness.advance(hours=6)
        third = await rotate(timedelta(hours=24))

        async def signed_by(*secrets: str) -> int:
            receiver.secrets = list(secrets)
            before = len(receiver.received)
            await harness.record(admin.tenant_id, "key.rotated", {"key_id": "K"})
            await harness.run_due()
            assert len(receiver.received) == before + 1
            return len(receiver.received[-1].headers["webhook-signature"].split(" "))

        # Receivers still on the first secret (its grace has 18 h to go) keep verifying.
        assert await signed_by(first, second, third) == 3
        assert receiver.refused == []
        harness.advance(hours=19)  # the first secret's grace is over; the second's is not
        assert await signed_by(second, third) == 2
        assert receiver.refused == []
        receiver.secrets = [first]
        await harness.record(admin.tenant_id, "key.rotated", {"key_id": "K"})
        await harness.run_due()
        assert receiver.refused == ["WebhookVerificationError"]
        # A rotation without grace (a leak) ends every earlier secret at once.
        fourth = await rotate(timedelta(0))
        assert await signed_by(fourth) == 1

    async def test_a_previous_secret_sealed_before_there_could_be_several_still_signs(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, current = await endpoint_for(db, admin, receiver)
        old = "whsec_" + "A" * 44  # as a rotation before this change stored it: the secret
        async with db.transaction() as session:
            stored = await session.get(WebhookEndpoint, endpoint.id)
            assert stored is not None
            stored.previous_secret = await crypto.seal(
                session, old, tenant=admin.tenant_id, field=PREVIOUS_SECRET_FIELD, row=stored.id
            )
            stored.previous_secret_expires_at = harness.now + timedelta(hours=1)
            keys = await service.signing_keys(session, stored, now=harness.now)
        assert keys == [signing.secret_key(current), signing.secret_key(old)]


class TestReceiverDownThenBack:
    async def test_each_message_arrives_once_in_order_when_ordered(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, is_ordered=True)
        receiver.default_status = 503
        await harness.record(admin.tenant_id, "complaint.created", {}, 5)
        assert await harness.run_due() == 1  # the rest wait behind the first
        harness.advance(seconds=5)
        assert await harness.run_due() == 1
        harness.advance(seconds=300)
        receiver.default_status = 200
        assert await harness.run_due() == 5
        messages = await harness.messages(endpoint.id)
        assert receiver.ids() == [str(m.id) for m in messages]  # event order, once each
        assert [r.payload["data"]["n"] for r in receiver.received] == [0, 1, 2, 3, 4]
        assert [m.attempts for m in messages] == [3, 1, 1, 1, 1]

    async def test_each_message_arrives_exactly_once_when_unordered(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.default_status = 500
        await harness.record(admin.tenant_id, "complaint.created", {}, 4)
        assert await harness.run_due() == 4
        assert await harness.run_due() == 0  # nothing is due before the 5 s retry
        receiver.default_status = 200
        harness.advance(seconds=5)
        assert await harness.run_due() == 4
        harness.advance(hours=30)
        assert await harness.run_due() == 0
        messages = await harness.messages(endpoint.id)
        assert sorted(receiver.ids()) == sorted(str(m.id) for m in messages)
        assert len(set(receiver.ids())) == 4


class TestRetries:
    async def test_schedule_runs_out_then_the_message_fails(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.default_status = 400  # a 4xx other than 410 is retried like a failure
        [_] = await harness.record(admin.tenant_id, "sync.failed", {})
        for delay in (0, 5, 300, 1800, 7200, 18000, 36000, 36000):
            harness.advance(seconds=delay)
            assert await harness.run_due() == 1
        harness.advance(days=2)
        assert await harness.run_due() == 0
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.FAILED
        assert message.attempts == 8
        assert message.last_error == "HTTP400"
        async with db.transaction() as session:
            attempts = (
                await session.scalars(
                    select(WebhookAttempt).where(WebhookAttempt.message_id == message.id)
                )
            ).all()
        assert [a.status_code for a in attempts] == [400] * 8
        assert all(a.response_body == "ok" and a.error_class == "HTTP400" for a in attempts)

    async def test_retry_after_on_429_is_honoured(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.script = [429]
        receiver.reply_headers = {"Retry-After": "120"}
        await harness.record(admin.tenant_id, "sync.failed", {})
        await harness.run_due()
        [message] = await harness.messages(endpoint.id)
        assert message.next_attempt_at == harness.now + timedelta(seconds=120)
        harness.advance(seconds=119)
        assert await harness.run_due() == 0
        harness.advance(seconds=1)
        assert await harness.run_due() == 1
        assert len(receiver.received) == 1

    async def test_response_body_is_kept_to_2_kb(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        await endpoint_for(db, admin, receiver)
        receiver.reply_body = "x" * 10_000
        await harness.record(admin.tenant_id, "sync.completed", {})
        await harness.run_due()
        async with db.transaction() as session:
            attempt = await session.scalar(select(WebhookAttempt))
        assert attempt is not None
        assert attempt.is_success
        assert attempt.response_body == "x" * 2048
        assert attempt.duration_ms >= 0


class TestDisabling:
    async def test_410_gone_disables_the_endpoint(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, max_concurrency=1)
        receiver.default_status = 410
        await harness.record(admin.tenant_id, "complaint.created", {}, 2)
        assert await harness.run_due() == 1  # the batch stops: the second is not sent
        found = await harness.endpoint(endpoint.id)
        assert not found.is_enabled
        assert "410" in (found.disabled_reason or "")
        messages = await harness.messages(endpoint.id)
        assert {m.status for m in messages} == {MessageStatus.FAILED}
        [alert] = await harness.events_of_type(admin.tenant_id, "webhook.endpoint_disabled")
        assert alert.payload["endpoint_id"] == str(found.id)
        async with db.transaction() as session:
            audited = await session.scalar(
                select(AuditEntry).where(
                    AuditEntry.action == "webhook.endpoint_disabled",
                    AuditEntry.target_id == str(found.id),
                )
            )
        assert audited is not None
        assert audited.actor_label == "webhooks"
        await harness.record(admin.tenant_id, "complaint.created", {})
        assert len(await harness.messages(found.id)) == 2  # no new messages once disabled

    async def test_failing_for_n_days_disables_and_raises_the_alert(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.default_status = 500
        started = None
        for day in range(5):
            await harness.record(admin.tenant_id, "sync.failed", {"day": day})
            started = started or harness.now
            await harness.run_due()
            harness.advance(days=1)
            found = await harness.endpoint(endpoint.id)
            assert found.is_enabled
            assert found.failing_since == started
        await harness.record(admin.tenant_id, "sync.failed", {"day": 5})
        await harness.run_due()
        found = await harness.endpoint(endpoint.id)
        assert not found.is_enabled
        assert (found.disabled_reason or "").startswith("failing since")
        assert await harness.events_of_type(admin.tenant_id, "webhook.endpoint_disabled")
        messages = await harness.messages(found.id)
        assert all(m.status is MessageStatus.FAILED for m in messages)

    async def test_a_success_resets_the_failing_clock(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.script = [500]
        await harness.record(admin.tenant_id, "sync.failed", {})
        await harness.run_due()
        assert (await harness.endpoint(endpoint.id)).failing_since is not None
        harness.advance(days=4)
        await harness.run_due()
        found = await harness.endpoint(endpoint.id)
        assert found.failing_since is None
        assert found.is_enabled

    async def test_a_failure_after_the_endpoint_was_disabled_mid_flight_is_final(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        receiver.default_status = 500
        await harness.record(admin.tenant_id, "complaint.created", {})
        claimed = await harness.claim(endpoint.id)
        assert claimed.batch is not None
        async with db.transaction() as session:
            found = await session.get(WebhookEndpoint, endpoint.id)
            assert found is not None
            await delivery.disable_endpoint(session, found, reason="test", now=harness.now)
        results = await drain.send(harness.http, claimed.batch, window=5)
        async with db.transaction() as session:
            retry = await drain.record(
                session, claimed.batch, results, policy=harness.policy, now=harness.now
            )
        assert retry is None
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.FAILED
        assert message.next_attempt_at is None


class TestPhi:
    payload = {
        "complaint_id": "C1",
        "contract": "H1234",
        "phi": {"mbi": "1EG4TE5MK73", "beneficiary_name": "Pat Doe"},
        "mbi": "1EG4TE5MK73",
        "nested": [{"date_of_birth": "1950-01-01", "status": "open"}],
    }

    async def test_no_phi_unless_include_phi(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        await endpoint_for(db, admin, receiver)
        await harness.record(admin.tenant_id, "complaint.created", self.payload)
        await harness.run_due()
        [got] = receiver.received
        text = str(got.payload)
        assert "1EG4TE5MK73" not in text
        assert "Pat Doe" not in text
        assert "1950" not in text
        assert got.payload["data"]["complaint_id"] == "C1"
        assert got.payload["data"]["nested"] == [{"status": "open"}]

    async def test_include_phi_sends_it(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        await endpoint_for(db, admin, receiver, include_phi=True)
        await harness.record(admin.tenant_id, "complaint.created", self.payload)
        await harness.run_due()
        [got] = receiver.received
        assert got.payload["data"]["phi"]["mbi"] == "1EG4TE5MK73"


class TestResendAndRecover:
    async def test_resend_sends_that_one_message_again_with_the_same_id(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        _endpoint, _ = await endpoint_for(db, admin, receiver)
        await harness.record(admin.tenant_id, "complaint.created", {}, 2)
        await harness.run_due()
        first = receiver.ids()[0]
        async with db.transaction() as session:
            await replay.resend(session, admin.tenant_id, message_id=UUID(first), now=harness.now)
        assert await harness.run_due() == 1
        assert receiver.ids()[2] == first
        assert len(receiver.ids()) == 3

    async def test_recover_resends_only_failed_messages_since_the_time(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, event_types=["complaint.*"])
        receiver.default_status = 400
        harness.policy = replace(harness.policy, retry_delays=(0,))  # one attempt, then failed
        await harness.record(admin.tenant_id, "complaint.created", {"batch": "old"})
        await harness.run_due()
        since = utcnow()  # messages are stamped with the real time they were made
        await harness.record(admin.tenant_id, "complaint.created", {"batch": "new"}, 2)
        await harness.run_due()
        receiver.default_status = 200
        await harness.record(admin.tenant_id, "complaint.updated", {"batch": "ok"})
        await harness.run_due()
        assert [r.payload["data"]["batch"] for r in receiver.received] == ["ok"]
        async with db.transaction() as session:
            resent = await replay.recover(
                session,
                admin.tenant_id,
                endpoint_id=endpoint.id,
                since=since,
                now=harness.now,
            )
        assert resent == replay.Recovered(2, has_more=False)
        assert await harness.run_due() == 2
        assert [r.payload["data"]["batch"] for r in receiver.received] == ["ok", "new", "new"]
        statuses = [m.status for m in await harness.messages(endpoint.id)]
        assert statuses.count(MessageStatus.FAILED) == 1  # the old one stays failed

    async def test_recover_beyond_its_limit_says_so_and_again_sends_the_rest(
        self,
        db: Database,
        harness: Harness,
        admin: Member,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver, event_types=["complaint.*"])
        receiver.default_status = 400
        harness.policy = replace(harness.policy, retry_delays=(0,))
        since = utcnow()
        await harness.record(admin.tenant_id, "complaint.created", {"batch": "lost"}, 3)
        await harness.run_due()
        receiver.default_status = 200
        monkeypatch.setattr(replay, "RECOVER_LIMIT", 2)
        found = []
        for _ in range(3):
            async with db.transaction() as session:
                recovered = await replay.recover(
                    session, admin.tenant_id, endpoint_id=endpoint.id, since=since, now=harness.now
                )
            found.append(recovered)
            await harness.run_due()
        assert found == [
            replay.Recovered(2, has_more=True),
            replay.Recovered(1, has_more=False),
            replay.Recovered(0, has_more=False),
        ]
        assert len(receiver.received) == 3, "each lost message exactly once"


class TestUnusableSecret:
    async def test_a_secret_that_does_not_open_fails_the_message_and_sends_nothing(
        self, db: Database, harness: Harness, admin: Member, receiver: Receiver
    ) -> None:
        endpoint, _ = await endpoint_for(db, admin, receiver)
        async with db.transaction() as session:
            stored = await session.get(WebhookEndpoint, endpoint.id)
            assert stored is not None
            # Sealed for another row: moved ciphertext must not open here.
            stored.secret = await crypto.seal(
                session, "whsec_AAAA", tenant=admin.tenant_id, field=SECRET_FIELD, row=uuid7()
            )
        await harness.record(admin.tenant_id, "complaint.created", {})
        assert await harness.run_due() == 0
        [message] = await harness.messages(endpoint.id)
        assert message.status is MessageStatus.FAILED
        assert message.last_error == "SealedValueRejected"
        assert receiver.hits == 0
