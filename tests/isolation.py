"""What the tenant-isolation sweep needs to call every /api/v1 route with tenant A's objects.

`tests/integration/test_tenant_isolation.py` walks the app's route table. For each path
parameter it asks OBJECT_FACTORIES for an object of tenant A; for each route with a body it
takes REQUEST_BODIES[(method, path)]. A new route whose parameter or body is missing here
fails the sweep with a message saying what to add — so no route escapes the check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import service as auth
from hub.auth.models import Role, Scope
from hub.core.ids import TenantID
from hub.events.service import record_event
from tests.support import Member, make_member

ObjectFactory = Callable[[AsyncSession, Member], Awaitable[UUID]]


async def _membership(session: AsyncSession, owner: Member) -> UUID:
    other = await make_member(
        session, owner.tenant, email=f"member-{uuid7_hex()}@a.example", role=Role.VIEWER
    )
    return other.membership.id


async def _token(session: AsyncSession, owner: Member) -> UUID:
    issued = await auth.issue_token(
        session,
        user=owner.user,
        tenant_id=owner.tenant_id,
        scopes=frozenset({Scope.COMPLAINTS_READ}),
        name="victim",
    )
    return issued.token.id


async def _event(session: AsyncSession, owner: Member) -> UUID:
    event = record_event(session, TenantID(owner.tenant.id), "test.private", {"n": 1})
    await session.flush()
    return event.id


async def _webhook_endpoint(session: AsyncSession, owner: Member) -> UUID:
    from tests.integration.webhooks.support import make_endpoint

    endpoint, _ = await make_endpoint(session, owner, url="https://receiver.example/hook")
    return endpoint.id


async def _webhook_message(session: AsyncSession, owner: Member) -> UUID:
    from tests.integration.webhooks.support import make_delivered_message

    return (await make_delivered_message(session, owner)).id


def uuid7_hex() -> str:
    from hub.core.ids import uuid7

    return uuid7().hex[-12:]


# Path parameter name → how to make one of tenant A's objects for it.
OBJECT_FACTORIES: dict[str, ObjectFactory] = {
    "membership_id": _membership,
    "token_id": _token,
    "event_id": _event,
    "endpoint_id": _webhook_endpoint,
    "message_id": _webhook_message,
}

# (method, path template) → a valid body, so a 404 is not masked by a 400.
REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/webhooks/endpoints"): {
        "url": "https://receiver.example/hook",
        "event_types": ["complaint.*"],
    },
    ("PATCH", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}"): {"description": "probe"},
    ("POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/rotate-secret"): {},
    ("POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/recover"): {
        "since": "2020-01-01T00:00:00Z"
    },
    ("POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/test"): {},
    ("POST", "/api/v1/webhooks/messages/{message_id:uuid}/resend"): {},
    ("POST", "/api/v1/tokens"): {"name": "probe", "scopes": ["complaints:read"]},
}
