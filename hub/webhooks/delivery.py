"""Delivery: fan events out to endpoints as messages, decide retries, disable endpoints.

Messages are sent by the drainer (`hub.webhooks.drain`): one worker at a time per
endpoint claims a batch of due messages with a lease, sends them outside any transaction,
and records every attempt in one transaction. Fan-out wakes the endpoints it gave new
messages; the receiver dedupes on `webhook-id`, which is the message id and never changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
import structlog
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules as alert_rules
from hub.audit import service as audit
from hub.core import jobs
from hub.core.db import postgres, utcnow, zulu
from hub.core.ids import TenantID, uuid7
from hub.events.models import Event
from hub.events.service import EventFacts, record_event
from hub.settings import Settings
from hub.webhooks import sender
from hub.webhooks.guard import AddressPolicy
from hub.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage

log = structlog.get_logger(__name__)

DRAIN = "webhooks.drain"
DELIVER = "webhooks.deliver"  # the job of one message, before drains (still accepted)
ENDPOINT_DISABLED = "webhook.endpoint_disabled"
# session.info key: when the caller set it (to a set), fan-out adds the endpoints it gave
# messages to it and the caller wakes them after the commit; otherwise fan-out enqueues
# drain jobs itself.
WAKE_AFTER_COMMIT = "hub.webhooks.wake"
_WAKE_ID = "hub.webhooks.wake_id"


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
    def send_window(self) -> float:
        """Seconds after a claim within which a batch may start a request (then it stops,
        and what it did not send is released)."""
        return 25.0

    @property
    def lease(self) -> timedelta:
        """How long a claimed batch keeps its messages from every other drainer: the send
        window, one request's timeout, and a margin to record the attempts."""
        return timedelta(seconds=self.send_window + self.timeout_seconds + 30)

    def create_session(self) -> aiohttp.ClientSession:
        return sender.create_session(self.address_policy, timeout_seconds=self.timeout_seconds)


def drain_job(endpoint_id: UUID, *, cause: str, defer: float | None = None) -> jobs.Job:
    """A drain of one endpoint. `cause` makes the job id: a drain job may be running when a
    new wake-up comes, so each wake-up gets an id of its own (the drain lock keeps one
    drainer per endpoint); deferred wake-ups for the same second share one."""
    return jobs.Job(
        DRAIN,
        (str(endpoint_id),),
        job_id=f"{DRAIN}:{endpoint_id}:{cause}",
        defer_by=None if defer is None else timedelta(seconds=defer),
    )


def wake_later(session: AsyncSession, endpoint_ids: set[UUID] | Sequence[UUID]) -> None:
    """Get the endpoints drained once this transaction commits."""
    collected: set[UUID] | None = session.info.get(WAKE_AFTER_COMMIT)
    if collected is not None:
        collected.update(endpoint_ids)
        return
    token = session.info.setdefault(_WAKE_ID, str(uuid7()))
    for endpoint_id in endpoint_ids:
        jobs.enqueue(session, drain_job(endpoint_id, cause=token))


def collect_wakes(session: AsyncSession) -> set[UUID]:
    """Take the wake-ups of this transaction's fan-out over: the caller wakes them."""
    collected: set[UUID] = session.info.setdefault(WAKE_AFTER_COMMIT, set())
    return collected


# Fan-out --------------------------------------------------------------------------------


