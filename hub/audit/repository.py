"""Tenant-scoped reads of the audit log: every query starts from a `TenantID`; the platform
chain (what belongs to no tenant) is read only through the `platform_…` entry points, for
operators."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from litestar.response import Stream
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service
from hub.audit.models import PLATFORM_CHAIN, AuditEntry, AuditOutcome
from hub.auth.principal import Principal
from hub.core import csvexport
from hub.core.db import Database, utcnow
from hub.core.errors import NotFound
from hub.core.ids import TenantID
from hub.tenants.models import Tenant


def entries(tenant_id: TenantID) -> Select[AuditEntry]:
    return select(AuditEntry).where(AuditEntry.chain_id == tenant_id)


def platform_entries() -> Select[AuditEntry]:
    """The platform chain's entries: sign-ins and refusals, users, master keys (no tenant's)."""
    return select(AuditEntry).where(AuditEntry.chain_id == PLATFORM_CHAIN)


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What a reader narrows the log to (each empty field: no narrowing).

    `action` is a prefix (`token.`), `actor` the actor's email or label or id as recorded,
    `target` a target type (`api_token`) or id, `outcome` one outcome (`denied`), and
    `since`/`until` a half-open time range."""

    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    outcome: AuditOutcome | None = None

    def apply(self, statement: Select[AuditEntry]) -> Select[AuditEntry]:
        if self.action:
            statement = statement.where(AuditEntry.action.startswith(self.action, autoescape=True))
        if self.actor:
            statement = statement.where(_actor_is(self.actor))
        if self.target:
            statement = statement.where(
                or_(AuditEntry.target_type == self.target, AuditEntry.target_id == self.target)
            )
        if self.outcome is not None:
            statement = statement.where(AuditEntry.outcome == self.outcome)
        if self.since is not None:
            statement = statement.where(AuditEntry.occurred_at >= self.since)
        if self.until is not None:
            statement = statement.where(AuditEntry.occurred_at < self.until)
        return statement


def _actor_is(actor: str) -> ColumnElement[bool]:
    clauses = [AuditEntry.actor_label == actor]
    with contextlib.suppress(ValueError):  # a label, not an id
        clauses.append(AuditEntry.actor_id == UUID(actor))
    return or_(*clauses)


async def list_entries(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    after: int = 0,
    limit: int = 100,
    action_prefix: str | None = None,
    where: EntryFilter | None = None,
) -> Sequence[AuditEntry]:
    """The tenant's entries in chain order; `after` is the last `seq` already seen."""
    where = where or EntryFilter(action=action_prefix)
    statement = where.apply(entries(tenant_id).where(AuditEntry.seq > after))
    return (await session.scalars(statement.order_by(AuditEntry.seq).limit(limit))).all()


async def list_newest(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    where: EntryFilter,
    before: int | None = None,
    limit: int = 50,
) -> Sequence[AuditEntry]:
    """The tenant's entries newest first; `before` is the last (smallest) `seq` already seen."""
    return await _newest(session, entries(tenant_id), where=where, before=before, limit=limit)


async def list_platform_newest(
    session: AsyncSession, *, where: EntryFilter, before: int | None = None, limit: int = 50
) -> Sequence[AuditEntry]:
    """The platform chain's entries newest first, as `list_newest` pages a tenant's."""
    return await _newest(session, platform_entries(), where=where, before=before, limit=limit)


async def _newest(
    session: AsyncSession,
    chain: Select[AuditEntry],
    *,
    where: EntryFilter,
    before: int | None,
    limit: int,
) -> Sequence[AuditEntry]:
    statement = where.apply(chain)
    if before is not None:
        statement = statement.where(AuditEntry.seq < before)
    return (await session.scalars(statement.order_by(AuditEntry.seq.desc()).limit(limit))).all()


# The export -------------------------------------------------------------------------------

EXPORTED = "audit.exported"
EXPORT_COLUMNS = (
    "seq", "occurred_at", "actor_kind", "actor_label", "actor_id", "action", "target_type",
    "target_id", "outcome", "request_id", "ip", "details", "hash",
)  # fmt: skip


def _export_values(entry: AuditEntry) -> tuple[Any, ...]:
    details = json.dumps(entry.details, sort_keys=True, ensure_ascii=False)
    return (
        entry.seq, entry.occurred_at, entry.actor_kind.value, entry.actor_label, entry.actor_id,
        entry.action, entry.target_type, entry.target_id, entry.outcome.value,
        entry.request_id, entry.ip, details, entry.hash,
    )  # fmt: skip


