"""The PostgreSQL statements a sync's batches run (see `hub.core.db.postgres`).

One SELECT of the stored fingerprints per batch (the ids as one array, an index probe
each); then the batch's new and changed complaints, with what their events and history
need, `COPY`-ed into a staging table, and one statement writing them with their history
rows and events.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from hub.core import jsontext
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
    WHERE tenant_id = $1 AND environment = $4 AND contract = $2 AND complaint_id = given.cid
    LIMIT 1
) AS c
"""

# A batch's rows go by `COPY` into a staging table (binary, a quarter of the client's work
# of typed arrays), one row per complaint with its event and history; what every row of a
# batch shares comes once, as parameters. The table lives for the import's transaction
# (`ON COMMIT DROP`) and is emptied between batches: `TRUNCATE` of a table made in the same
# transaction empties it in place.
_ROWS: tuple[tuple[str, str], ...] = (
    ("id", "uuid"), ("contract", "text"), ("complaint_id", "text"), ("issue_level", "text"),
    ("is_immediate_need", "bool"), ("received_date", "date"), ("assignment_date", "date"),
    ("due_date", "date"), ("due_basis", "text"), ("cms_resolution_date", "date"),
    ("category", "text"), ("subcategory", "text"), ("fields", "jsonb"), ("phi", "bytea"),
    ("bene_index", "text"), ("content_hash", "text"), ("phi_hash", "text"),
    ("last_changed_at", "timestamptz"),
)  # fmt: skip
_ABOUT: tuple[tuple[str, str], ...] = (
    ("event_id", "uuid"), ("event_type", "text"), ("change_id", "uuid"), ("changed", "jsonb"),
)  # fmt: skip
_SCALARS: tuple[tuple[str, str], ...] = (
    ("tenant_id", "uuid"), ("environment", "text"), ("api_key_id", "uuid"), ("layout", "text"),
    ("resolution_state", "text"), ("last_sync_run_id", "uuid"), ("first_seen_at", "timestamptz"),
    ("last_seen_at", "timestamptz"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
)  # fmt: skip
# Kept from the first insert: who owns it, when it was first seen, its resolution.
_KEPT = {"id", "tenant_id", "environment", "contract", "complaint_id", "resolution_state",
         "first_seen_at", "created_at"}  # fmt: skip
STAGE = "complaint_batch"
_STAGED = tuple(name for name, _ in _ROWS + _ABOUT)
# IF NOT EXISTS: an import inside a longer transaction (a savepoint) finds the table of an
# earlier one, emptied by its last batch.
CREATE_STAGE = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} ("
    + ", ".join(f"{name} {kind}" for name, kind in _ROWS + _ABOUT)
    + ") ON COMMIT DROP"
)
EMPTY_STAGE = f"TRUNCATE {STAGE}"

# A complaint event's data, built from the row as written: what `complaint.created` and
# `complaint.updated` carry (identifiers and metadata, never PHI), and the changed columns.
EVENT_PAYLOAD = (
    "jsonb_build_object('complaint_id', w.complaint_id, 'contract', w.contract, "
    "'environment', w.environment, 'issue_level', w.issue_level, 'due_date', w.due_date) "
    "|| CASE WHEN b.changed IS NULL "
    "THEN '{}'::jsonb ELSE jsonb_build_object('changed', b.changed) END"
)


