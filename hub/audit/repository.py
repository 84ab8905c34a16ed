"""Tenant-scoped reads of the audit log: every query starts from a `TenantID`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.core.ids import TenantID


def entries(tenant_id: TenantID) -> Select[AuditEntry]:
    return select(AuditEntry).where(AuditEntry.chain_id == tenant_id)


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What a reader narrows the log to (each empty field: no narrowing).

    `action` is a prefix (`token.`), `actor` the actor's email or label or id as recorded,
    `target` a target type (`api_token`) or id, and `since`/`until` a half-open time range."""

    action: str | None = None
    actor: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, statement: Select[AuditEntry]) -> Select[AuditEntry]:
        if self.action:
            statement = statement.where(AuditEntry.action.startswith(self.action, autoescape=True))
        if self.actor:
            statement = statement.where(_actor_is(self.actor))
        if self.target:
            statement = statement.where(
                or_(AuditEntry.target_type == self.target, AuditEntry.target_id == self.target)
            )
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
    statement = where.apply(entries(tenant_id))
    if before is not None:
        statement = statement.where(AuditEntry.seq < before)
    return (await session.scalars(statement.order_by(AuditEntry.seq.desc()).limit(limit))).all()
