"""Record events in the caller's transaction, dispatch them to handlers, sweep what was lost."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol, cast
from uuid import UUID

import msgspec
import structlog
from sqlalchemy import Select, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import jobs
from hub.core.db import postgres, utcnow, zulu
from hub.core.db.postgres import among
from hub.core.errors import NotFound
from hub.core.ids import TenantID, uuid7
from hub.events.models import Event

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
SWEEP_BATCH = 500

EventHandler = Callable[[AsyncSession, Event], Awaitable[None]]


class EventFacts(Protocol):
    """What a batch handler reads of each event (rows, not entities: a batch is many)."""

    @property
    def id(self) -> UUID: ...
    @property
    def tenant_id(self) -> UUID | None: ...
    @property
    def type(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


BatchHandler = Callable[[AsyncSession, Sequence[EventFacts]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Subscription:
    """Run `handler` for every event whose type matches `pattern` (`*` wildcards).

    `batch_handler`, when given, does the same for many events at once (a batch dispatch
    calls it once with all of the batch's matching events)."""

    pattern: str
    handler: EventHandler
    name: str
    batch_handler: BatchHandler | None = None


class EventBus:
    """The handlers each event type goes to; built once by the worker at start-up."""

    def __init__(self, subscriptions: Sequence[Subscription] = ()) -> None:
        self.subscriptions = tuple(subscriptions)

    def handlers_for(self, event_type: str) -> list[Subscription]:
        return [s for s in self.subscriptions if fnmatch.fnmatchcase(event_type, s.pattern)]


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """`session.begin_nested()`: its rollback drops only the jobs enqueued inside it, those
    the transaction enqueued before it stay (`hub.core.jobs` tells savepoints apart)."""
    async with session.begin_nested():
        yield


def dispatch_job(event_id: UUID) -> jobs.Job:
    return jobs.Job("events.dispatch", (str(event_id),), job_id=f"events.dispatch:{event_id}")


def record_event(
    session: AsyncSession,
    tenant_id: TenantID | None,
    type: str,
    payload: dict[str, Any],
    *,
    occurred_at: datetime | None = None,
) -> Event:
    """Add an event to the outbox in the caller's transaction; dispatch follows the commit."""
    event = Event(
        tenant_id=tenant_id,
        type=type,
        payload=payload,
        occurred_at=occurred_at or utcnow(),
    )
    session.add(event)
    jobs.enqueue(session, dispatch_job(event.id))
    return event


def dispatch_many_job(event_ids: Sequence[UUID]) -> jobs.Job:
    ids = ",".join(str(i) for i in event_ids)
    return jobs.Job("events.dispatch_many", (ids,), job_id=f"events.dispatch_many:{event_ids[0]}")


def _event_rows(
    tenant_id: TenantID | None, items: Sequence[tuple[str, dict[str, Any]]], when: datetime
) -> list[dict[str, Any]]:
    return [
        {"id": uuid7(), "tenant_id": tenant_id, "type": t, "payload": p, "occurred_at": when,
         "attempts": 0}
        for t, p in items
    ]  # fmt: skip


def record_events(
    session: AsyncSession,
    tenant_id: TenantID | None,
    items: Sequence[tuple[str, dict[str, Any]]],
    *,
    occurred_at: datetime | None = None,
) -> list[Event]:
    """Many events in the caller's transaction, dispatched by one job after the commit."""
    events = [Event(**row) for row in _event_rows(tenant_id, items, occurred_at or utcnow())]
    if events:
        session.add_all(events)
        jobs.enqueue(session, dispatch_many_job([e.id for e in events]))
    return events


async def insert_events(
    session: AsyncSession,
    tenant_id: TenantID | None,
    items: Sequence[tuple[str, dict[str, Any]]],
    *,
    occurred_at: datetime | None = None,
) -> list[UUID]:
    """Like `record_events`, written with one executemany INSERT instead of ORM objects
    (a sync on SQLite; on PostgreSQL a sync's batch statement writes its events itself)."""
    rows = _event_rows(tenant_id, items, occurred_at or utcnow())
    if not rows:
        return []
    await session.execute(insert(cast("Table", Event.__table__)), rows)
    ids = [row["id"] for row in rows]
    jobs.enqueue(session, dispatch_many_job(ids))
    return ids


def envelope(event: Event, tenant_slug: str | None) -> dict[str, Any]:
    """The public shape of an event: `{"type", "timestamp", "tenant", "data", ...}`."""
    return {
        "id": str(event.id),
        "type": event.type,
        "timestamp": zulu(event.occurred_at),
        "tenant": tenant_slug,
        "schema_version": SCHEMA_VERSION,
        "data": event.payload,
    }


async def get_event(session: AsyncSession, tenant_id: TenantID, event_id: UUID) -> Event:
    event = await session.scalar(
        select(Event).where(Event.tenant_id == tenant_id, Event.id == event_id)
    )
    if event is None:
        raise NotFound("event", event_id)
    return event


async def list_events(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    type_pattern: str | None = None,
    after: UUID | None = None,
    limit: int = 100,
) -> Sequence[Event]:
    """A tenant's events oldest first; `type_pattern` is one exact type, `domain.*` (the
    domain's types) or `*` (all), as webhook subscriptions name them; `after` pages on the
    (time-ordered) id."""
    statement = select(Event).where(Event.tenant_id == tenant_id)
    if type_pattern and type_pattern != "*":
        if type_pattern.endswith(".*"):
            domain = type_pattern[:-1]  # "key." of "key.*"
            statement = statement.where(Event.type.startswith(domain, autoescape=True))
        else:
            statement = statement.where(Event.type == type_pattern)
    if after is not None:
        statement = statement.where(Event.id > after)
    return (await session.scalars(statement.order_by(Event.id).limit(limit))).all()


async def dispatch(session: AsyncSession, event_id: UUID, bus: EventBus) -> bool:
    """Run every matching handler once; False when the event was already dispatched.

    The row is locked for the transaction so that two workers never dispatch it together;
    handlers write idempotently (keyed by the event id) in case a worker dies after they
    ran and before this commit.
    """
    statement = select(Event).where(Event.id == event_id)
    if not is_sqlite_session(session):
        statement = statement.with_for_update()
    event = await session.scalar(statement)
    if event is None:
        log.warning("event to dispatch is gone", event_id=str(event_id))
        return False
    if event.dispatched_at is not None:
        return False
    for subscription in bus.handlers_for(event.type):
        await subscription.handler(session, event)
    event.dispatched_at = utcnow()
    event.attempts += 1
    event.last_error = None
    return True


async def dispatch_each(
    session: AsyncSession, event_ids: Sequence[UUID], bus: EventBus
) -> tuple[int, list[tuple[UUID, BaseException]]]:
    """Dispatch events one at a time, each in a savepoint; returns how many were
    dispatched and those that failed (with why), left undispatched for the sweeper."""
    dispatched, failed = 0, list[tuple[UUID, BaseException]]()
    for event_id in event_ids:
        try:
            async with session.begin_nested():
                dispatched += await dispatch(session, event_id, bus)
        except Exception as error:
            failed.append((event_id, error))
    return dispatched, failed


async def dispatch_together(session: AsyncSession, event_ids: Sequence[UUID], bus: EventBus) -> int:
    """Dispatch many events at once in the caller's transaction: locked and marked
    dispatched in one statement, each subscription run once over its events (its
    `batch_handler` when it has one); returns how many. Any failure fails them all: the
    caller rolls back and falls back to `dispatch_each`."""
    if postgres.is_postgres(session):
        rows = await _take_postgres(session, _TAKE_BY_ID, list(event_ids))
    else:
        chosen = (
            select(Event.id)
            .where(Event.id.in_(event_ids), Event.dispatched_at.is_(None))
            .order_by(Event.id)
        )
        rows = await _take(session, chosen)
    return await _handle_together(session, rows, bus)


async def dispatch_pending(session: AsyncSession, bus: EventBus, *, limit: int) -> int:
    """Like `dispatch_together`, for the oldest undispatched events that no dispatch has
    tried yet and no other transaction holds (whichever job they were enqueued with)."""
    if postgres.is_postgres(session):
        rows = await _take_postgres(session, _TAKE_PENDING, limit)
    else:
        chosen = (
            select(Event.id)
            .where(Event.dispatched_at.is_(None), Event.attempts == 0)
            .order_by(Event.dispatched_at, Event.occurred_at)
            .limit(limit)
        )
        rows = await _take(session, chosen)
    return await _handle_together(session, rows, bus)


_FACTS = (Event.id, Event.tenant_id, Event.type, Event.payload)


async def _take(session: AsyncSession, chosen: Select[Any]) -> list[Any]:
    """Mark the chosen events dispatched (one UPDATE) and read their facts, in event
    order. The handlers run after it in the same transaction: if one fails, the caller
    rolls the marks back with everything else. (SQLite: every write transaction holds the
    database's one write lock already.)"""
    statement = (
        update(Event)
        .where(Event.id.in_(chosen.scalar_subquery()))
        .values(dispatched_at=utcnow(), attempts=Event.attempts + 1, last_error=None)
        .returning(*_FACTS)
        .execution_options(synchronize_session=False)
    )
    return sorted((await session.execute(statement)).all(), key=lambda row: row.id)


class _Facts(NamedTuple):
    id: UUID
    tenant_id: UUID | None
    type: str
    payload: dict[str, Any]


# PostgreSQL: the UPDATE locks what it marks; its subquery locks in one order (event id,
# or the order of ix_events_undispatched), so two batches never deadlock.
_TAKE_BY_ID = """
UPDATE events SET dispatched_at = $1, attempts = attempts + 1, last_error = NULL
WHERE id IN (
    SELECT id FROM events WHERE id = ANY($2::uuid[]) AND dispatched_at IS NULL
    ORDER BY id FOR UPDATE
)
RETURNING id, tenant_id, type, payload::text
"""
# Skipping events another transaction holds (whichever job they were enqueued with).
_TAKE_PENDING = """
UPDATE events SET dispatched_at = $1, attempts = attempts + 1, last_error = NULL
WHERE id IN (
    SELECT id FROM events WHERE dispatched_at IS NULL AND attempts = 0
    ORDER BY dispatched_at, occurred_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING id, tenant_id, type, payload::text
"""


async def _take_postgres(session: AsyncSession, statement: str, argument: Any) -> list[_Facts]:
    """`_take` in one prepared statement on the session's connection: a batch of hundreds
    of events is read without building a SQLAlchemy row for each."""
    connection = await postgres.driver(session)
    records = await connection.fetch(statement, utcnow(), argument)
    facts = (_Facts(r[0], r[1], r[2], decode_payload(r[3])) for r in records)
    return sorted(facts, key=lambda fact: fact.id)


def decode_payload(text: str) -> Any:
    """An event payload read as JSON text (PostgreSQL's `payload::text`) with msgspec,
    several times faster than the driver's `json.loads`; `json.loads` for what msgspec
    refuses (a number out of a float's range), so the result is the same either way."""
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:  # a ValidationError too
        return json.loads(text)


async def _handle_together(session: AsyncSession, rows: Sequence[Any], bus: EventBus) -> int:
    if not rows:
        return 0
    facts: Sequence[EventFacts] = rows
    entities: dict[UUID, Event] | None = None  # loaded only for handlers of one event
    for subscription in bus.subscriptions:
        matching = [e for e in facts if fnmatch.fnmatchcase(e.type, subscription.pattern)]
        if not matching:
            continue
        if subscription.batch_handler is not None:
            await subscription.batch_handler(session, matching)
            continue
        if entities is None:
            found = await session.scalars(
                select(Event).where(among(session, Event.id, [e.id for e in facts]))
            )
            entities = {e.id: e for e in found}
        for fact in matching:
            await subscription.handler(session, entities[fact.id])
    return len(facts)


async def record_failure(session: AsyncSession, event_id: UUID, error: BaseException) -> int:
    """Note a failed dispatch (in its own transaction); returns the attempts so far."""
    event = await session.get(Event, event_id)
    if event is None:
        return 0
    event.attempts += 1
    event.last_error = f"{type(error).__name__}"[:500]
    return event.attempts


async def sweep(
    session: AsyncSession, *, older_than: timedelta, now: datetime | None = None
) -> int:
    """Re-enqueue events still undispatched after `older_than` (e.g. Redis lost its queue).

    The dispatch job id is the event id, so an event whose job is still queued is not
    doubled. The least tried go first: events that fail every time are the oldest of all,
    and a batch of them alone would otherwise be all that any sweep took.
    """
    cutoff = (now or utcnow()) - older_than
    ids = (
        await session.scalars(
            select(Event.id)
            .where(Event.dispatched_at.is_(None), Event.occurred_at < cutoff)
            .order_by(Event.attempts, Event.occurred_at)
            .limit(SWEEP_BATCH)
        )
    ).all()
    for event_id in ids:
        jobs.enqueue(session, dispatch_job(event_id))
    if ids:
        log.info("outbox sweep re-enqueued events", count=len(ids))
    return len(ids)


def is_sqlite_session(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "sqlite"


__all__ = [
    "BatchHandler",
    "EventBus",
    "EventFacts",
    "EventHandler",
    "Subscription",
    "dispatch",
    "dispatch_each",
    "dispatch_job",
    "dispatch_pending",
    "dispatch_together",
    "envelope",
    "get_event",
    "list_events",
    "record_event",
    "record_failure",
    "savepoint",
    "sweep",
]