def _write_statement() -> str:
    at = {name: n for n, (name, _) in enumerate(_SCALARS, start=1)}
    scalars = ", ".join(f"${n}::{kind}" for n, (_, kind) in enumerate(_SCALARS, start=1))
    names = [name for name, _ in _ROWS]
    columns = names + [name for name, _ in _SCALARS]
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in _KEPT)
    tenant, run, now = (f"${at[name]}" for name in ("tenant_id", "last_sync_run_id", "created_at"))
    # One statement: the complaints, then the history of the changed ones and the events of
    # the ones actually written (RETURNING). The upsert's WHERE keeps a row another
    # transaction inserted meanwhile (under its own id, to which its sealed PHI is bound)
    # and never rewrites an unchanged one. Names and casts come from the constants above;
    # every value is a parameter or a staged row.
    return (
        "WITH written AS ("  # noqa: S608 - see above
        f"INSERT INTO complaints ({', '.join(columns)}) "
        f"SELECT {', '.join(f'b.{name}' for name in names)}, {scalars} FROM {STAGE} AS b "
        "ON CONFLICT (tenant_id, environment, contract, complaint_id) DO UPDATE SET "
        f"{updates} "
        "WHERE complaints.id = excluded.id "
        "AND complaints.content_hash IS DISTINCT FROM excluded.content_hash "
        "RETURNING id, complaint_id, contract, environment, issue_level, due_date), "
        "history AS ("
        "INSERT INTO complaint_changes "
        "(id, tenant_id, complaint_pk, sync_run_id, kind, changed, created_at, updated_at) "
        f"SELECT b.change_id, {tenant}::uuid, b.id, {run}::uuid, 'updated', b.changed, "
        f"{now}::timestamptz, {now}::timestamptz FROM {STAGE} AS b "
        "WHERE b.change_id IS NOT NULL AND b.id IN (SELECT id FROM written)), "
        "announced AS ("
        "INSERT INTO events (id, tenant_id, type, payload, occurred_at, attempts) "
        f"SELECT b.event_id, {tenant}::uuid, b.event_type, {EVENT_PAYLOAD}, "
        f"{now}::timestamptz, 0 FROM {STAGE} AS b JOIN written AS w ON w.id = b.id "
        "WHERE b.event_id IS NOT NULL RETURNING id) "
        "SELECT true, id FROM written UNION ALL SELECT false, id FROM announced"
    )


WRITE = _write_statement()


def _value(value: Any) -> Any:
    """A batch's shared value as asyncpg takes it (an enum as its value)."""
    return value.value if isinstance(value, enum.Enum) else value


async def stored_hashes(
    connection: asyncpg.Connection, tenant_id: UUID, environment: str, contract: str, ids: list[str]
) -> list[asyncpg.Record]:
    """(complaint ID, id, content hash, PHI hash) of each of `ids` stored (records, indexed
    like tuples: a re-sync reads one per row, and copying them costs as much again)."""
    rows: list[asyncpg.Record] = await connection.fetch(
        _STORED, tenant_id, contract, ids, environment
    )
    return rows


async def write_batch(
    connection: asyncpg.Connection,
    rows: Sequence[dict[str, Any]],
    constants: dict[str, Any],
    *,
    changes: Mapping[UUID, list[str]],
    events: Mapping[UUID, str],
    first: bool,
    on_wire: Callable[[], None] = lambda: None,
) -> tuple[set[UUID], list[UUID]]:
    """Upsert the batch's new and changed complaints (each row's `fields` already JSON
    text) with the history of the changed ones
    (`changes`: complaint id -> columns) and an event each (`events`: complaint id ->
    type): the ids of the complaints written, and of the events recorded. `first`: the
    transaction's first batch (it makes the staging table); `on_wire` is called as the
    writing statement is sent (after the `COPY`)."""
    if first:
        await connection.execute(CREATE_STAGE)
    staged = []
    for row in rows:
        ident = row["id"]
        changed, kind = changes.get(ident), events.get(ident)
        staged.append((
            ident, row["contract"], row["complaint_id"], row["issue_level"],
            row["is_immediate_need"], row["received_date"], row["assignment_date"],
            row["due_date"], row["due_basis"].value, row["cms_resolution_date"],
            row["category"], row["subcategory"], row["fields"], row["phi"].token,
            row["bene_index"], row["content_hash"], row["phi_hash"], row["last_changed_at"],
            uuid7() if kind else None, kind, uuid7() if changed else None,
            jsontext.dumps(changed) if changed else None,
        ))  # fmt: skip
    await connection.copy_records_to_table(STAGE, records=staged, columns=_STAGED)
    written: set[UUID] = set()
    event_ids: list[UUID] = []
    scalars = [_value(constants[name]) for name, _ in _SCALARS]
    on_wire()
    for is_complaint, ident in await connection.fetch(WRITE, *scalars):
        if is_complaint:
            written.add(ident)
        else:
            event_ids.append(ident)
    await connection.execute(EMPTY_STAGE)
    return written, event_ids
