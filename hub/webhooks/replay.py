"""Sending again: resend one message, recover an endpoint's failures, a test send, and the
sweeper that re-enqueues overdue messages (a lost job, an expired lease, a parked message)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import utcnow
from hub.core.errors import Conflict, Invalid
from hub.core.ids import TenantID
from hub.events.models import Event
from hub.webhooks import delivery, repository
from hub.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage

TEST_EVENT = "webhook.test"
SWEEP_BATCH = 500
RECOVER_LIMIT = 10_000


def _resend(session: AsyncSession, message: WebhookMessage, *, now: datetime) -> None:
    message.status, message.last_error = MessageStatus.PENDING, None
    message.next_attempt_at, message.delivered_at = now, None
    message.schedule_start = message.attempts
    delivery.wake_later(session, [message.endpoint_id])


async def _enabled_endpoint(
    session: AsyncSession, tenant_id: TenantID, endpoint_id: UUID
) -> WebhookEndpoint:
    endpoint = await repository.get_endpoint(session, tenant_id, endpoint_id)
    if not endpoint.is_enabled:
        raise Conflict("the endpoint is disabled; enable it first", field="is_enabled")
    return endpoint


async def resend(
    session: AsyncSession, tenant_id: TenantID, *, message_id: UUID, now: datetime | None = None
) -> WebhookMessage:
    """Send one message again (same `webhook-id`), with a fresh retry schedule."""
    message = await repository.get_message(session, tenant_id, message_id)
    await _enabled_endpoint(session, tenant_id, message.endpoint_id)
    if message.status is MessageStatus.PENDING:
        raise Conflict("the message is still pending delivery", field="status")
    _resend(session, message, now=now or utcnow())
    await session.flush()
    return message


def _in_utc(moment: datetime, field: str) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in the year 0 in UTC
        raise Invalid(field, "is out of range once in UTC (years 1 to 9999)") from None


@dataclass(frozen=True, slots=True)
class Recovered:
    resent: int
    has_more: bool  # the limit was reached: asking again with the same window sends the rest


async def recover(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    endpoint_id: UUID,
    since: datetime,
    until: datetime | None = None,
    now: datetime | None = None,
) -> Recovered:
    """Send again the endpoint's failed messages created since `since` (and before `until`),
    oldest event first, at most `RECOVER_LIMIT` of them at a time."""
    since = _in_utc(since, "since")
    until = _in_utc(until, "until") if until is not None else None
    await _enabled_endpoint(session, tenant_id, endpoint_id)
    statement = repository.messages(tenant_id).where(
        WebhookMessage.endpoint_id == endpoint_id,
        WebhookMessage.status == MessageStatus.FAILED,
        WebhookMessage.created_at >= since,
    )
    if until is not None:
        statement = statement.where(WebhookMessage.created_at < until)
    failed = (
        await session.scalars(statement.order_by(WebhookMessage.event_id).limit(RECOVER_LIMIT + 1))
    ).all()
    for message in failed[:RECOVER_LIMIT]:
        _resend(session, message, now=now or utcnow())
    await session.flush()
    return Recovered(min(len(failed), RECOVER_LIMIT), has_more=len(failed) > RECOVER_LIMIT)


async def send_test(
    session: AsyncSession, tenant_id: TenantID, *, endpoint_id: UUID, note: str
) -> WebhookMessage:
    """A `webhook.test` event for this one endpoint (kept in the outbox as already
    dispatched, so it goes to no other endpoint)."""
    endpoint = await _enabled_endpoint(session, tenant_id, endpoint_id)
    now = utcnow()
    event = Event(
        tenant_id=tenant_id,
        type=TEST_EVENT,
        payload={"endpoint_id": str(endpoint.id), "note": note},
        occurred_at=now,
        dispatched_at=now,
    )
    session.add(event)
    await session.flush()
    message = delivery.add_message(session, endpoint, event)
    await session.flush()
    return message


async def sweep(
    session: AsyncSession, *, older_than: timedelta, now: datetime | None = None
) -> int:
    """Drain every endpoint with a pending message overdue by `older_than` (a lost job, the
    expired lease of a dead worker); returns how many endpoints.

    Asked per endpoint (one probe of its due index each), not of the oldest overdue
    messages: one endpoint's long backlog would fill every sweep and hide the others."""
    cutoff = (now or utcnow()) - older_than
    overdue = exists().where(
        WebhookMessage.endpoint_id == WebhookEndpoint.id,
        WebhookMessage.status == MessageStatus.PENDING,
        WebhookMessage.next_attempt_at < cutoff,
    )
    statement = select(WebhookEndpoint.id).where(overdue).limit(SWEEP_BATCH)
    endpoint_ids = set((await session.scalars(statement)).all())
    delivery.wake_later(session, endpoint_ids)
    return len(endpoint_ids)


async def endpoint_of(session: AsyncSession, message_id: UUID) -> UUID | None:
    endpoint_id: UUID | None = await session.scalar(
        select(WebhookMessage.endpoint_id).where(WebhookMessage.id == message_id)
    )
    return endpoint_id
