"""Tenant-scoped reads of the audit log: every query starts from a `TenantID`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.core.ids import TenantID


def entries(tenant_id: TenantID) -> Select[AuditEntry]:
    return select(AuditEntry).where(AuditEntry.chain_id == tenant_id)


async def list_entries(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    after: int = 0,
    limit: int = 100,
    action_prefix: str | None = None,
) -> Sequence[AuditEntry]:
    """The tenant's entries in chain order; `after` is the last `seq` already seen."""
    statement = entries(tenant_id).where(AuditEntry.seq > after)
    if action_prefix:
        statement = statement.where(AuditEntry.action.startswith(action_prefix, autoescape=True))
    return (await session.scalars(statement.order_by(AuditEntry.seq).limit(limit))).all()
