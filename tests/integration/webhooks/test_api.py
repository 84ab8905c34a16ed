"""/api/v1/webhooks: create (secret shown once), read, change, rotate, messages, attempts,
resend, recover, test, delete; clear 4xx answers naming the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth.models import Role, Scope
from hub.auth.principal import member_principal
from hub.core.db import utcnow
from hub.core.errors import Forbidden, Invalid
from hub.webhooks import service
from hub.webhooks.models import WebhookEndpoint
from hub.webhooks.schemas import EndpointCreate
from tests.integration.webhooks.support import principal_of, rules
from tests.support import Member, RecordingQueue

BASE = "/api/v1/webhooks"


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "url": "https://hooks.plan-a.example/ctm",
        "description": "case management",
        "event_types": ["complaint.*", "sync.failed"],
        "contracts": ["h1234"],
        **overrides,
    }


async def create(client: httpx.AsyncClient, admin: Member, **overrides: Any) -> dict[str, Any]:
    response = await client.post(f"{BASE}/endpoints", json=body(**overrides), headers=admin.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestCreate:
    async def test_secret_is_shown_once_and_stored_sealed(
        self, client: httpx.AsyncClient, admin: Member, session: AsyncSession
    ) -> None:
        created = await create(client, admin)
        secret, endpoint = created["secret"], created["endpoint"]
        assert secret.startswith("whsec_")
        assert endpoint["contracts"] == ["H1234"]
        assert endpoint["include_phi"] is False
        assert endpoint["is_enabled"] is True
        listed = await client.get(f"{BASE}/endpoints", headers=admin.headers)
        one = await client.get(f"{BASE}/endpoints/{endpoint['id']}", headers=admin.headers)
        for response in (listed, one):
            assert response.status_code == 200
            assert secret not in response.text
            assert 'secret"' not in response.text.replace("previous_secret_expires_at", "")
        stored = await session.get(WebhookEndpoint, UUID(endpoint["id"]))
        assert stored is not None
        assert secret.encode() not in stored.secret.token
        assert repr(stored.secret) == "***"

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"url": "http://hooks.plan-a.example/ctm"}, "url"),
            ({"url": "https://user:pw@hooks.plan-a.example/"}, "url"),
            ({"url": "https://224.0.0.9/"}, "url"),
            ({"url": "https://169.254.169.254/latest"}, "url"),
            ({"event_types": ["Complaint Created"]}, "event_types[0]"),
            ({"event_types": ["bogus.type"]}, "event_types[0]"),  # never sent: never matches
            ({"event_types": ["complaint.*", "complaint.bogus"]}, "event_types[1]"),
            ({"event_types": ["bogus.*"]}, "event_types[0]"),
            ({"event_types": []}, "event_types"),
            ({"contracts": ["H12"]}, "contracts"),
            ({"contracts": ["12345"]}, "contracts[0]"),
            ({"max_concurrency": 0}, "max_concurrency"),
            ({"description": "ours\x00"}, "description"),  # PostgreSQL cannot store U+0000
            ({"url": "https://hooks.plan-a.example/\x00"}, "url"),
        ],
    )
    async def test_bad_input_gets_400_naming_the_field(
        self, client: httpx.AsyncClient, admin: Member, overrides: dict[str, Any], field: str
    ) -> None:
        response = await client.post(
            f"{BASE}/endpoints", json=body(**overrides), headers=admin.headers
        )
        assert response.status_code == 400, response.text
        assert field in response.text

    async def test_private_receiver_is_refused_by_default_settings(
        self, session: AsyncSession, admin: Member
    ) -> None:
        strict = rules(allow_private=False)
        with pytest.raises(Invalid, match="url"):
            await service.create_endpoint(
                session,
                principal_of(admin),
                data=EndpointCreate(url="http://127.0.0.1:9/x", event_types=["*"]),
                rules=strict,
            )


class TestIncludePhi:
    async def test_turning_it_on_is_audited(
        self, client: httpx.AsyncClient, admin: Member, session: AsyncSession
    ) -> None:
        created = await create(client, admin)
        ident = created["endpoint"]["id"]
        response = await client.patch(
            f"{BASE}/endpoints/{ident}", json={"include_phi": True}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["include_phi"] is True
        actions = (
            await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == ident))
        ).all()
        assert "webhook.endpoint_created" in actions
        assert "webhook.include_phi_enabled" in actions

    async def test_only_a_tenant_admin_may_turn_it_on(
        self, session: AsyncSession, admin: Member
    ) -> None:
        caseworker = member_principal(
            user_id=admin.user.id,
            email="cw@plan-a.example",
            tenant_id=admin.tenant.id,
            role=Role.CASEWORKER,
            scopes=frozenset({Scope.WEBHOOKS_MANAGE}),
        )
        data = EndpointCreate(url="https://hooks.example/x", event_types=["*"], include_phi=True)
        with pytest.raises(Forbidden, match="include_phi"):
            await service.create_endpoint(session, caseworker, data=data, rules=rules())


class TestLifecycle:
    async def test_a_new_url_starts_the_failing_clock_afresh(
        self, client: httpx.AsyncClient, admin: Member, session: AsyncSession
    ) -> None:
        ident = (await create(client, admin))["endpoint"]["id"]
        endpoint = await session.get(WebhookEndpoint, UUID(ident))
        assert endpoint is not None
        endpoint.failing_since = utcnow() - timedelta(days=4)  # the old address: 4 days down
        await session.commit()
        url = f"{BASE}/endpoints/{ident}"
        same = await client.patch(url, json={"description": "renamed"}, headers=admin.headers)
        assert same.status_code == 200, same.text
        await session.refresh(endpoint)
        assert endpoint.failing_since is not None, "the same address is still failing"
        moved = await client.patch(
            url, json={"url": "https://hooks2.plan-a.example/ctm"}, headers=admin.headers
        )
        assert moved.status_code == 200, moved.text
        await session.refresh(endpoint)
        assert endpoint.failing_since is None, "one failure of the new one must not disable it"

    async def test_a_nul_in_a_test_note_or_a_new_description_is_a_400_naming_it(
        self, client: httpx.AsyncClient, admin: Member
    ) -> None:
        url = f"{BASE}/endpoints/{(await create(client, admin))['endpoint']['id']}"
        tested = await client.post(f"{url}/test", json={"note": "hi\x00"}, headers=admin.headers)
        patched = await client.patch(url, json={"description": "\x00"}, headers=admin.headers)
        for response, field in ((tested, "note"), (patched, "description")):
            assert response.status_code == 400, response.text
            [problem] = response.json()["extra"]
            assert problem["key"] == field
            assert "matching regex" in problem["message"]
        messages = await client.get(f"{url}/messages", headers=admin.headers)
        assert messages.json() == []

    @pytest.mark.parametrize(
        ("window", "field", "says"),
        [
            ({"since": "2026-01-01T00:00:00"}, "since", "timezone"),  # whose midnight?
            ({"since": "0001-01-01T00:00:00+00:58"}, "since", "out of range once in UTC"),
            (
                {"since": "2026-01-01T00:00:00Z", "until": "9999-12-31T23:59:59-01:00"},
                "until",
                "out of range once in UTC",
            ),
        ],
    )
    async def test_a_recovery_window_that_is_no_moment_in_utc_is_a_400_naming_it(
        self,
        client: httpx.AsyncClient,
        admin: Member,
        window: dict[str, str],
        field: str,
        says: str,
    ) -> None:
        url = f"{BASE}/endpoints/{(await create(client, admin))['endpoint']['id']}"
        response = await client.post(f"{url}/recover", json=window, headers=admin.headers)
        assert response.status_code == 400, response.text
        [problem] = response.json()["extra"]
        assert problem["key"] == field
        assert says in problem["message"]

    async def test_patch_rotate_test_messages_attempts_resend_recover_delete(
        self, client: httpx.AsyncClient, admin: Member, queue: RecordingQueue
    ) -> None:
        created = await create(client, admin)
        ident = created["endpoint"]["id"]
        url = f"{BASE}/endpoints/{ident}"

        patched = await client.patch(
            url, json={"description": "tickets", "is_ordered": True}, headers=admin.headers
        )
        assert patched.json()["description"] == "tickets"
        assert patched.json()["is_ordered"] is True

        rotated = await client.post(f"{url}/rotate-secret", json={}, headers=admin.headers)
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["secret"] != created["secret"]
        expires = rotated.json()["endpoint"]["previous_secret_expires_at"]
        assert expires is not None

        tested = await client.post(f"{url}/test", headers=admin.headers)
        assert tested.status_code == 202, tested.text
        message = tested.json()
        assert message["event_type"] == "webhook.test"
        assert message["status"] == "pending"
        drains = [j for j in queue.sent if j.function == "webhooks.drain"]
        assert [j.args for j in drains] == [(ident,)]

        pending = await client.get(f"{url}/messages?status=pending", headers=admin.headers)
        assert [m["id"] for m in pending.json()] == [message["id"]]
        failed = await client.get(f"{url}/messages?status=failed", headers=admin.headers)
        assert failed.json() == []
        bad = await client.get(f"{url}/messages?status=lost", headers=admin.headers)
        assert bad.status_code == 400
        assert "status" in bad.text

        attempts = await client.get(
            f"{BASE}/messages/{message['id']}/attempts", headers=admin.headers
        )
        assert attempts.status_code == 200
        assert attempts.json() == []
        resend = await client.post(f"{BASE}/messages/{message['id']}/resend", headers=admin.headers)
        assert resend.status_code == 409
        assert "pending" in resend.text

        since = (utcnow() - timedelta(days=1)).isoformat()
        recovered = await client.post(
            f"{url}/recover", json={"since": since}, headers=admin.headers
        )
        assert recovered.status_code == 202
        assert recovered.json() == {"resent": 0, "has_more": False}
        no_since = await client.post(f"{url}/recover", json={}, headers=admin.headers)
        assert no_since.status_code == 400
        assert "since" in no_since.text

        disabled = await client.patch(url, json={"is_enabled": False}, headers=admin.headers)
        assert disabled.json()["is_enabled"] is False
        refused = await client.post(f"{url}/test", headers=admin.headers)
        assert refused.status_code == 409

        deleted = await client.delete(url, headers=admin.headers)
        assert deleted.status_code == 204
        gone = await client.get(url, headers=admin.headers)
        assert gone.status_code == 404
