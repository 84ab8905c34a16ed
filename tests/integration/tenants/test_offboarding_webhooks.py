"""Offboarding stops the tenant's webhook endpoints (their signing secrets are shredded with
its keys); a tenant that is not active serves no sync even with a key left active; and PHI
leaves the hub only on a token that holds tenant:admin."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth.models import Role, Scope, User
from hub.auth.principal import member_principal
from hub.core.db import utcnow
from hub.core.errors import Forbidden
from hub.events.models import Event
from hub.events.service import record_event
from hub.keys.models import ApiKey
from hub.syncs import service as syncs
from hub.tenants import service as tenants
from hub.tenants.models import Tenant, TenantStatus
from hub.webhooks import service as webhooks
from hub.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from hub.webhooks.schemas import EndpointCreate
from tests.integration.tenants.test_review_s5 import operator, tenant_with_key
from tests.integration.webhooks.support import principal_of, rules
from tests.support import Member, make_member

__all__ = ["operator"]  # the fixture, used by name


async def endpoint_with_pending(
    session: AsyncSession, admin: Member, url: str
) -> tuple[WebhookEndpoint, WebhookMessage]:
    endpoint, _ = await webhooks.create_endpoint(
        session, principal_of(admin), data=EndpointCreate(url=url, event_types=["*"]),
        rules=rules(),
    )  # fmt: skip
    event = record_event(session, admin.tenant_id, "webhook.test", {"note": "x"})
    await session.flush()
    message = WebhookMessage(
        tenant_id=endpoint.tenant_id, endpoint_id=endpoint.id,
        event_id=event.id, event_type=event.type, next_attempt_at=utcnow(),
    )  # fmt: skip
    session.add(message)
    await session.flush()
    return endpoint, message


class TestOffboardingWebhooks:
    async def test_endpoints_are_disabled_audited_and_their_messages_failed(
        self, session: AsyncSession, operator: User
    ) -> None:
        doomed, doomed_admin, _ = await tenant_with_key(session, "doomed")
        _, kept_admin, _ = await tenant_with_key(session, "kept")
        gone, gone_message = await endpoint_with_pending(
            session, doomed_admin, "https://hooks.doomed.example/x"
        )
        kept, kept_message = await endpoint_with_pending(
            session, kept_admin, "https://hooks.kept.example/x"
        )
        events_before = await session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
        await tenants.offboard_tenant(session, tenant=doomed, operator=operator)
        for row in (gone, gone_message, kept, kept_message):
            await session.refresh(row)
        assert (gone.is_enabled, gone.disabled_reason) == (False, "tenant offboarded")
        assert gone.disabled_at is not None
        assert (gone_message.status, gone_message.last_error) == (
            MessageStatus.FAILED,
            "EndpointDisabled",
        )
        assert kept.is_enabled, "another tenant's endpoint is untouched"
        assert kept_message.status is MessageStatus.PENDING
        [entry] = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "webhook.endpoint_disabled",
                    AuditEntry.target_id == str(gone.id),
                )
            )
        ).all()
        assert entry.actor_label == operator.email
        assert entry.details == {"reason": "tenant offboarded"}
        newer = (await session.scalars(select(Event.type).where(Event.id > events_before))).all()
        assert "webhook.endpoint_disabled" not in newer, "nobody is left to tell"


class TestServingPairs:
    async def test_a_tenant_not_active_serves_no_sync_even_with_an_active_key(
        self, session: AsyncSession
    ) -> None:
        odd, _, odd_key = await tenant_with_key(session, "odd")
        _, _, kept_key = await tenant_with_key(session, "fine")
        # As a half-finished offboarding (or a hand edit) could leave it: its key active.
        await session.execute(
            update(Tenant).where(Tenant.id == odd.id).values(status=TenantStatus.OFFBOARDED)
        )
        assert (await session.get(ApiKey, odd_key.id)) is not None
        served = {pair.key_id for pair in await syncs.serving_pairs(session)}
        assert odd_key.id not in served
        assert kept_key.id in served


class TestIncludePhiNeedsTenantAdminScope:
    async def test_an_admins_narrow_token_may_not_send_phi(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        tenant, admin, _ = await tenant_with_key(session, "narrow")
        deployer = await make_member(
            session, tenant, email="deploy@narrow.example", role=Role.ADMIN,
            scopes=frozenset({Scope.WEBHOOKS_MANAGE}),
        )  # fmt: skip
        await session.commit()
        body = {"url": "https://hooks.narrow.example/x", "event_types": ["*"]}
        refused = await client.post(
            "/api/v1/webhooks/endpoints", json=body | {"include_phi": True},
            headers=deployer.headers,
        )  # fmt: skip
        assert refused.status_code == 403, refused.text
        assert "tenant:admin" in refused.text
        plain = await client.post("/api/v1/webhooks/endpoints", json=body, headers=deployer.headers)
        assert plain.status_code == 201, plain.text
        ident = plain.json()["endpoint"]["id"]
        patched = await client.patch(
            f"/api/v1/webhooks/endpoints/{ident}", json={"include_phi": True},
            headers=deployer.headers,
        )  # fmt: skip
        assert patched.status_code == 403
        allowed = await client.patch(
            f"/api/v1/webhooks/endpoints/{ident}", json={"include_phi": True},
            headers=admin.headers,
        )  # fmt: skip
        assert allowed.status_code == 200, allowed.text

    async def test_the_service_refuses_it_too(self, session: AsyncSession) -> None:
        _, admin, _ = await tenant_with_key(session, "narrow2")
        narrow = member_principal(
            user_id=admin.user.id, email=admin.user.email, tenant_id=admin.tenant.id,
            role=Role.ADMIN, scopes=frozenset({Scope.WEBHOOKS_MANAGE}),
        )  # fmt: skip
        data = EndpointCreate(url="https://hooks.example/x", event_types=["*"], include_phi=True)
        with pytest.raises(Forbidden, match="tenant:admin"):
            await webhooks.create_endpoint(session, narrow, data=data, rules=rules())