def contracts_named(payload: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    single, many = payload.get("contract"), payload.get("contracts")
    if isinstance(single, str):
        found.add(single.upper())
    if isinstance(many, list):
        found.update(str(c).upper() for c in many)
    return found


def matches(event_types: Sequence[str], contracts: Sequence[str], event: EventFacts) -> bool:
    """Subscribed to the type, and about one of the contracts (events naming no contract,
    such as `webhook.test`, pass the contract filter)."""
    if not any(fnmatchcase(event.type, pattern) for pattern in event_types):
        return False
    if not contracts:
        return True
    named = contracts_named(event.payload)
    return not named or not named.isdisjoint(contracts)


async def fan_out(session: AsyncSession, event: Event) -> None:
    """The outbox handler for one event (see `fan_out_many`)."""
    await fan_out_many(session, [event])


async def fan_out_many(session: AsyncSession, events: Sequence[EventFacts]) -> None:
    """The outbox handler: one message per event and matching enabled endpoint.

    Idempotent: an event dispatched twice finds its messages and makes none again. Runs for
    every event, so it reads columns and inserts rows without loading entities: one query
    for each tenant's endpoints, one for messages already made, one insert."""
    by_tenant: dict[UUID, list[EventFacts]] = defaultdict(list)
    for event in events:
        if event.tenant_id is not None:
            by_tenant[event.tenant_id].append(event)
    pairs: list[tuple[EventFacts, UUID]] = []
    for tenant_id, group in by_tenant.items():
        candidates = (
            await session.execute(
                select(
                    WebhookEndpoint.id, WebhookEndpoint.event_types, WebhookEndpoint.contracts
                ).where(
                    WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.is_enabled.is_(True)
                )
            )
        ).all()
        pairs.extend(_matching(group, candidates))
    if pairs:
        await _insert_messages(session, pairs)


def _matching(
    events: Sequence[EventFacts], endpoints: Sequence[Any]
) -> list[tuple[EventFacts, UUID]]:
    """`matches` for every (event, endpoint) pair: the endpoints subscribed to an event type
    are found once per type, split into those for every contract and those for some, by
    contract; each event then looks up only its own contracts."""
    routes: dict[str, tuple[list[UUID], dict[str, list[UUID]], list[UUID]]] = {}
    pairs: list[tuple[EventFacts, UUID]] = []
    for event in events:
        route = routes.get(event.type)
        if route is None:
            route = routes[event.type] = _route(event.type, endpoints)
        unfiltered, by_contract, filtered = route
        pairs.extend((event, endpoint_id) for endpoint_id in unfiltered)
        if not filtered:
            continue
        named = contracts_named(event.payload)
        if not named:  # about no contract: the contract filter lets it through
            pairs.extend((event, endpoint_id) for endpoint_id in filtered)
        elif len(named) == 1:
            pairs.extend(
                (event, endpoint_id) for endpoint_id in by_contract.get(next(iter(named)), ())
            )
        else:
            chosen = {e for contract in named for e in by_contract.get(contract, ())}
            pairs.extend((event, endpoint_id) for endpoint_id in filtered if endpoint_id in chosen)
    return pairs


def _route(
    event_type: str, endpoints: Sequence[Any]
) -> tuple[list[UUID], dict[str, list[UUID]], list[UUID]]:
    """The endpoints subscribed to `event_type`: those without a contract filter, those
    with one by contract, and those with one."""
    unfiltered: list[UUID] = []
    by_contract: dict[str, list[UUID]] = defaultdict(list)
    filtered: list[UUID] = []
    for endpoint in endpoints:
        if not any(fnmatchcase(event_type, pattern) for pattern in endpoint.event_types):
            continue
        if not endpoint.contracts:
            unfiltered.append(endpoint.id)
            continue
        filtered.append(endpoint.id)
        for contract in dict.fromkeys(endpoint.contracts):
            by_contract[contract].append(endpoint.id)
    return unfiltered, by_contract, filtered


async def _insert_messages(session: AsyncSession, pairs: list[tuple[EventFacts, UUID]]) -> None:
    """One INSERT for all; a message already made (the event dispatched twice) is skipped
    by the unique (event, endpoint) constraint."""
    now = utcnow()
    if postgres.is_postgres(session):
        await _insert_messages_postgres(session, pairs, now=now)
        wake_later(session, {endpoint_id for _, endpoint_id in pairs})
        return
    rows = [
        {
            "id": uuid7(),
            "tenant_id": event.tenant_id,
            "endpoint_id": endpoint_id,
            "event_id": event.id,
            "event_type": event.type,
            "status": MessageStatus.PENDING,
            "attempts": 0,
            "schedule_start": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for event, endpoint_id in pairs
    ]
    statement = sqlite_insert(_messages_table()).on_conflict_do_nothing(
        index_elements=["event_id", "endpoint_id"]
    )
    await session.execute(statement, rows)
    wake_later(session, {endpoint_id for _, endpoint_id in pairs})


_INSERT_MESSAGES = """
INSERT INTO webhook_messages (id, tenant_id, endpoint_id, event_id, event_type, status,
                              attempts, schedule_start, next_attempt_at, created_at, updated_at)
SELECT m.id, m.tenant_id, m.endpoint_id, m.event_id, m.event_type, $6, 0, 0, $7, $7, $7
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[])
     AS m(id, tenant_id, endpoint_id, event_id, event_type)
ON CONFLICT (event_id, endpoint_id) DO NOTHING
"""


async def _insert_messages_postgres(
    session: AsyncSession, pairs: list[tuple[EventFacts, UUID]], *, now: datetime
) -> None:
    """The same INSERT with each column in one array parameter: a fan-out of hundreds of
    events is one small statement, not a parameter set per row."""
    connection = await postgres.driver(session)
    await connection.execute(
        _INSERT_MESSAGES,
        [uuid7() for _ in pairs],
        [event.tenant_id for event, _ in pairs],
        [endpoint_id for _, endpoint_id in pairs],
        [event.id for event, _ in pairs],
        [event.type for event, _ in pairs],
        MessageStatus.PENDING.value,
        now,
    )


def _messages_table() -> Table:
    table: Table = WebhookMessage.__table__  # type: ignore[assignment]
    return table


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
    wake_later(session, [endpoint.id])
    return message


# After a failed attempt ---------------------------------------------------------------


def finish(message: WebhookMessage, status: MessageStatus, error: str | None) -> None:
    message.status, message.last_error = status, error
    message.next_attempt_at = None


async def after_failure(
    session: AsyncSession,
    message: WebhookMessage,
    endpoint: WebhookEndpoint,
    result: sender.SendResult,
    *,
    policy: DeliveryPolicy,
    now: datetime,
) -> float | None:
    """Decide what follows a failed attempt: seconds until the next try, or None (the
    message failed for good, or the endpoint was disabled)."""
    error = result.error_class or "Failed"
    if not endpoint.is_enabled:  # disabled while this attempt was in flight
        finish(message, MessageStatus.FAILED, error)
        return None
    if result.status_code == 410:
        finish(message, MessageStatus.FAILED, error)
        await disable_endpoint(session, endpoint, reason="the receiver answered 410 Gone", now=now)
        return None
    endpoint.failing_since = endpoint.failing_since or now
    if now - endpoint.failing_since >= policy.disable_after:
        finish(message, MessageStatus.FAILED, error)
        since = endpoint.failing_since.isoformat(timespec="seconds")
        await disable_endpoint(session, endpoint, reason=f"failing since {since}", now=now)
        return None
    position = message.attempts - message.schedule_start
    if position >= len(policy.retry_delays):
        finish(message, MessageStatus.FAILED, error)
        return None
    # Never sooner than the receiver asked (Retry-After), nor than the schedule says: a
    # short Retry-After would otherwise use up the whole schedule within seconds.
    delay = max(float(policy.retry_delays[position]), result.retry_after or 0.0)
    message.last_error = error
    message.next_attempt_at = now + timedelta(seconds=delay)
    return delay


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
            "reason": reason[:200],
            "disabled_at": zulu(now),
        },
        occurred_at=now,
    )
