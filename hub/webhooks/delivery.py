"""Delivery: fan events out to endpoints as messages, attempt them, retry, disable.

An attempt runs in three steps so that no transaction stays open across the network:
`prepare` (claim the message with a lease, sign the body), `send` (one POST), `record`
(write the attempt and decide what follows). A worker that dies between them leaves a
pending message whose lease runs out; the sweeper enqueues it again. The receiver dedupes on
`webhook-id`, which is the message id and never changes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules as alert_rules
from hub.audit import service as audit
from hub.core import jobs
from hub.core.crypto import CryptoError
from hub.core.db import utcnow
from hub.core.ids import TenantID, uuid7
from hub.events.models import Event
from hub.events.service import record_event
from hub.settings import Settings
from hub.tenants.models import Tenant
from hub.webhooks import payloads, sender, service, signing
from hub.webhooks.guard import AddressPolicy
from hub.webhooks.limits import Limiter
from hub.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage

log = structlog.get_logger(__name__)

DELIVER = "webhooks.deliver"
ENDPOINT_DISABLED = "webhook.endpoint_disabled"


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    retry_delays: tuple[int, ...]
    disable_after: timedelta
    timeout_seconds: float
    http_hosts: frozenset[str]
    address_policy: AddressPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            retry_delays=settings.webhook_retry_delays,
            disable_after=timedelta(days=settings.webhook_disable_after_days),
            timeout_seconds=settings.webhook_timeout_seconds,
            http_hosts=settings.webhook_http_hosts,
            address_policy=AddressPolicy(settings.webhook_allow_private_networks),
        )

    @property
    def lease(self) -> timedelta:
        """How long an attempt in flight keeps its message from every other worker."""
        return timedelta(seconds=self.timeout_seconds + 30)

    def create_session(self) -> aiohttp.ClientSession:
        return sender.create_session(self.address_policy, timeout_seconds=self.timeout_seconds)


def deliver_job(message_id: UUID, *, cause: str | None = None) -> jobs.Job:
    """The job for one message; `cause` makes a distinct job id (a resend, a kick)."""
    suffix = f":{cause}" if cause else ""
    return jobs.Job(DELIVER, (str(message_id),), job_id=f"{DELIVER}:{message_id}{suffix}")


# Fan-out --------------------------------------------------------------------------------


def contracts_named(payload: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    single, many = payload.get("contract"), payload.get("contracts")
    if isinstance(single, str):
        found.add(single.upper())
    if isinstance(many, list):
        found.update(str(c).upper() for c in many)
    return found


def matches(event_types: Sequence[str], contracts: Sequence[str], event: Event) -> bool:
    """Subscribed to the type, and about one of the contracts (events naming no contract,
    such as `webhook.test`, pass the contract filter)."""
    if not any(fnmatchcase(event.type, pattern) for pattern in event_types):
        return False
    if not contracts:
        return True
    named = contracts_named(event.payload)
    return not named or not named.isdisjoint(contracts)


async def fan_out(session: AsyncSession, event: Event) -> None:
    """The outbox handler for every event: one message per matching enabled endpoint.

    Idempotent: an event dispatched twice finds its messages and makes none again. Runs for
    every event, so it reads columns and inserts rows without loading entities."""
    if event.tenant_id is None:
        return
    tenant = TenantID(event.tenant_id)
    candidates = await session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.contracts).where(
            WebhookEndpoint.tenant_id == tenant, WebhookEndpoint.is_enabled.is_(True)
        )
    )
    targets = [row.id for row in candidates if matches(row.event_types, row.contracts, event)]
    if not targets:
        return
    existing = set(
        (
            await session.scalars(
                select(WebhookMessage.endpoint_id).where(WebhookMessage.event_id == event.id)
            )
        ).all()
    )
    now = utcnow()
    rows = [
        {
            "id": uuid7(),
            "tenant_id": tenant,
            "endpoint_id": endpoint_id,
            "event_id": event.id,
            "event_type": event.type,
            "status": MessageStatus.PENDING,
            "attempts": 0,
            "schedule_start": 0,
            "next_attempt_at": now,
        }
        for endpoint_id in targets
        if endpoint_id not in existing
    ]
    if rows:
        await session.execute(insert(WebhookMessage), rows)
        for row in rows:
            jobs.enqueue(session, deliver_job(row["id"]))


def add_message(session: AsyncSession, endpoint: WebhookEndpoint, event: Event) -> WebhookMessage:
    message = WebhookMessage(
        tenant_id=endpoint.tenant_id,
        endpoint_id=endpoint.id,
        event_id=event.id,
        event_type=event.type,
        status=MessageStatus.PENDING,
        next_attempt_at=utcnow(),
    )
    session.add(message)
    jobs.enqueue(session, deliver_job(message.id))
    return message


# One attempt ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    """A signed request, ready to send outside any transaction."""

    message_id: UUID
    endpoint_id: UUID
    tenant_id: UUID
    url: str
    body: bytes
    headers: dict[str, str]
    is_ordered: bool = False
    was_failing: bool = False  # the endpoint had a run of failures when this was prepared
    refusal: str | None = None  # an error class: do not send at all


@dataclass(frozen=True, slots=True)
class Step:
    """What the job does next: send `prepared`, or come back in `wait` seconds, or stop."""

    prepared: Prepared | None = None
    wait: float | None = None


def _for_update(session: AsyncSession, statement: Any) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return statement  # every SQLite transaction already holds the write lock
    return statement.with_for_update(of=WebhookMessage)


async def prepare(
    session: AsyncSession,
    message_id: UUID,
    *,
    policy: DeliveryPolicy,
    limiter: Limiter,
    now: datetime | None = None,
) -> Step:
    now = now or utcnow()
    row = (
        await session.execute(
            _for_update(
                session,
                select(WebhookMessage, WebhookEndpoint, Event, Tenant.slug)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookMessage.endpoint_id)
                .join(Event, Event.id == WebhookMessage.event_id)
                .join(Tenant, Tenant.id == WebhookMessage.tenant_id)
                .where(WebhookMessage.id == message_id),
            )
        )
    ).one_or_none()
    if row is None or row[0].status is not MessageStatus.PENDING:
        return Step()
    message, endpoint, event, slug = row
    due = message.next_attempt_at
    if due is not None and due > now:
        return Step(wait=(due - now).total_seconds())
    if not endpoint.is_enabled:
        _finish(message, MessageStatus.FAILED, "EndpointDisabled")
        return Step()
    if endpoint.is_ordered and await _earlier_pending(session, message):
        return Step()  # parked: the earlier message's completion enqueues this one
    wait = await limiter.acquire(
        endpoint.id,
        message.id,
        concurrency=endpoint.max_concurrency,
        per_second=endpoint.rate_limit_per_second,
        lease=policy.lease.total_seconds(),
    )
    if wait > 0:
        return Step(wait=wait)
    try:
        prepared = await _sign(session, message, endpoint, event, slug, policy=policy, now=now)
    except CryptoError as error:
        # The secret cannot be opened (the tenant was offboarded and its keys shredded, or
        # the value was tampered with): retrying cannot help, so the message fails.
        await limiter.release(endpoint.id, message.id)
        log.error(
            "webhook secret unusable", endpoint_id=str(endpoint.id), error=type(error).__name__
        )
        _finish(message, MessageStatus.FAILED, type(error).__name__)
        return Step()
    except BaseException:
        await limiter.release(endpoint.id, message.id)
        raise
    await session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.id == message.id)
        .values(next_attempt_at=now + policy.lease)
        .execution_options(synchronize_session=False)
    )
    return Step(prepared=prepared)


async def _earlier_pending(session: AsyncSession, message: WebhookMessage) -> bool:
    earlier = await session.scalar(
        select(WebhookMessage.id)
        .where(
            WebhookMessage.endpoint_id == message.endpoint_id,
            WebhookMessage.status == MessageStatus.PENDING,
            WebhookMessage.event_id < message.event_id,
        )
        .limit(1)
    )
    return earlier is not None


async def _sign(
    session: AsyncSession,
    message: WebhookMessage,
    endpoint: WebhookEndpoint,
    event: Event,
    slug: str,
    *,
    policy: DeliveryPolicy,
    now: datetime,
) -> Prepared:
    body = payloads.body_of(event, slug, include_phi=endpoint.include_phi)
    keys = await service.signing_keys(session, endpoint, now=now)
    # The receiver checks the timestamp against its own clock: always the real time.
    timestamp = int(time.time())
    signature = signing.signature_header(
        keys, message_id=str(message.id), timestamp=timestamp, body=body
    )
    parts = urlsplit(endpoint.url)
    refusal = None
    if parts.scheme != "https" and (parts.hostname or "").lower() not in policy.http_hosts:
        refusal = "InsecureUrl"  # http was allowed when registered, and no longer is
    return Prepared(
        message_id=message.id,
        endpoint_id=endpoint.id,
        tenant_id=message.tenant_id,
        is_ordered=endpoint.is_ordered,
        was_failing=endpoint.failing_since is not None,
        url=endpoint.url,
        body=body,
        headers=sender.headers_for(
            message_id=str(message.id), timestamp=timestamp, signature=signature
        ),
        refusal=refusal,
    )


async def send(http: aiohttp.ClientSession, prepared: Prepared) -> sender.SendResult:
    if prepared.refusal is not None:
        return sender.SendResult(None, 0, None, prepared.refusal)
    return await sender.post(http, prepared.url, body=prepared.body, headers=prepared.headers)


async def record(
    session: AsyncSession,
    prepared: Prepared,
    result: sender.SendResult,
    *,
    policy: DeliveryPolicy,
    now: datetime | None = None,
) -> float | None:
    """Write the attempt and decide what follows: seconds until the next try, or None."""
    now = now or utcnow()
    if result.is_success:
        await _record_success(session, prepared, result, now=now)
        return None
    message = await session.scalar(
        _for_update(session, select(WebhookMessage).where(WebhookMessage.id == prepared.message_id))
    )
    endpoint = await session.get(WebhookEndpoint, prepared.endpoint_id)
    if message is None or endpoint is None:
        return None  # deleted while the request was in flight
    message.attempts += 1
    message.last_attempt_at = now
    session.add(_attempt(message, result))
    return await _after_failure(session, message, endpoint, result, policy=policy, now=now)


async def _record_success(
    session: AsyncSession, prepared: Prepared, result: sender.SendResult, *, now: datetime
) -> None:
    """The common case in plain statements (no unit-of-work flush): the busiest path."""
    number = await session.scalar(
        update(WebhookMessage)
        .where(WebhookMessage.id == prepared.message_id)
        .values(
            attempts=WebhookMessage.attempts + 1,
            last_attempt_at=now,
            status=MessageStatus.SUCCEEDED,
            delivered_at=now,
            next_attempt_at=None,
            last_error=None,
        )
        .returning(WebhookMessage.attempts)
        .execution_options(synchronize_session=False)
    )
    if number is None:
        return  # deleted while the request was in flight
    await session.execute(
        insert(WebhookAttempt).values(
            tenant_id=prepared.tenant_id,
            message_id=prepared.message_id,
            endpoint_id=prepared.endpoint_id,
            number=number,
            status_code=result.status_code,
            duration_ms=result.duration_ms,
            response_body=result.response_body,
            error_class=None,
            is_success=True,
        )
    )
    if prepared.was_failing:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == prepared.endpoint_id)
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
    if prepared.is_ordered:
        await _kick_next(session, prepared.endpoint_id, prepared.message_id, number)


def _attempt(message: WebhookMessage, result: sender.SendResult) -> WebhookAttempt:
    return WebhookAttempt(
        tenant_id=message.tenant_id,
        message_id=message.id,
        endpoint_id=message.endpoint_id,
        number=message.attempts,
        status_code=result.status_code,
        duration_ms=result.duration_ms,
        response_body=result.response_body,
        error_class=result.error_class,
        is_success=result.is_success,
    )


def _finish(message: WebhookMessage, status: MessageStatus, error: str | None) -> None:
    message.status, message.last_error = status, error
    message.next_attempt_at = None


async def _after_failure(
    session: AsyncSession,
    message: WebhookMessage,
    endpoint: WebhookEndpoint,
    result: sender.SendResult,
    *,
    policy: DeliveryPolicy,
    now: datetime,
) -> float | None:
    error = result.error_class or "Failed"
    if not endpoint.is_enabled:  # disabled while this attempt was in flight
        _finish(message, MessageStatus.FAILED, error)
        return None
    if result.status_code == 410:
        _finish(message, MessageStatus.FAILED, error)
        await disable_endpoint(session, endpoint, reason="the receiver answered 410 Gone", now=now)
        return None
    endpoint.failing_since = endpoint.failing_since or now
    if now - endpoint.failing_since >= policy.disable_after:
        _finish(message, MessageStatus.FAILED, error)
        since = endpoint.failing_since.isoformat(timespec="seconds")
        await disable_endpoint(session, endpoint, reason=f"failing since {since}", now=now)
        return None
    position = message.attempts - message.schedule_start
    if position >= len(policy.retry_delays):
        _finish(message, MessageStatus.FAILED, error)
        if endpoint.is_ordered:
            await _kick_next(session, endpoint.id, message.id, message.attempts)
        return None
    delay = float(policy.retry_delays[position])
    if result.retry_after is not None:
        delay = result.retry_after
    message.last_error = error
    message.next_attempt_at = now + timedelta(seconds=delay)
    return delay


async def _kick_next(
    session: AsyncSession, endpoint_id: UUID, message_id: UUID, attempts: int
) -> None:
    """On an ordered endpoint, enqueue the message that waited for this one."""
    following = await session.scalar(
        select(WebhookMessage.id)
        .where(
            WebhookMessage.endpoint_id == endpoint_id,
            WebhookMessage.status == MessageStatus.PENDING,
            WebhookMessage.id != message_id,
        )
        .order_by(WebhookMessage.event_id)
        .limit(1)
    )
    if following is not None:
        jobs.enqueue(session, deliver_job(following, cause=f"after:{message_id}:{attempts}"))


# Disabling ------------------------------------------------------------------------------


async def disable_endpoint(
    session: AsyncSession, endpoint: WebhookEndpoint, *, reason: str, now: datetime
) -> None:
    """Stop delivering to the endpoint: its pending messages fail, and an alert is raised."""
    endpoint.is_enabled = False
    endpoint.disabled_at, endpoint.disabled_reason = now, reason[:200]
    await session.execute(
        update(WebhookMessage)
        .where(
            WebhookMessage.endpoint_id == endpoint.id,
            WebhookMessage.status == MessageStatus.PENDING,
        )
        .values(status=MessageStatus.FAILED, last_error="EndpointDisabled", next_attempt_at=None)
        .execution_options(synchronize_session="fetch")
    )
    await audit.record(
        session,
        actor=audit.Actor.system("webhooks"),
        action="webhook.endpoint_disabled",
        tenant_id=endpoint.tenant_id,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        details={"reason": reason[:200]},
    )
    await raise_endpoint_disabled_alert(session, endpoint, reason=reason, now=now)
    await alert_rules.on_endpoint_disabled(session, endpoint, reason=reason, now=now)


async def raise_endpoint_disabled_alert(
    session: AsyncSession, endpoint: WebhookEndpoint, *, reason: str, now: datetime
) -> Event:
    """Tell the tenant the endpoint was disabled: a `webhook.endpoint_disabled` event in the
    outbox, in this transaction. The alerts domain hooks in here (or subscribes to the
    event) to raise its alert."""
    log.warning("webhook endpoint disabled", endpoint_id=str(endpoint.id), reason=reason)
    return record_event(
        session,
        TenantID(endpoint.tenant_id),
        ENDPOINT_DISABLED,
        {
            "endpoint_id": str(endpoint.id),
            "host": urlsplit(endpoint.url).hostname or "",
            "description": endpoint.description,
            "reason": reason,
            "disabled_at": now.isoformat().replace("+00:00", "Z"),
        },
        occurred_at=now,
    )
