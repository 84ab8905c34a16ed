"""Sending: drain one endpoint's due messages, a batch at a time.

A pass claims a batch in one transaction: each message gets a lease (its `next_attempt_at`
moves past the time the batch can take), so no other drainer takes it, and a drainer that
dies leaves it due again for the sweeper. The batch is signed and sent outside any
transaction, within the endpoint's concurrency (ordered endpoints: one at a time, in event
order, stopping at the first failure); then every attempt is recorded in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
import structlog
from sqlalchemy import Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.crypto import CryptoError
from hub.core.db import Database, postgres, utcnow
from hub.core.ids import uuid7
from hub.events.models import Event
from hub.events.service import decode_payload
from hub.tenants.models import Tenant
from hub.webhooks import delivery, payloads, sender, service, signing
from hub.webhooks.limits import Limiter
from hub.webhooks.models import MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage

log = structlog.get_logger(__name__)

BATCH_SIZE = 200
ORDERED_BATCH_SIZE = 20
# A sending runner gives its places back after this many messages or seconds (see `send`).
RUN_LENGTH = 8
HOLD_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Claimed:
    message_id: UUID
    webhook_id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """Claimed messages of one endpoint, with what it takes to sign and send them."""

    endpoint_id: UUID
    tenant_id: UUID
    url: str
    keys: tuple[bytes, ...]
    is_ordered: bool
    max_concurrency: int
    refusal: str | None  # an error class: send none of them
    messages: tuple[Claimed, ...]


@dataclass(frozen=True, slots=True)
class Claim:
    batch: Batch | None = None
    wait: float | None = None  # over the rate limit: come back in `wait` seconds


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: int = 0
    wake_in: float | None = None  # seconds until something is due again (a retry, a window)
    has_more: bool = False  # stopped at its time budget with messages perhaps still due
    stepped_aside: bool = False  # over the rate limit: `wake_in` says when to come back


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


# Claim ----------------------------------------------------------------------------------


async def claim(
    session: AsyncSession,
    endpoint_id: UUID,
    *,
    policy: delivery.DeliveryPolicy,
    limiter: Limiter,
    now: datetime,
) -> Claim:
    """Lease the endpoint's next batch of due messages and build their bodies."""
    row = (
        await session.execute(
            select(WebhookEndpoint, Tenant.slug)
            .join(Tenant, Tenant.id == WebhookEndpoint.tenant_id)
            .where(WebhookEndpoint.id == endpoint_id)
        )
    ).one_or_none()
    if row is None:
        return Claim()
    endpoint, slug = row
    if not endpoint.is_enabled:
        await _fail_due(session, endpoint.id, now=now, error="EndpointDisabled")
        return Claim()
    rows = await _lease_due(session, endpoint, now=now, until=now + policy.lease)
    if not rows:
        return Claim()
    grant = await limiter.take(
        endpoint.id, len(rows), per_second=endpoint.rate_limit_per_second, now=now.timestamp()
    )
    if grant.count < len(rows):  # over the rate limit: the rest are due again at once
        await _set(session, [r.id for r in rows[grant.count :]], next_attempt_at=now)
        rows = rows[: grant.count]
        if not rows:
            return Claim(wait=grant.wait)
    try:
        keys = await service.signing_keys(session, endpoint, now=now)
    except CryptoError as error:
        # The secret cannot be opened (the tenant was offboarded and its keys shredded, or
        # the value was tampered with): retrying cannot help, so the messages fail.
        log.error(
            "webhook secret unusable", endpoint_id=str(endpoint.id), error=type(error).__name__
        )
        await _set(
            session,
            [r.id for r in rows],
            status=MessageStatus.FAILED,
            last_error=type(error).__name__,
            next_attempt_at=None,
        )
        return Claim()
    return Claim(_batch(endpoint, slug, rows, keys, policy=policy))