async def _through_seq(session: AsyncSession, chain_id: UUID) -> int:
    """The chain's last seq now: an export takes the log up to here (entries are never
    changed or removed, so what it covers is fixed however long the download takes)."""
    last = await session.scalar(
        select(func.max(AuditEntry.seq)).where(AuditEntry.chain_id == chain_id)
    )
    return last or 0


async def _count(
    session: AsyncSession, chain: Select[AuditEntry], where: EntryFilter, *, through: int, cap: int
) -> int:
    matching = where.apply(chain.where(AuditEntry.seq <= through))
    counted = select(func.count()).select_from(matching.limit(cap).subquery())
    return int(await session.scalar(counted) or 0)


async def export_pages(
    db: Database, tenant_id: TenantID, where: EntryFilter, *, through: int, page_rows: int
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The filter's entries up to `through`, newest first, `page_rows` at a time, each page
    read in a short transaction of its own from where the last one ended."""
    pages = _pages(db, entries(tenant_id), where, through=through, page_rows=page_rows)
    async for page in pages:
        yield page


async def _pages(
    db: Database, chain: Select[AuditEntry], where: EntryFilter, *, through: int, page_rows: int
) -> AsyncIterator[list[tuple[Any, ...]]]:
    before = through + 1
    while True:
        statement = where.apply(chain.where(AuditEntry.seq < before))
        async with db.transaction(read_only=True) as session:
            found = (
                await session.scalars(statement.order_by(AuditEntry.seq.desc()).limit(page_rows))
            ).all()
        if not found:
            return
        yield [_export_values(entry) for entry in found]
        if len(found) < page_rows:
            return
        before = found[-1].seq


def _filters_of(where: EntryFilter) -> dict[str, str]:
    asked = {
        "action": where.action, "actor": where.actor, "target": where.target,
        "outcome": where.outcome.value if where.outcome else None,
        "since": where.since.isoformat() if where.since else None,
        "until": where.until.isoformat() if where.until else None,
    }  # fmt: skip
    return {name: value for name, value in asked.items() if value}


async def _record_export(
    db: Database,
    actor: service.Actor,
    tenant_id: TenantID | None,
    where: EntryFilter,
    *,
    rows: int,
    through: int,
) -> None:
    """Put the export on record (committed before the file goes out) on the chain exported:
    who, which filters, how many rows. A filter value shaped like a secret is withheld, not
    refused."""
    details: dict[str, Any] = {
        "format": "csv", "filters": _filters_of(where), "through_seq": through,
        "rows": min(rows, csvexport.MAX_ROWS), "cut": rows > csvexport.MAX_ROWS,
    }  # fmt: skip
    async with db.transaction() as session:
        try:
            await service.record(
                session, actor=actor, action=EXPORTED, tenant_id=tenant_id,
                target_type="audit_log", details=details,
            )  # fmt: skip
        except service.AuditDetailRefused:
            details["filters"] = dict.fromkeys(details["filters"], "[withheld]")
            await service.record(
                session, actor=actor, action=EXPORTED, tenant_id=tenant_id,
                target_type="audit_log", details=details,
            )  # fmt: skip


async def _export(
    session: AsyncSession,
    db: Database,
    actor: service.Actor,
    tenant_id: TenantID | None,
    where: EntryFilter,
    *,
    name: str,
) -> Stream:
    """One chain (a tenant's, or the platform's when `tenant_id` is None) as the filter
    narrows it, newest first, as a CSV download, audited before a byte of it leaves."""
    chain = platform_entries() if tenant_id is None else entries(tenant_id)
    through = await _through_seq(session, PLATFORM_CHAIN if tenant_id is None else tenant_id)
    limit = csvexport.MAX_ROWS
    rows = await _count(session, chain, where, through=through, cap=limit + 1)
    await _record_export(db, actor, tenant_id, where, rows=rows, through=through)
    pages = _pages(db, chain, where, through=through, page_rows=csvexport.PAGE_ROWS)
    chunks = csvexport.stream(EXPORT_COLUMNS, pages, limit=limit)
    return csvexport.download(csvexport.file_name("audit", name, utcnow().date()), chunks)


async def export_file(
    session: AsyncSession, db: Database, principal: Principal, where: EntryFilter
) -> Stream:
    """The tenant's log as the filter narrows it, newest first, as a CSV download
    (`hub.core.csvexport`), audited as `audit.exported` before a byte of it leaves."""
    tenant_id = principal.tenant
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    actor = service.Actor.of_principal(principal)
    return await _export(session, db, actor, tenant_id, where, name=tenant.slug)


async def export_platform_file(
    session: AsyncSession, db: Database, operator: service.Actor, where: EntryFilter
) -> Stream:
    """The platform chain as the filter narrows it, as `export_file` writes a tenant's; the
    export is audited on the platform chain."""
    return await _export(session, db, operator, None, where, name="platform")
