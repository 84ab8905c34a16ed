"""Complaints: deadlines and status, and the import a sync feeds (`Importer`).

A batch costs one read of the stored fingerprints and, on PostgreSQL, one statement that
writes the new and changed complaints with their history and events (two executemany
statements and the events' insert elsewhere); an unchanged row is neither parsed nor
written. PHI is sealed as one JSON document per complaint; change detection compares keyed
hashes, never plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import operator
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple, TypeVar, cast
from uuid import UUID

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints import bulk
from hub.complaints.models import Complaint, ComplaintChange, DueBasis, ResolutionState
from hub.core import jobs, jsontext
from hub.core.crypto import TenantCipher
from hub.core.db import postgres
from hub.core.ids import TenantID, uuid7
from hub.ctm.layouts import PHI_COLUMNS
from hub.ctm.parser import ComplaintRecord, Issue, RawRow
from hub.ctm.records import Columns
from hub.events.service import dispatch_many_job, insert_events
from hub.keys.models import Environment

PHI_FIELD = "complaints.phi"
BENE_FIELD = "complaints.bene_identifier"
CONTENT_FIELD = "complaints.content"
# Columns kept as typed columns of their own (the rest of the non-PHI ones go to `fields`).
_TYPED = {
    "COMPLAINT_ID", "CONTRACT_ID", "ISSUE_LEVEL", "RECEIVED_DATE", "ASSIGNMENT_DATE",
    "RESOLUTION_DATE", "COMPLAINT_CATEGORY", "COMPLAINT_SUBCATEGORY",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Resolution timeframes (42 CFR 422.125 / 423.129): calendar days from assignment."""

    immediate_days: int = 2
    standard_days: int = 7
    due_soon: timedelta = timedelta(hours=24)


class ComplaintStatus(enum.StrEnum):
    OPEN = "open"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    RESOLVED = "resolved"  # resolved here (queued or uploading), or closed in CMS's file
    ACCEPTED = "accepted"  # CMS accepted our resolution
    REJECTED = "rejected"  # CMS refused our resolution: fix and resubmit


def due_date(
    received: date, assigned: date | None, *, immediate: bool, deadlines: Deadlines
) -> tuple[date, DueBasis]:
    """Immediate need: assignment + 2 days; anything else: + 7. Without an assignment date
    the received date stands in, and the basis says so."""
    base, basis = (assigned, DueBasis.ASSIGNMENT) if assigned else (received, DueBasis.RECEIVED)
    days = deadlines.immediate_days if immediate else deadlines.standard_days
    return base + timedelta(days=days), basis


_DEFAULT_DEADLINES = Deadlines()


def content_field(deadlines: Deadlines) -> str:
    """The field a row's fingerprint is keyed with. The due date is derived from the row
    and the timeframes: under other timeframes a stored fingerprint no longer matches, so
    the next download re-derives the due dates of the complaints it holds instead of
    skipping them as unchanged (the defaults keep the plain field, as before)."""
    days = (deadlines.immediate_days, deadlines.standard_days)
    if days == (_DEFAULT_DEADLINES.immediate_days, _DEFAULT_DEADLINES.standard_days):
        return CONTENT_FIELD
    return f"{CONTENT_FIELD}:{days[0]}:{days[1]}"


def deadline_moment(due: date) -> datetime:
    """A complaint due on a day may be resolved through the end of that day (UTC)."""
    return datetime.combine(due + timedelta(days=1), time.min, tzinfo=UTC)


def status_of(complaint: Complaint, *, now: datetime, deadlines: Deadlines) -> ComplaintStatus:
    state = complaint.resolution_state
    if state is ResolutionState.ACCEPTED:
        return ComplaintStatus.ACCEPTED
    if state in {ResolutionState.QUEUED, ResolutionState.UPLOADING}:
        return ComplaintStatus.RESOLVED
    if complaint.cms_resolution_date is not None:
        # CMS's file closes it (resolved in HPMS, say), a rejected upload of ours or not:
        # nothing is left to fix and resubmit.
        return ComplaintStatus.RESOLVED
    if state is ResolutionState.REJECTED:
        return ComplaintStatus.REJECTED
    remaining = deadline_moment(complaint.due_date) - now
    if remaining <= timedelta(0):
        return ComplaintStatus.OVERDUE
    if remaining <= deadlines.due_soon:
        return ComplaintStatus.DUE_SOON
    return ComplaintStatus.OPEN