def _batch(
    endpoint: WebhookEndpoint,
    slug: str,
    rows: Sequence[Any],
    keys: Sequence[bytes],
    *,
    policy: delivery.DeliveryPolicy,
) -> Batch:
    include_phi = endpoint.include_phi
    messages = tuple(
        Claimed(
            r.id,
            str(r.id),
            payloads.body_for(
                r.event_id, r.type, r.occurred_at, r.payload, slug, include_phi=include_phi
            ),
        )
        for r in rows
    )
    return Batch(
        endpoint_id=endpoint.id,
        tenant_id=endpoint.tenant_id,
        url=endpoint.url,
        keys=tuple(keys),
        is_ordered=endpoint.is_ordered,
        max_concurrency=max(1, endpoint.max_concurrency),
        refusal=_refusal(endpoint.url, policy),
        messages=messages,
    )


_CLAIMED_COLUMNS = (
    WebhookMessage.id,
    Event.id.label("event_id"),
    Event.type,
    Event.occurred_at,
    Event.payload,
)


async def _lease_due(
    session: AsyncSession, endpoint: WebhookEndpoint, *, now: datetime, until: datetime
) -> list[Any]:
    """Lease the endpoint's next due messages (their `next_attempt_at` moves to `until`)
    and read their events.

    Unordered: the longest due first, skipping rows another transaction holds; on
    PostgreSQL one `UPDATE … FROM events … RETURNING`. Ordered: the run of due messages at
    the head of the endpoint's queue in event order; a message not due (in flight, or
    waiting for its retry) holds back every later one, so the head is never skipped."""
    pending = (
        WebhookMessage.endpoint_id == endpoint.id,
        WebhookMessage.status == MessageStatus.PENDING,
    )
    if endpoint.is_ordered:
        statement = (
            select(*_CLAIMED_COLUMNS, WebhookMessage.next_attempt_at)
            .join(Event, Event.id == WebhookMessage.event_id)
            .where(*pending)
            .order_by(WebhookMessage.event_id)
            .limit(ORDERED_BATCH_SIZE)
        )
        if not _is_sqlite(session):  # every SQLite write transaction holds the lock already
            statement = statement.with_for_update(of=WebhookMessage)
        rows = list((await session.execute(statement)).all())
        due = [r.next_attempt_at is None or r.next_attempt_at <= now for r in rows]
        rows = rows[: due.index(False)] if False in due else rows
    else:
        due_ids = (
            select(WebhookMessage.id)
            .where(*pending, WebhookMessage.next_attempt_at <= now)
            .order_by(WebhookMessage.next_attempt_at)
            .limit(BATCH_SIZE)
        )
        if postgres.is_postgres(session):
            return await _lease_due_postgres(session, endpoint.id, now=now, until=until)
        if not _is_sqlite(session):
            leased = (
                update(_table(WebhookMessage))
                .where(
                    _table(WebhookMessage).c.id.in_(
                        due_ids.with_for_update(skip_locked=True).scalar_subquery()
                    ),
                    WebhookMessage.event_id == Event.id,
                )
                .values(next_attempt_at=until)
                .returning(*_CLAIMED_COLUMNS)
            )
            # Sent oldest event first (as far as a batch sent at once has an order).
            return sorted((await session.execute(leased)).all(), key=lambda r: r.event_id)
        statement = select(*_CLAIMED_COLUMNS).join(Event, Event.id == WebhookMessage.event_id)
        found = await session.execute(statement.where(WebhookMessage.id.in_(due_ids)))
        rows = sorted(found.all(), key=lambda r: r.event_id)
    if rows:
        await _set(session, [r.id for r in rows], next_attempt_at=until)
    return rows


class _Leased(NamedTuple):
    id: UUID
    event_id: UUID
    type: str
    occurred_at: datetime
    payload: Any


# `_lease_due`'s statement for an unordered endpoint, written out: the payload comes back
# as text and is decoded with msgspec, several times faster than the driver's `json.loads`.
_LEASE_DUE = """
UPDATE webhook_messages SET next_attempt_at = $1, updated_at = $2
FROM events
WHERE webhook_messages.id IN (
    SELECT id FROM webhook_messages
    WHERE endpoint_id = $3 AND status = $4 AND next_attempt_at <= $5
    ORDER BY next_attempt_at LIMIT $6 FOR UPDATE SKIP LOCKED
) AND webhook_messages.event_id = events.id
RETURNING webhook_messages.id, events.id, events.type, events.occurred_at, events.payload::text
"""


