"""Every query of this domain starts here, from the caller's verified tenant."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.errors import NotFound
from hub.core.ids import TenantID
from hub.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage


def endpoints(tenant_id: TenantID) -> Select[WebhookEndpoint]:
    return select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)


def messages(tenant_id: TenantID) -> Select[WebhookMessage]:
    return select(WebhookMessage).where(WebhookMessage.tenant_id == tenant_id)


async def get_endpoint(
    session: AsyncSession, tenant_id: TenantID, endpoint_id: UUID, *, for_update: bool = False
) -> WebhookEndpoint:
    statement = endpoints(tenant_id).where(WebhookEndpoint.id == endpoint_id)
    if for_update and session.get_bind().dialect.name != "sqlite":
        statement = statement.with_for_update()
    endpoint = await session.scalar(statement)
    if endpoint is None:
        raise NotFound("webhook_endpoint", endpoint_id)
    return endpoint


async def list_endpoints(session: AsyncSession, tenant_id: TenantID) -> Sequence[WebhookEndpoint]:
    return (await session.scalars(endpoints(tenant_id).order_by(WebhookEndpoint.id))).all()


async def get_message(
    session: AsyncSession, tenant_id: TenantID, message_id: UUID
) -> WebhookMessage:
    message = await session.scalar(messages(tenant_id).where(WebhookMessage.id == message_id))
    if message is None:
        raise NotFound("webhook_message", message_id)
    return message


async def list_messages(
    session: AsyncSession,
    tenant_id: TenantID,
    endpoint_id: UUID,
    *,
    status: MessageStatus | None = None,
    after: UUID | None = None,
    limit: int = 100,
) -> Sequence[WebhookMessage]:
    """The endpoint's messages oldest first; `after` pages on the (time-ordered) id."""
    statement = messages(tenant_id).where(WebhookMessage.endpoint_id == endpoint_id)
    if status is not None:
        statement = statement.where(WebhookMessage.status == status)
    if after is not None:
        statement = statement.where(WebhookMessage.id > after)
    return (await session.scalars(statement.order_by(WebhookMessage.id).limit(limit))).all()


async def list_attempts(
    session: AsyncSession, tenant_id: TenantID, message_id: UUID
) -> Sequence[WebhookAttempt]:
    statement = select(WebhookAttempt).where(
        WebhookAttempt.tenant_id == tenant_id, WebhookAttempt.message_id == message_id
    )
    return (await session.scalars(statement.order_by(WebhookAttempt.number))).all()