# Ingesting a batch -----------------------------------------------------------------------


@dataclass
class BatchResult:
    new: int = 0
    changed: int = 0
    unchanged: int = 0


Completer = Callable[[list[RawRow], Collection[int]], list[ComplaintRecord]]
T = TypeVar("T")


def _plain(value: object) -> str | bool | None:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class _Stored(NamedTuple):
    """A stored complaint's id and fingerprints. A tuple: a re-sync makes one per row, and a
    frozen dataclass's `__init__` costs several times a tuple's."""

    id: UUID
    content_hash: str
    phi_hash: str


@dataclass(frozen=True, slots=True)
class _Prepared:
    record: ComplaintRecord
    split: _Split
    phi_values: tuple[str, ...]
    field_values: tuple[str, ...]
    content_hash: str
    phi_hash: str
    bene_index: str | None

    @property
    def fields(self) -> dict[str, Any]:
        """The non-PHI fields kept in clear (column -> text as written)."""
        return dict(zip(self.split.field_names, self.field_values, strict=True))

    def fields_json(self) -> str:
        return jsontext.object_text(self.split.field_keys, self.field_values)

    def phi_json(self) -> str:
        """The PHI document (sealed as one): PHI columns, and any unknown ones."""
        unknown = self.record.unknown
        extra = {"_unknown": dict(unknown)} if unknown else None
        return jsontext.object_text(self.split.phi_keys, self.phi_values, extra)


@dataclass(frozen=True, slots=True)
class _Split:
    """How a file's cells divide into PHI (sealed) and other non-typed fields (clear)."""

    columns: Columns
    phi_keys: tuple[str, ...]  # '"NAME":', each PHI column's key in the PHI document
    phi_labels: tuple[str, ...]  # "NAME\x1d": what the PHI hash prefixes each value with
    bene_at: int | None  # where BENE_IDENTIFIER is among the PHI values
    pick_phi: Callable[[list[str]], tuple[str, ...]]
    field_names: tuple[str, ...]
    field_keys: tuple[str, ...]
    pick_fields: Callable[[list[str]], tuple[str, ...]]


_SPLITS: dict[int, _Split] = {}


def _split_for(columns: Columns) -> _Split:
    split = _SPLITS.get(id(columns))
    if split is not None and split.columns is columns:
        return split
    pairs = list(zip(columns.names, columns.positions, strict=True))
    phi = [(n, p) for n, p in pairs if n in PHI_COLUMNS]
    fields = [(n, p) for n, p in pairs if n not in PHI_COLUMNS and n not in _TYPED]
    phi_names = [n for n, _ in phi]
    split = _Split(
        columns,
        jsontext.keys(phi_names),
        tuple(f"{n}\x1d" for n in phi_names),
        phi_names.index("BENE_IDENTIFIER") if "BENE_IDENTIFIER" in phi_names else None,
        _picker([p for _, p in phi]),
        tuple(n for n, _ in fields),
        jsontext.keys([n for n, _ in fields]),
        _picker([p for _, p in fields]),
    )
    if len(_SPLITS) > 64:
        _SPLITS.clear()
    _SPLITS[id(columns)] = split
    return split


def _picker(positions: list[int]) -> Callable[[list[str]], tuple[str, ...]]:
    if not positions:
        return lambda cells: ()
    if len(positions) == 1:
        only = positions[0]
        return lambda cells: (cells[only],)
    return operator.itemgetter(*positions)