async def _lease_due_postgres(
    session: AsyncSession, endpoint_id: UUID, *, now: datetime, until: datetime
) -> list[_Leased]:
    connection = await postgres.driver(session)
    records = await connection.fetch(
        _LEASE_DUE, until, utcnow(), endpoint_id, MessageStatus.PENDING.value, now, BATCH_SIZE
    )
    rows = [_Leased(r[0], r[1], r[2], r[3], decode_payload(r[4])) for r in records]
    # Sent oldest event first (as far as a batch sent at once has an order).
    return sorted(rows, key=lambda r: r.event_id)


async def _set(session: AsyncSession, ids: Sequence[UUID], **values: Any) -> None:
    await session.execute(
        update(WebhookMessage)
        .where(postgres.among(session, WebhookMessage.id, ids))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


async def _fail_due(session: AsyncSession, endpoint_id: UUID, *, now: datetime, error: str) -> None:
    await session.execute(
        update(WebhookMessage)
        .where(
            WebhookMessage.endpoint_id == endpoint_id,
            WebhookMessage.status == MessageStatus.PENDING,
            WebhookMessage.next_attempt_at <= now,
        )
        .values(status=MessageStatus.FAILED, last_error=error, next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


def _refusal(url: str, policy: delivery.DeliveryPolicy) -> str | None:
    parts = urlsplit(url)
    if parts.scheme != "https" and (parts.hostname or "").lower() not in policy.http_hosts:
        return "InsecureUrl"  # http was allowed when registered, and no longer is
    return None


# Send -----------------------------------------------------------------------------------


class Gate:
    """What the batches a drain has in flight at once share: the endpoint's concurrency,
    and whether an answer told it to stop sending: the endpoint is gone (410), or asked
    for time (`Retry-After` on 429/503, kept in `pause`)."""

    def __init__(self, concurrency: int) -> None:
        self.limit = asyncio.Semaphore(max(1, concurrency))
        self.is_halted = False
        self.pause = 0.0

    def note(self, result: sender.SendResult) -> None:
        if result.status_code == 410 or result.retry_after is not None:
            self.is_halted = True
            self.pause = max(self.pause, result.retry_after or 0.0)


async def send(
    http: aiohttp.ClientSession,
    batch: Batch,
    *,
    window: float,
    slots: asyncio.Semaphore | None = None,
    gate: Gate | None = None,
) -> list[sender.SendResult | None]:
    """Sign and post each message; None for one not sent (the drain halted, an ordered
    batch stopped at a failure, or the send window closed before its turn). Never raises
    for a network fault."""
    if batch.refusal is not None:
        return [sender.SendResult(None, 0, None, batch.refusal) for _ in batch.messages]
    gate = gate or Gate(batch.max_concurrency)
    results: list[sender.SendResult | None] = [None] * len(batch.messages)
    closes = time.monotonic() + window
    stopped = False  # an ordered batch stops at its first failure
    signer = signing.Signer(batch.keys)

    async def post(index: int) -> bool:
        """Sign and send one message (its places held); False once the batch stops."""
        nonlocal stopped
        if gate.is_halted or stopped or time.monotonic() > closes:
            return False
        message = batch.messages[index]
        timestamp = int(time.time())  # the receiver checks it against its own clock
        signature = signer(message_id=message.webhook_id, timestamp=timestamp, body=message.body)
        headers = sender.headers_for(
            message_id=message.webhook_id, timestamp=timestamp, signature=signature
        )
        result = await sender.post(http, batch.url, body=message.body, headers=headers)
        results[index] = result
        gate.note(result)
        stopped = stopped or (batch.is_ordered and not result.is_success)
        return True

    # In message order, by as many runners as the endpoint may have requests in flight
    # (ordered: one), rather than a task per message. A runner holds its places (the
    # endpoint's and the worker's) for a run of up to RUN_LENGTH messages, or HOLD_SECONDS,
    # instead of queueing for them before each one: a worker's drains can have hundreds
    # of runners queued for its slots, and a hand-over per message cost a fifth of the
    # request's CPU. The stop checks come with the places held: waiting for them may take
    # the batch past its window, and so near the end of its lease.
    indexes = iter(range(len(batch.messages)))

    async def run() -> None:
        while True:
            async with gate.limit, slots or contextlib.nullcontext():
                given_back = time.monotonic() + HOLD_SECONDS
                for _ in range(RUN_LENGTH):
                    index = next(indexes, None)
                    if index is None or not await post(index):
                        return
                    if time.monotonic() > given_back:  # a slow receiver: let others in
                        break

    runners = 1 if batch.is_ordered else min(len(batch.messages), batch.max_concurrency)
    if runners == 1:
        await run()
    else:
        await asyncio.gather(*(run() for _ in range(runners)))
    return results


# Record ---------------------------------------------------------------------------------


async def record(
    session: AsyncSession,
    batch: Batch,
    results: Sequence[sender.SendResult | None],
    *,
    policy: delivery.DeliveryPolicy,
    now: datetime,
    pause: float = 0.0,
) -> float | None:
    """Write every attempt and decide what follows; the seconds until one of the batch's
    messages is due again, if any is. Messages not sent are released, due again after
    `pause` (or the `Retry-After` of this batch's answers).

    Idempotent for one `now`: a message whose last attempt is stamped `now` already has
    this batch's attempt (a record made again after a commit whose outcome was lost), and
    gets no second one."""
    done = list(zip(batch.messages, results, strict=True))
    succeeded = [(m, r) for m, r in done if r is not None and r.is_success]
    failed = [(m, r) for m, r in done if r is not None and not r.is_success]
    unsent = [m.message_id for m, r in done if r is None]
    if succeeded:
        await _record_successes(session, batch, succeeded, now=now)
    wake = await _record_failures(session, batch, failed, policy=policy, now=now)
    if unsent:
        # Released without an attempt: due again when the receiver asked (Retry-After),
        # else at once (an ordered batch that stopped waits behind its failed head).
        pause = max([pause, *(r.retry_after or 0.0 for _, r in failed)])
        await session.execute(
            update(WebhookMessage)
            .where(
                postgres.among(session, WebhookMessage.id, unsent),
                WebhookMessage.status == MessageStatus.PENDING,
            )
            .values(next_attempt_at=now + timedelta(seconds=pause))
            .execution_options(synchronize_session=False)
        )
        wake = _earliest(wake, pause) if pause > 0 else wake
    return wake


async def _record_successes(
    session: AsyncSession,
    batch: Batch,
    succeeded: list[tuple[Claimed, sender.SendResult]],
    *,
    now: datetime,
) -> None:
    """The common case in plain statements: one UPDATE for the messages, one INSERT for
    their attempts (on PostgreSQL, one statement for both)."""
    if postgres.is_postgres(session):
        await _record_successes_postgres(session, batch, succeeded, now=now)
    else:
        returned = await session.execute(
            update(WebhookMessage)
            .where(
                WebhookMessage.id.in_([m.message_id for m, _ in succeeded]),
                WebhookMessage.last_attempt_at.is_distinct_from(now),
            )
            .values(
                attempts=WebhookMessage.attempts + 1,
                last_attempt_at=now,
                status=MessageStatus.SUCCEEDED,
                delivered_at=now,
                next_attempt_at=None,
                last_error=None,
            )
            .returning(WebhookMessage.id, WebhookMessage.attempts)
            .execution_options(synchronize_session=False)
        )
        numbers: dict[UUID, int] = {row[0]: row[1] for row in returned}
        rows = [
            _attempt_row(batch, message.message_id, numbers[message.message_id], result, now=now)
            for message, result in succeeded
            if message.message_id in numbers  # else deleted while the request was in flight
        ]
        if rows:
            await session.execute(insert(_table(WebhookAttempt)), rows)
        # Whether or not the endpoint was failing when this batch was claimed: a batch in
        # flight beside it may have failed since.
        await session.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == batch.endpoint_id, WebhookEndpoint.failing_since.is_not(None)
            )
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )


# The attempt of each message still there (one deleted while its request was in flight has
# none) and not already recorded at this time (see `record`), numbered by the message's
# attempt count; and the endpoint's failing clock stopped (a batch in flight beside this
# one may have failed since it was claimed).
_RECORD_SUCCESSES = """
WITH working AS (
    UPDATE webhook_endpoints SET failing_since = NULL
    WHERE id = $5 AND failing_since IS NOT NULL
), done AS (
    UPDATE webhook_messages
    SET attempts = attempts + 1, last_attempt_at = $1, status = $2, delivered_at = $1,
        next_attempt_at = NULL, last_error = NULL, updated_at = $1
    WHERE id = ANY($3::uuid[]) AND last_attempt_at IS DISTINCT FROM $1
    RETURNING id, attempts
)
INSERT INTO webhook_attempts (id, tenant_id, message_id, endpoint_id, number, status_code,
                              duration_ms, response_body, error_class, is_success,
                              created_at, updated_at)
SELECT a.id, $4, done.id, $5, done.attempts, a.status_code, a.duration_ms, a.response_body,
       NULL, true, $1, $1
FROM unnest($6::uuid[], $3::uuid[], $7::int[], $8::int[], $9::text[])
     AS a(id, message_id, status_code, duration_ms, response_body)
JOIN done ON done.id = a.message_id
"""


async def _record_successes_postgres(
    session: AsyncSession,
    batch: Batch,
    succeeded: list[tuple[Claimed, sender.SendResult]],
    *,
    now: datetime,
) -> None:
    connection = await postgres.driver(session)
    await connection.execute(
        _RECORD_SUCCESSES,
        now,
        MessageStatus.SUCCEEDED.value,
        [message.message_id for message, _ in succeeded],
        batch.tenant_id,
        batch.endpoint_id,
        [uuid7() for _ in succeeded],
        [result.status_code for _, result in succeeded],
        [result.duration_ms for _, result in succeeded],
        [result.response_body for _, result in succeeded],
    )


def _attempt_row(
    batch: Batch, message_id: UUID, number: int, result: sender.SendResult, *, now: datetime
) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "tenant_id": batch.tenant_id,
        "message_id": message_id,
        "endpoint_id": batch.endpoint_id,
        "number": number,
        "status_code": result.status_code,
        "duration_ms": result.duration_ms,
        "response_body": result.response_body,
        "error_class": result.error_class,
        "is_success": result.is_success,
        "created_at": now,
        "updated_at": now,
    }


