"""The PostgreSQL statements a sync's batches run (see `hub.core.db.postgres`).

One SELECT of the stored fingerprints per batch (the ids as one array, an index probe
each), and one statement writing the batch's new and changed complaints from typed arrays
with their history rows and events.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from hub.core.crypto import Sealed
from hub.core.db.postgres import jsonb
from hub.core.ids import uuid7

# One index probe per id, whatever the statistics say. They never know a running import's
# rows (uncommitted): a plain join (or a LATERAL the planner may flatten into one) then
# hashes the contract's every row for each batch, which grows with the import; `= ANY`
# gets a generic plan that filters them. `LIMIT 1` keeps the subquery a parameterized
# probe of the unique index (and is exact: the key is unique).
_STORED = """
SELECT c.complaint_id, c.id, c.content_hash, c.phi_hash
FROM unnest($3::text[]) AS given(cid)
CROSS JOIN LATERAL (
    SELECT id, complaint_id, content_hash, phi_hash FROM complaints
    WHERE tenant_id = $1 AND contract = $2 AND complaint_id = given.cid
    LIMIT 1
) AS c
"""

# Per-row values come as arrays; what every row of a batch shares comes once.
_ARRAYS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"), ("contract", "text"), ("complaint_id", "text"), ("issue_level", "text"),
    ("is_immediate_need", "bool"), ("received_date", "date"), ("assignment_date", "date"),
    ("due_date", "date"), ("due_basis", "text"), ("cms_resolution_date", "date"),
    ("category", "text"), ("subcategory", "text"), ("fields", "jsonb"), ("phi", "bytea"),
    ("bene_index", "text"), ("content_hash", "text"), ("phi_hash", "text"),
    ("last_changed_at", "timestamptz"),
)  # fmt: skip
_SCALARS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "uuid"), ("api_key_id", "uuid"), ("layout", "text"),
    ("resolution_state", "text"), ("last_sync_run_id", "uuid"), ("first_seen_at", "timestamptz"),
    ("last_seen_at", "timestamptz"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
)  # fmt: skip
# Kept from the first insert: who owns it, when it was first seen, its resolution.
_KEPT = {"id", "tenant_id", "contract", "complaint_id", "resolution_state", "first_seen_at",
         "created_at"}  # fmt: skip


# A complaint event's data, built from the row as written: what `complaint.created` and
# `complaint.updated` carry (identifiers and metadata, never PHI), and the changed columns.
EVENT_PAYLOAD = (
    "jsonb_build_object('complaint_id', w.complaint_id, 'contract', w.contract, "
    "'issue_level', w.issue_level, 'due_date', w.due_date) || CASE WHEN e.changed IS NULL "
    "THEN '{}'::jsonb ELSE jsonb_build_object('changed', e.changed) END"
)


def _write_statement() -> str:
    arrays = ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_ARRAYS, start=1))
    names = ", ".join(name for name, _ in _ARRAYS)
    offset = len(_ARRAYS) + 1
    scalars = ", ".join(f"${n}::{kind}" for n, (_, kind) in enumerate(_SCALARS, start=offset))
    columns = [name for name, _ in _ARRAYS] + [name for name, _ in _SCALARS]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in _KEPT)
    tenant, run, now = (offset + _SCALAR_AT[name] for name in ("tenant_id", "last_sync_run_id",
                                                                "created_at"))  # fmt: skip
    n = offset + len(_SCALARS)
    # One statement: the complaints, then the history of the changed ones and the events of
    # the ones actually written (RETURNING). The upsert's WHERE keeps a row another
    # transaction inserted meanwhile (under its own id, to which its sealed PHI is bound)
    # and never rewrites an unchanged one. Names and casts come from the constants above;
    # every value is a parameter.
    return (
        "WITH written AS ("  # noqa: S608 - see above
        f"INSERT INTO complaints ({', '.join(columns)}) "
        f"SELECT u.*, {scalars} FROM unnest({arrays}) AS u({names}) "
        "ON CONFLICT (tenant_id, contract, complaint_id) DO UPDATE SET "
        f"{updates} "
        "WHERE complaints.id = excluded.id "
        "AND complaints.content_hash IS DISTINCT FROM excluded.content_hash "
        "RETURNING id, complaint_id, contract, issue_level, due_date), "
        "history AS ("
        "INSERT INTO complaint_changes "
        "(id, tenant_id, complaint_pk, sync_run_id, kind, changed, created_at, updated_at) "
        f"SELECT h.id, ${tenant}::uuid, h.pk, ${run}::uuid, 'updated', h.changed, "
        f"${now}::timestamptz, ${now}::timestamptz "
        f"FROM unnest(${n}::uuid[], ${n + 1}::uuid[], ${n + 2}::jsonb[]) AS h(id, pk, changed) "
        "WHERE h.pk IN (SELECT id FROM written)), "
        "announced AS ("
        "INSERT INTO events (id, tenant_id, type, payload, occurred_at, attempts) "
        f"SELECT e.id, ${tenant}::uuid, e.type, {EVENT_PAYLOAD}, ${now}::timestamptz, 0 "
        f"FROM unnest(${n + 3}::uuid[], ${n + 4}::uuid[], ${n + 5}::text[], ${n + 6}::jsonb[]) "
        "AS e(id, pk, type, changed) "
        "JOIN written AS w ON w.id = e.pk RETURNING id) "
        "SELECT true, id FROM written UNION ALL SELECT false, id FROM announced"
    )


_SCALAR_AT = {name: index for index, (name, _) in enumerate(_SCALARS)}
WRITE = _write_statement()


def _value(value: Any) -> Any:
    """A value as asyncpg takes it: documents as JSON text, sealed values as their bytes,
    enums as their values."""
    if isinstance(value, dict | list):
        return jsonb(value)
    if isinstance(value, Sealed):
        return value.token
    if isinstance(value, enum.Enum):
        return value.value
    return value


# Per column, how its values become asyncpg's: most pass as they are.
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "fields": jsonb, "phi": lambda sealed: sealed.token, "due_basis": _value,
}  # fmt: skip


async def stored_hashes(
    connection: asyncpg.Connection, tenant_id: UUID, contract: str, ids: list[str]
) -> list[tuple[str, UUID, str, str]]:
    rows = await connection.fetch(_STORED, tenant_id, contract, ids)
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def write_batch(
    connection: asyncpg.Connection,
    rows: Sequence[dict[str, Any]],
    constants: dict[str, Any],
    *,
    changes: Mapping[UUID, list[str]],
    events: Mapping[UUID, str],
) -> tuple[set[UUID], list[UUID]]:
    """Upsert the batch's new and changed complaints with the history of the changed ones
    (`changes`: complaint id -> columns) and an event each (`events`: complaint id ->
    type): the ids of the complaints written, and of the events recorded."""
    arrays = []
    for name, _ in _ARRAYS:
        convert = _CONVERT.get(name)
        values = [row[name] for row in rows]
        arrays.append(values if convert is None else [convert(v) for v in values])
    scalars = [_value(constants[name]) for name, _ in _SCALARS]
    changed = {pk: jsonb(columns) for pk, columns in changes.items()}
    history = [[uuid7() for _ in changed], list(changed), list(changed.values())]
    announced = [
        [uuid7() for _ in events], list(events), list(events.values()),
        [changed.get(pk) for pk in events],
    ]  # fmt: skip
    written: set[UUID] = set()
    event_ids: list[UUID] = []
    for is_complaint, ident in await connection.fetch(
        WRITE, *arrays, *scalars, *history, *announced
    ):
        if is_complaint:
            written.add(ident)
        else:
            event_ids.append(ident)
    return written, event_ids