def _prepare(cipher: TenantCipher, record: ComplaintRecord, content_hash: str) -> _Prepared:
    # The cells as written: non-PHI ones kept in the clear for filtering, PHI ones sealed.
    cells, split = record.cells, _split_for(record.columns)
    values = split.pick_phi(cells)
    # Unknown columns may hold anything, PHI included: they are kept, sealed, and hashed.
    unknown = _canonical(dict(record.unknown)) if record.unknown else ""
    phi_text = "\x1f".join(map(operator.add, split.phi_labels, values)) + unknown
    bene = values[split.bene_at].strip() if split.bene_at is not None else ""
    return _Prepared(
        record=record,
        split=split,
        phi_values=values,
        field_values=split.pick_fields(cells),
        content_hash=content_hash,
        phi_hash=cipher.fingerprint(phi_text, field=PHI_FIELD),
        bene_index=cipher.blind_index(bene, field=BENE_FIELD) if bene else None,
    )


def _typed_values(p: _Prepared, deadlines: Deadlines) -> dict[str, Any]:
    record = p.record
    assigned = record.date("ASSIGNMENT_DATE")
    due, basis = due_date(
        record.received_date, assigned, immediate=record.is_immediate_need, deadlines=deadlines
    )
    return {
        "issue_level": record.issue_level,
        "is_immediate_need": record.is_immediate_need,
        "received_date": record.received_date,
        "assignment_date": assigned,
        "due_date": due,
        "due_basis": basis,
        "cms_resolution_date": record.date("RESOLUTION_DATE"),
        "category": record.text("COMPLAINT_CATEGORY")[:200],
        "subcategory": record.text("COMPLAINT_SUBCATEGORY")[:200],
        "content_hash": p.content_hash,
        "phi_hash": p.phi_hash,
        "bene_index": p.bene_index,
    }


def _changed_columns(
    old: Mapping[str, Any], new: Mapping[str, Any], phi_changed: bool
) -> list[str]:
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return [*changed, "phi"] if phi_changed else changed