async def _record_failures(
    session: AsyncSession,
    batch: Batch,
    failed: list[tuple[Claimed, sender.SendResult]],
    *,
    policy: delivery.DeliveryPolicy,
    now: datetime,
) -> float | None:
    if not failed:
        return None
    statement = select(WebhookMessage).where(
        WebhookMessage.id.in_([m.message_id for m, _ in failed])
    )
    if not _is_sqlite(session):
        statement = statement.with_for_update()
    found = {m.id: m for m in (await session.scalars(statement)).all()}
    endpoint = await session.get(WebhookEndpoint, batch.endpoint_id)
    if endpoint is None:
        return None  # deleted while the requests were in flight
    wake = None
    for claimed, result in failed:
        message = found.get(claimed.message_id)
        if message is None:
            continue
        if message.last_attempt_at == now:  # recorded already (see `record`)
            if message.status is MessageStatus.PENDING and message.next_attempt_at is not None:
                wake = _earliest(wake, max(0.0, (message.next_attempt_at - now).total_seconds()))
            continue
        message.attempts += 1
        message.last_attempt_at = now
        session.add(
            WebhookAttempt(**_attempt_row(batch, message.id, message.attempts, result, now=now))
        )
        delay = await delivery.after_failure(
            session, message, endpoint, result, policy=policy, now=now
        )
        wake = _earliest(wake, delay)
    return wake


