"""Tenant-scoped queries for alerts, and the cross-tenant ones the rules' cron needs."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from uuid import UUID

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import (
    Alert,
    AlertKind,
    AlertPreference,
    AlertRecipient,
    AlertState,
    Severity,
)
from hub.auth.models import Membership, User
from hub.core.errors import NotFound
from hub.core.ids import TenantID


def alerts(tenant_id: TenantID) -> Select[Alert]:
    return select(Alert).where(Alert.tenant_id == tenant_id)


async def get_alert(session: AsyncSession, tenant_id: TenantID, alert_id: UUID) -> Alert:
    alert = await session.scalar(alerts(tenant_id).where(Alert.id == alert_id))
    if alert is None:
        raise NotFound("alert", alert_id)
    return alert


async def list_alerts(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    state: AlertState | None = None,
    kind: AlertKind | None = None,
    is_unresolved: bool = False,
    limit: int = 100,
) -> Sequence[Alert]:
    """Newest first; `is_unresolved` keeps the open and acknowledged ones (the portal's
    default view)."""
    statement = alerts(tenant_id)
    if is_unresolved:
        statement = statement.where(Alert.resolved_at.is_(None))
    if state is not None:
        statement = statement.where(Alert.state == state)
    if kind is not None:
        statement = statement.where(Alert.kind == kind)
    return (await session.scalars(statement.order_by(Alert.raised_at.desc()).limit(limit))).all()


async def unresolved_counts(session: AsyncSession, tenant_id: TenantID) -> dict[str, int]:
    """How many alerts are open and acknowledged, and how many of those are critical (the
    portal header's count)."""
    rows = await session.execute(
        select(Alert.state, Alert.severity, func.count())
        .where(Alert.tenant_id == tenant_id, Alert.resolved_at.is_(None))
        .group_by(Alert.state, Alert.severity)
    )
    counts = {"open": 0, "acknowledged": 0, "critical": 0}
    for state, severity, number in rows:
        counts[state.value] += number
        if severity is Severity.CRITICAL:
            counts["critical"] += number
    return counts


async def recipients_of(
    session: AsyncSession, tenant_id: TenantID, alert_ids: Collection[UUID]
) -> Sequence[AlertRecipient]:
    if not alert_ids:
        return []
    return (
        await session.scalars(
            select(AlertRecipient)
            .where(AlertRecipient.tenant_id == tenant_id, AlertRecipient.alert_id.in_(alert_ids))
            .order_by(AlertRecipient.created_at)
        )
    ).all()


async def open_alerts(
    session: AsyncSession,
    *,
    kinds: Collection[AlertKind],
    tenant_id: TenantID | None = None,
    subject_id: UUID | None = None,
) -> Sequence[Alert]:
    """Unresolved alerts of these kinds: one tenant's (or every tenant's, for the cron),
    optionally about one subject."""
    statement = select(Alert).where(Alert.kind.in_(kinds), Alert.resolved_at.is_(None))
    if tenant_id is not None:
        statement = statement.where(Alert.tenant_id == tenant_id)
    if subject_id is not None:
        statement = statement.where(Alert.subject_id == subject_id)
    return (await session.scalars(statement.order_by(Alert.raised_at))).all()


async def find_open(session: AsyncSession, tenant_id: TenantID, dedupe_key: str) -> Alert | None:
    return await session.scalar(
        alerts(tenant_id).where(Alert.dedupe_key == dedupe_key, Alert.resolved_at.is_(None))
    )


async def find_preference(session: AsyncSession, user_id: UUID) -> AlertPreference | None:
    return await session.scalar(select(AlertPreference).where(AlertPreference.user_id == user_id))


async def preferences_of(
    session: AsyncSession, user_ids: Collection[UUID]
) -> dict[UUID, AlertPreference]:
    if not user_ids:
        return {}
    found = await session.scalars(
        select(AlertPreference).where(AlertPreference.user_id.in_(user_ids))
    )
    return {p.user_id: p for p in found}


async def reachable_users(
    session: AsyncSession, tenant_id: TenantID, user_ids: Collection[UUID]
) -> set[UUID]:
    """Of these users, those an alert of the tenant may still reach: active, and still a
    member of the tenant (or a vendor operator). Recipients are chosen when an alert is
    raised; its emails go out later (a queue, retries, the daily digest, an escalation)."""
    if not user_ids:
        return set()
    member = (
        select(Membership.id)
        .where(Membership.tenant_id == tenant_id, Membership.user_id == User.id)
        .exists()
    )
    found = await session.scalars(
        select(User.id).where(User.id.in_(user_ids), User.is_active, or_(User.is_operator, member))
    )
    return set(found)