@dataclass
class _Writes:
    """What one batch writes: complaint rows (new and changed, each with its id), the
    columns each changed one changed, and the event about each."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    changes: dict[UUID, list[str]] = field(default_factory=dict)
    events: dict[UUID, str] = field(default_factory=dict)  # complaint id -> event type
    new: set[UUID] = field(default_factory=set)


@dataclass
class _Batch:
    """A batch of rows between arriving and being processed: their fingerprints and keys,
    and the read of what is stored for them (in flight)."""

    rows: list[RawRow]
    prints: list[str]
    keys: list[tuple[str | None, str | None]]
    counts: Counter[tuple[str | None, str | None]]
    known: set[tuple[str | None, str | None]]
    stored: asyncio.Task[dict[tuple[str | None, str | None], _Stored]] | None = None

    def may_name(self, other: _Batch) -> bool:
        """Whether this batch may name a complaint `other` names (certainly not when every
        row of `other` has a known complaint and none is one of this batch's)."""
        fully_known = len(other.known) == len(other.counts)
        return not (fully_known and self.known.isdisjoint(other.known))


class _Line:
    """The import's database work on its one connection, in the order it is asked for:
    each step starts when the one before it has ended (and fails if it failed). `run`
    returns the step's task: await it for the result, or leave it to run (a write)."""

    def __init__(self) -> None:
        self._tail: asyncio.Task[Any] | None = None

    def run(self, step: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        before = self._tail

        async def in_turn() -> T:
            if before is not None:
                await before
            return await step()

        task = asyncio.create_task(in_turn())
        self._tail = task
        return task

    async def drain(self) -> None:
        if self._tail is not None:
            await self._tail

    async def abandon(self) -> None:
        """Wait for what is running to end, its outcome dropped (the caller rolls back)."""
        tail, self._tail = self._tail, None
        if tail is not None:
            with contextlib.suppress(Exception):
                await tail


class Importer:
    """One download's complaints into the caller's transaction: `add` each batch of raw
    rows in file order, then `finish` (or `abort` after a failure). The rows a batch
    quarantines (`take_quarantined`) are stored in the database's turn
    (`store_quarantined`), as they are found.

    A row is fingerprinted as written (a keyed hash of its text) and compared with what is
    stored: a row that matches is neither parsed nor written. The others are parsed
    (`complete`), prepared (PHI sealed as one document) and written with their history and
    `complaint.created` / `complaint.updated` events.

    The database works while Python does: a batch is processed when the next one arrives,
    once the next one's stored fingerprints are read and the write of the batch before it
    is on the wire (on PostgreSQL a batch's write is one statement). A batch that may name
    a complaint of a batch not yet written is read after that one's write.
    """

    def __init__(
        self,
        session: AsyncSession,
        cipher: TenantCipher,
        *,
        tenant_id: TenantID,
        environment: Environment,
        api_key_id: UUID | None,
        complete: Completer,
        sync_run_id: UUID | None,
        now: datetime,
        deadlines: Deadlines,
        take_quarantined: Callable[[], list[Issue]] = list,
        store_quarantined: Callable[[list[Issue]], Awaitable[None]] | None = None,
        watch: Collection[tuple[str, str]] = (),
    ) -> None:
        self._session, self._cipher = session, cipher
        # (contract, complaint ID) pairs the caller asks about (a few uploads in doubt):
        # those the download delivered readable, parsed or unchanged, gather in `watched`.
        self._watch = frozenset(watch)
        self.watched: set[tuple[str, str]] = set()
        self._take_quarantined, self._store_quarantined = take_quarantined, store_quarantined
        self._tenant_id, self._api_key_id = tenant_id, api_key_id
        self._environment = environment
        self._complete, self._run, self._now = complete, sync_run_id, now
        self._deadlines = deadlines
        self._postgres = postgres.is_postgres(session)
        self._fingerprint = cipher.fingerprinter(content_field(deadlines))
        self._line = _Line()
        self._staging = False  # PostgreSQL: whether this transaction has its staging table
        self._on_wire = asyncio.Event()  # set as a write's statement goes to the database
        self._waiting: _Batch | None = None  # arrived, its read sent, not processed yet
        self._unsent: _Writes | None = None  # processed, its write not sent yet
        self._unsent_batch: _Batch | None = None
        self.layout = "current"
        self.result = BatchResult()

    async def add(self, rows: list[RawRow]) -> None:
        if not rows:
            return
        fingerprint = self._fingerprint
        keys = [(r.contract_id, r.complaint_id) for r in rows]
        counts = Counter(keys)
        batch = _Batch(
            rows, [fingerprint(r.text) for r in rows], keys, counts,
            {k for k in counts if k[1] is not None},
        )  # fmt: skip
        waiting = self._waiting
        if waiting is not None and batch.may_name(waiting):
            # This batch may name a complaint of the one before: that one is written first.
            await self._process(waiting)
            waiting = self._waiting = None
            self._send()
        elif self._unsent_batch is not None and batch.may_name(self._unsent_batch):
            self._send()
        # The read of this batch's stored fingerprints goes before the write of the batch
        # planned last (they name different complaints). With a write behind it, wait for
        # the read so that the write is on the wire before the batch waiting is processed;
        # without one (a re-sync), the read runs while it is processed.
        if waiting is not None and waiting.stored is not None:
            await waiting.stored  # back long since, as a rule: now nothing stands before
        batch.stored = self._read(batch.known)
        self._on_wire.clear()
        write = self._send()
        if write is not None and self._postgres:
            # Until the write's statement is sent (the database works while Python goes
            # on), or the write has ended: it fails without a statement if a step before
            # it failed, and the failure comes out of the next step awaited.
            on_wire = asyncio.ensure_future(self._on_wire.wait())
            await asyncio.wait({on_wire, write}, return_when=asyncio.FIRST_COMPLETED)
            on_wire.cancel()
        await asyncio.sleep(0)  # the next step's turn: it sends its statement
        if waiting is not None:
            await self._process(waiting)
        self._waiting = batch

    async def finish(self) -> BatchResult:
        """Write what is left; the counts of the whole download."""
        self._send()
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            await self._process(waiting)
        self._send()
        await self._line.drain()
        return self.result

    async def abort(self) -> None:
        """After a failure: wait out the database work in flight, its outcome dropped (the
        caller's transaction rolls back), so the connection is free again."""
        self._waiting, self._unsent, self._unsent_batch = None, None, None
        await self._line.abandon()

    def _read(
        self, keys: Collection[tuple[str | None, str | None]]
    ) -> asyncio.Task[dict[tuple[str | None, str | None], _Stored]]:
        session, tenant = self._session, self._tenant_id
        environment = self._environment
        return self._line.run(lambda: _stored_hashes(session, tenant, environment, keys))

    def _send(self) -> asyncio.Task[None] | None:
        """Put the planned batch's write in line (it runs while Python goes on); its task,
        if there was one."""
        writes, self._unsent, self._unsent_batch = self._unsent, None, None
        if writes is None or not writes.rows:
            return None
        return self._line.run(lambda: self._write(writes))

    async def _process(self, batch: _Batch) -> None:
        cipher, result, rows, prints = self._cipher, self.result, batch.rows, batch.prints
        assert batch.stored is not None
        stored = dict(await batch.stored)
        counts = batch.counts
        # A complaint twice in the batch is parsed both times: the later row must win.
        skip = {
            index
            for index, key in enumerate(batch.keys)
            if counts[key] == 1 and (old := stored.get(key)) is not None
            and old.content_hash == prints[index]
        }  # fmt: skip
        result.unchanged += len(skip)
        records = self._complete(rows, skip)
        if self._watch:
            self._note_watched(batch, skip, records)
        store = self._store_quarantined
        if store is not None and (issues := self._take_quarantined()):
            self._line.run(lambda: store(issues))  # bad rows, stored as they are found
        if not records:
            return
        content = {r.row: fp for r, fp in zip(rows, prints, strict=True)}
        latest = {(r.contract_id, r.complaint_id): r for r in records}  # the last row wins
        result.unchanged += len(records) - len(latest)
        missing = latest.keys() - batch.known
        if missing:
            stored.update(await self._read(missing))
        prepared = []
        for key, record in latest.items():
            old = stored.get(key)
            if old is not None and old.content_hash == content[record.row]:
                result.unchanged += 1
                continue
            prepared.append(_prepare(cipher, record, content[record.row]))
        details: dict[UUID, tuple[dict[str, Any], datetime]] = {}
        if any((p.record.contract_id, p.record.complaint_id) in stored for p in prepared):
            session = self._session
            details = await self._line.run(lambda: _details(session, prepared, stored))
        self._send()  # a plan still unsent goes first: writes keep the batches' order
        self._unsent = self._plan(prepared, stored, details)
        self._unsent_batch = batch

    def _note_watched(
        self, batch: _Batch, skip: Collection[int], records: list[ComplaintRecord]
    ) -> None:
        """The watched complaints this batch holds readable: unchanged, or parsed (a row
        quarantined is neither)."""
        keys = [batch.keys[index] for index in skip]
        keys += [(r.contract_id, r.complaint_id) for r in records]
        self.watched.update(k for k in keys if k in self._watch)

    def _plan(
        self,
        prepared: list[_Prepared],
        stored: Mapping[tuple[str | None, str | None], _Stored],
        details: Mapping[UUID, tuple[dict[str, Any], datetime]],
    ) -> _Writes:
        cipher, result, writes = self._cipher, self.result, _Writes()
        for p in prepared:
            record = p.record
            old = stored.get((record.contract_id, record.complaint_id))
            typed = _typed_values(p, self._deadlines)
            ident = old.id if old is not None else uuid7()
            typed["phi"] = cipher.seal(p.phi_json(), field=PHI_FIELD, row=ident)
            # PostgreSQL's COPY takes the document as JSON text; SQLAlchemy takes the dict.
            typed["fields"] = p.fields_json() if self._postgres else p.fields
            if old is None:
                result.new += 1
                writes.new.add(ident)
                # Its creation needs no history row: first_seen_at and last_sync_run_id say it.
                writes.events[ident] = "complaint.created"
            else:
                before, changed_at = details[ident]
                columns = _changed_columns(
                    before, _comparable(p.fields, typed), old.phi_hash != p.phi_hash
                )
                if columns:
                    result.changed += 1
                    writes.changes[ident] = columns
                    writes.events[ident] = "complaint.updated"
                else:
                    # Written differently, same values (quoting, column order): the stored
                    # fingerprint is refreshed, and nothing is reported or marked changed.
                    result.unchanged += 1
                    typed["last_changed_at"] = changed_at
            typed.setdefault("last_changed_at", self._now)
            typed["id"], typed["contract"] = ident, record.contract_id
            typed["complaint_id"] = record.complaint_id
            writes.rows.append(typed)
        return writes

    async def _write(self, writes: _Writes) -> None:
        session, now, tenant = self._session, self._now, self._tenant_id
        constants = {
            "tenant_id": tenant, "environment": self._environment,
            "api_key_id": self._api_key_id, "layout": self.layout,
            "resolution_state": ResolutionState.NONE, "last_sync_run_id": self._run,
            "first_seen_at": now, "last_seen_at": now,
            "created_at": now, "updated_at": now,
        }  # fmt: skip
        if self._postgres:
            written, event_ids = await bulk.write_batch(
                await postgres.driver(session), writes.rows, constants,
                changes=writes.changes, events=writes.events, first=not self._staging,
                on_wire=self._on_wire.set,
            )  # fmt: skip
            self._staging = True
            if event_ids:
                jobs.enqueue(session, dispatch_many_job(event_ids))
        else:
            written = await _upsert_generic(session, writes.rows, constants, writes.new)
            changes = [
                _change(tenant, ident, self._run, "updated", columns, now)
                for ident, columns in writes.changes.items()
            ]
            if changes:
                await session.execute(insert(_CHANGES), changes)
            events = [
                (kind, _event_data(row, writes.changes.get(row["id"]), self._environment))
                for row in writes.rows
                if (kind := writes.events.get(row["id"])) is not None
            ]
            await insert_events(session, tenant, events, occurred_at=now)
        lost = {row["id"] for row in writes.rows} - written
        if lost:
            # Written meanwhile by another transaction (under its own id): theirs stands.
            self.result.new -= len(lost & writes.new)
            self.result.changed -= len((lost - writes.new) & writes.changes.keys())
            self.result.unchanged += len(lost)


def _event_data(
    row: Mapping[str, Any], changed: list[str] | None, environment: Environment
) -> dict[str, Any]:
    """What `complaint.created` / `.updated` carry (as `bulk.EVENT_PAYLOAD` builds it on
    PostgreSQL): identifiers and metadata, never PHI, and the changed columns."""
    data = {
        "complaint_id": row["complaint_id"], "contract": row["contract"],
        "environment": environment.value, "issue_level": row["issue_level"],
        "due_date": row["due_date"].isoformat(),
    }  # fmt: skip
    return data if changed is None else data | {"changed": changed}


def _comparable(fields: Mapping[str, Any], typed: Mapping[str, Any]) -> dict[str, Any]:
    """The non-PHI values a change is reported on, as stored (dates ISO, strings)."""
    return dict(fields) | {
        "ISSUE_LEVEL": typed["issue_level"],
        "ASSIGNMENT_DATE": _plain(typed["assignment_date"]),
        "RESOLUTION_DATE": _plain(typed["cms_resolution_date"]),
    }


async def _details(
    session: AsyncSession,
    prepared: list[_Prepared],
    stored: Mapping[tuple[str | None, str | None], _Stored],
) -> dict[UUID, tuple[dict[str, Any], datetime]]:
    """The stored non-PHI values of the complaints about to change (to say which columns
    changed), and when each last changed; nothing is read for new complaints."""
    changing = [
        old.id
        for p in prepared
        if (old := stored.get((p.record.contract_id, p.record.complaint_id))) is not None
    ]
    if not changing:
        return {}
    statement = select(
        Complaint.id, Complaint.fields, Complaint.issue_level, Complaint.assignment_date,
        Complaint.cms_resolution_date, Complaint.last_changed_at,
    ).where(Complaint.id.in_(changing))  # fmt: skip
    return {
        row.id: (
            dict(row.fields) | {
                "ISSUE_LEVEL": row.issue_level,
                "ASSIGNMENT_DATE": _plain(row.assignment_date),
                "RESOLUTION_DATE": _plain(row.cms_resolution_date),
            },
            row.last_changed_at,
        )
        for row in await session.execute(statement)
    }  # fmt: skip


_COMPLAINTS = cast("Table", Complaint.__table__)
_CHANGES = cast("Table", ComplaintChange.__table__)
_ON_INSERT_ONLY = ("tenant_id", "environment", "resolution_state", "first_seen_at", "created_at")


async def _upsert_generic(
    session: AsyncSession, rows: list[dict[str, Any]], constants: dict[str, Any], new: set[UUID]
) -> set[UUID]:
    """SQLite (one writer at a time): an INSERT of the new rows and an UPDATE of the
    changed ones, as two executemany statements."""
    inserts = [row | constants for row in rows if row["id"] in new]
    updates = [
        {("_id" if k == "id" else k): v for k, v in (row | constants).items()
         if k not in _ON_INSERT_ONLY and k not in {"contract", "complaint_id"}}
        for row in rows if row["id"] not in new
    ]  # fmt: skip
    # Core statements, executemany: the ORM's per-object bookkeeping is most of the cost of
    # a bulk write, and none of it is needed here.
    if inserts:
        await session.execute(insert(_COMPLAINTS), inserts)
    if updates:
        statement = (
            update(_COMPLAINTS)
            .where(_COMPLAINTS.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in updates[0] if c != "_id"})
        )
        await session.execute(statement, updates)
    return {row["id"] for row in rows}


async def _stored_hashes(
    session: AsyncSession,
    tenant_id: TenantID,
    environment: Environment,
    keys: Collection[tuple[str | None, str | None]],
) -> dict[tuple[str | None, str | None], _Stored]:
    """The stored fingerprints of these (contract, complaint ID) pairs: on PostgreSQL one
    index probe per id (`bulk.stored_hashes`), elsewhere an IN list per contract."""
    by_contract: dict[str, list[str]] = {}
    for contract, complaint in keys:
        if contract is not None and complaint is not None:
            by_contract.setdefault(contract, []).append(complaint)
    found: dict[tuple[str | None, str | None], _Stored] = {}
    for contract, ids in by_contract.items():
        rows: Sequence[Any]
        if postgres.is_postgres(session):
            connection = await postgres.driver(session)
            rows = await bulk.stored_hashes(connection, tenant_id, environment, contract, ids)
        else:
            rows = (
                await session.execute(
                    select(
                        Complaint.complaint_id, Complaint.id, Complaint.content_hash,
                        Complaint.phi_hash,
                    ).where(
                        Complaint.tenant_id == tenant_id, Complaint.environment == environment,
                        Complaint.contract == contract, Complaint.complaint_id.in_(ids),
                    )
                )
            ).all()  # fmt: skip
        for row in rows:  # (complaint ID, id, content hash, PHI hash), indexed as tuples
            found[(contract, row[0])] = _Stored(row[1], row[2], row[3])
    return found


def _change(
    tenant_id: TenantID,
    complaint: UUID,
    run: UUID | None,
    kind: str,
    columns: list[str],
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": uuid7(), "tenant_id": tenant_id, "complaint_pk": complaint, "sync_run_id": run,
        "kind": kind, "changed": columns, "created_at": now, "updated_at": now,
    }  # fmt: skip


def open_phi(cipher: TenantCipher, complaint: Complaint) -> dict[str, Any]:
    """The complaint's PHI document (for an authorised caseworker's view only)."""
    document: dict[str, Any] = json.loads(
        cipher.open(complaint.phi, field=PHI_FIELD, row=complaint.id)
    )
    return document