# The loop -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Drainer:
    """What a drain needs besides the database: the rules, the HTTP session, the rate
    limiter, and (in a worker) the slots bounding its requests in flight."""

    policy: delivery.DeliveryPolicy
    http: aiohttp.ClientSession
    limiter: Limiter
    slots: asyncio.Semaphore | None = None

    async def drain(
        self,
        db: Database,
        endpoint_id: UUID,
        *,
        clock: Callable[[], datetime] = utcnow,
        budget: float | None = None,
        keep_alive: Callable[[], Awaitable[bool]] | None = None,
    ) -> Outcome:
        """Claim, send and record batches until nothing is due (or `budget` seconds have
        passed, or `keep_alive` says the drain lock is lost)."""
        deadline = None if budget is None else time.monotonic() + budget
        sent, wake, wait = 0, None, None
        gate: Gate | None = None
        sending: tuple[Batch, asyncio.Task[list[sender.SendResult | None]]] | None = None
        finished: tuple[Batch, list[sender.SendResult | None]] | None = None
        started: tuple[Batch, asyncio.Task[list[sender.SendResult | None]]] | None = None
        try:
            while True:
                # One transaction records the batch that came back and claims the next,
                # while the batch claimed before is still being sent.
                halted = gate is not None and gate.is_halted
                more = (
                    wait is None
                    and not halted
                    and (deadline is None or time.monotonic() < deadline)
                    and (keep_alive is None or await keep_alive())
                )
                found, retry = await self._record_and_claim(
                    db, endpoint_id, finished, gate, claim_next=more, now=clock
                )
                wake, finished = _earliest(wake, retry), None
                wait = wait if found.wait is None else found.wait
                started = None
                if found.batch is not None:
                    gate = gate or Gate(found.batch.max_concurrency)
                    started = (found.batch, asyncio.create_task(self._send(found.batch, gate)))
                if sending is not None:
                    finished = (sending[0], await sending[1])
                    sent += sum(r is not None for r in finished[1])
                sending = started
                if sending is None and finished is None:
                    # Out of time (or lock): what is still due goes to a fresh drain.
                    has_more = not more and wait is None and not halted
                    return Outcome(
                        sent,
                        _earliest(wake, wait),
                        has_more=has_more,
                        stepped_aside=wait is not None,
                    )
        finally:
            for pair in (sending, started):  # cut short: their messages stay leased, and
                if pair is not None:  # are sent again when the lease runs out
                    pair[1].cancel()

    async def _record_and_claim(
        self,
        db: Database,
        endpoint_id: UUID,
        finished: tuple[Batch, list[sender.SendResult | None]] | None,
        gate: Gate | None,
        *,
        claim_next: bool,
        now: Callable[[], datetime],
    ) -> tuple[Claim, float | None]:
        """One transaction: record the batch that came back, claim the next. A database
        connection lost meanwhile (a restart, a failover) rolls it back: it is made once
        more on a new connection, rather than leave the batch, sent but not recorded, to
        be sent again once its lease runs out. Lost in the very moment of the commit, the
        first try may have been written after all: the second then finds each attempt
        already there (stamped with the same time) and writes none again."""
        pause = 0.0 if gate is None else gate.pause
        if finished is not None and pause > 0:
            # The receiver asked for time: no drain sends it anything until then.
            moment = now().timestamp()
            await self.limiter.pause(endpoint_id, until=moment + pause, now=moment)

        # The record's time is taken once, so that a second try after a commit whose
        # outcome was lost sees the attempts it already wrote (see `record`).
        recorded_at = now()

        async def record_and_claim() -> tuple[Claim, float | None]:
            found, retry = Claim(), None
            async with db.transaction() as session:
                if finished is not None:
                    retry = await record(
                        session, *finished, policy=self.policy, now=recorded_at, pause=pause
                    )
                if claim_next:
                    found = await claim(
                        session, endpoint_id, policy=self.policy, limiter=self.limiter, now=now()
                    )
            return found, retry

        return await db.again_if_disconnected(record_and_claim)

    async def _send(self, batch: Batch, gate: Gate) -> list[sender.SendResult | None]:
        return await send(
            self.http, batch, window=self.policy.send_window, slots=self.slots, gate=gate
        )
