"""Complaints: deadlines and status, and the batch upsert a sync feeds.

A batch costs one SELECT of the stored hashes, one INSERT of the new rows and one UPDATE
of the changed ones; an unchanged row costs no write at all. PHI is sealed as one JSON
document per complaint; change detection compares keyed hashes, never plaintext.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast
from uuid import UUID

from sqlalchemy import ARRAY, Row, String, Table, bindparam, func, insert, select, update
from sqlalchemy import cast as cast_
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints.models import Complaint, ComplaintChange, DueBasis, ResolutionState
from hub.core.crypto import TenantCipher
from hub.core.ids import TenantID, uuid7
from hub.ctm.layouts import PHI_COLUMNS
from hub.ctm.parser import ComplaintRecord
from hub.events.service import insert_events

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


def deadline_moment(due: date) -> datetime:
    """A complaint due on a day may be resolved through the end of that day (UTC)."""
    return datetime.combine(due + timedelta(days=1), time.min, tzinfo=UTC)


def status_of(complaint: Complaint, *, now: datetime, deadlines: Deadlines) -> ComplaintStatus:
    state = complaint.resolution_state
    if state is ResolutionState.ACCEPTED:
        return ComplaintStatus.ACCEPTED
    if state is ResolutionState.REJECTED:
        return ComplaintStatus.REJECTED
    if state in {ResolutionState.QUEUED, ResolutionState.UPLOADING}:
        return ComplaintStatus.RESOLVED
    if complaint.cms_resolution_date is not None:
        return ComplaintStatus.RESOLVED
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


def _plain(value: object) -> str | bool | None:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _same(value: str) -> str:
    return value


@dataclass(frozen=True, slots=True)
class _Prepared:
    record: ComplaintRecord
    fields: dict[str, Any]
    phi: dict[str, Any]
    content_hash: str
    phi_hash: str
    bene_index: str | None

    @property
    def phi_json(self) -> str:
        """The sealed document; built only for rows that are written."""
        return _canonical(self.phi)


def _prepare(cipher: TenantCipher, record: ComplaintRecord) -> _Prepared:
    # The cells as written: non-PHI ones kept in the clear for filtering, PHI ones sealed.
    cells, columns = record.cells, record.columns
    fields: dict[str, Any] = {}
    phi: dict[str, Any] = {}
    for name, position in zip(columns.names, columns.positions, strict=True):
        if name in PHI_COLUMNS:
            phi[name] = cells[position]
        elif name not in _TYPED:
            fields[name] = cells[position]
    unknown = _canonical(dict(record.unknown)) if record.unknown else ""
    if unknown:
        # Unknown columns may hold anything, PHI included: they are kept, sealed.
        phi["_unknown"] = dict(record.unknown)
    # Change detection hashes the cells as read (in file order), not documents: a re-sync
    # of unchanged rows builds no JSON at all.
    everything = "\x1f".join(cells) + "\x1e" + unknown
    phi_text = "\x1f".join(f"{k}\x1d{v}" for k, v in phi.items() if k != "_unknown") + unknown
    bene = phi.get("BENE_IDENTIFIER", "").strip()
    return _Prepared(
        record=record,
        fields=fields,
        phi=phi,
        content_hash=cipher.blind_index(everything, field=CONTENT_FIELD, normalise=_same),
        phi_hash=cipher.blind_index(phi_text, field=PHI_FIELD, normalise=_same),
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
        "fields": p.fields,
        "content_hash": p.content_hash,
        "phi_hash": p.phi_hash,
        "bene_index": p.bene_index,
    }


def _changed_columns(
    old: Mapping[str, Any], new: Mapping[str, Any], phi_changed: bool
) -> list[str]:
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return [*changed, "phi"] if phi_changed else changed


async def ingest_batch(
    session: AsyncSession,
    cipher: TenantCipher,
    *,
    tenant_id: TenantID,
    api_key_id: UUID | None,
    layout: str,
    records: Sequence[ComplaintRecord],
    sync_run_id: UUID | None,
    now: datetime,
    deadlines: Deadlines,
) -> BatchResult:
    """Upsert one batch of one contract's records; emit `complaint.created/updated`."""
    result = BatchResult()
    if not records:
        return result
    prepared = [_prepare(cipher, r) for r in records]
    contract = records[0].contract_id
    # The hashes of the batch's complaints decide what to write; only the changed ones'
    # typed columns are read back (to say which columns changed).
    hashes = {
        row.complaint_id: row
        for row in await _stored(
            session, tenant_id, contract, [r.complaint_id for r in records],
            Complaint.content_hash, Complaint.phi_hash,
        )
    }  # fmt: skip
    differing = [
        p.record.complaint_id
        for p in prepared
        if p.record.complaint_id in hashes
        and hashes[p.record.complaint_id].content_hash != p.content_hash
    ]
    stored = dict(hashes)
    if differing:
        details = await _stored(
            session, tenant_id, contract, differing,
            Complaint.content_hash, Complaint.phi_hash, Complaint.fields, Complaint.issue_level,
            Complaint.assignment_date, Complaint.cms_resolution_date,
        )  # fmt: skip
        stored.update((row.complaint_id, row) for row in details)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    events: list[tuple[str, dict[str, Any]]] = []
    for p in prepared:
        record, old = p.record, stored.get(p.record.complaint_id)
        if old is not None and old.content_hash == p.content_hash:
            result.unchanged += 1
            continue
        typed = _typed_values(p, deadlines)
        ident = old.id if old is not None else uuid7()
        if old is None or old.phi_hash != p.phi_hash:
            typed["phi"] = cipher.seal(p.phi_json, field=PHI_FIELD, row=ident)
        summary = {
            "complaint_id": record.complaint_id,
            "contract": contract,
            "issue_level": record.issue_level,
            "due_date": typed["due_date"].isoformat(),
        }
        if old is None:
            result.new += 1
            inserts.append(
                typed | {
                    "id": ident, "tenant_id": tenant_id, "contract": contract,
                    "complaint_id": record.complaint_id, "api_key_id": api_key_id,
                    "layout": layout, "resolution_state": ResolutionState.NONE,
                    "first_seen_at": now, "last_changed_at": now, "last_seen_at": now,
                    "last_sync_run_id": sync_run_id, "created_at": now, "updated_at": now,
                }
            )  # fmt: skip
            # Its creation needs no history row: first_seen_at and last_sync_run_id say it.
            events.append(("complaint.created", summary))
        else:
            result.changed += 1
            before = dict(old.fields) | {
                "ISSUE_LEVEL": old.issue_level,
                "ASSIGNMENT_DATE": _plain(old.assignment_date),
                "RESOLUTION_DATE": _plain(old.cms_resolution_date),
            }
            after = p.fields | {
                "ISSUE_LEVEL": record.issue_level,
                "ASSIGNMENT_DATE": _plain(typed["assignment_date"]),
                "RESOLUTION_DATE": _plain(typed["cms_resolution_date"]),
            }
            columns = _changed_columns(before, after, old.phi_hash != p.phi_hash)
            updates.append(
                typed | {
                    "id": ident, "api_key_id": api_key_id, "layout": layout,
                    "last_changed_at": now, "last_seen_at": now,
                    "last_sync_run_id": sync_run_id, "updated_at": now,
                }
            )  # fmt: skip
            changes.append(_change(tenant_id, ident, sync_run_id, "updated", columns, now))
            events.append(("complaint.updated", summary | {"changed": columns}))
    # Core statements, executemany: the ORM's per-object bookkeeping is most of the cost of
    # a bulk write, and none of it is needed here.
    if inserts:
        await session.execute(insert(_COMPLAINTS), inserts)
    for names, group in _by_columns(updates).items():
        statement = (
            update(_COMPLAINTS)
            .where(_COMPLAINTS.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in names if c != "_id"})
        )
        await session.execute(statement, group)
    if changes:
        await session.execute(insert(_CHANGES), changes)
    await insert_events(session, tenant_id, events, occurred_at=now)
    return result


_COMPLAINTS = cast("Table", Complaint.__table__)
_CHANGES = cast("Table", ComplaintChange.__table__)


def _by_columns(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Group update rows by the columns they set (executemany needs one shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        row = {("_id" if k == "id" else k): v for k, v in row.items()}
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups


async def _stored(
    session: AsyncSession, tenant_id: TenantID, contract: str, ids: list[str], *columns: Any
) -> Sequence[Row[Any]]:
    """Stored rows of one contract for these complaint ids. On PostgreSQL the ids come as
    one array joined through `unnest`, so each is an index probe whatever the table's
    statistics say (500 parameters in an IN list compare every row with every value)."""
    wanted = (Complaint.id, Complaint.complaint_id, *columns)
    mine = (Complaint.tenant_id == tenant_id, Complaint.contract == contract)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        given = func.unnest(cast_(ids, ARRAY(String))).table_valued("cid").render_derived("given")
        statement = (
            select(*wanted)
            .select_from(given)
            .join(Complaint, Complaint.complaint_id == given.c.cid)
            .where(*mine)
        )
    else:
        statement = select(*wanted).where(*mine, Complaint.complaint_id.in_(ids))
    return (await session.execute(statement)).all()


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
