"""Each tenant's health, for the vendor's on-call engineer (`hub tenants health`): the
metrics say something is wrong, this says which tenant. Counts and ages only: no secret, no
PHI, no person.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import Alert, Severity
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.events.models import Event
from hub.keys.models import ApiKey, KeyStatus
from hub.metrics.snapshot import serving_cursors
from hub.tenants.models import Tenant, TenantStatus
from hub.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage

# Key states that want a person: the key is not used until someone acts.
KEYS_WANTING_ACTION = (KeyStatus.NEEDS_REPLACEMENT, KeyStatus.COMPROMISED, KeyStatus.SUSPENDED)
OPEN_COMPLAINT = (
    ResolutionState.NONE,
    ResolutionState.REJECTED,
    ResolutionState.QUEUED,
    ResolutionState.UPLOADING,
)


@dataclass
class TenantHealth:
    slug: str
    status: str
    keys_active: int = 0
    keys_wanting_action: int = 0
    pairs: int = 0
    pairs_failing: int = 0  # failing or blocked
    stalest_sync_hours: float | None = None  # since the least recent success of a pair
    complaints_overdue: int = 0  # past the deadline, and CMS holds no resolution
    resolutions_waiting: int = 0  # queued or on their way to CMS
    resolutions_in_doubt: int = 0
    webhook_messages_pending: int = 0
    webhook_endpoints_disabled: int = 0
    outbox_undispatched: int = 0
    alerts_open: int = 0
    alerts_critical: int = 0
    attention: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _by_tenant(rows: Any) -> dict[UUID, int]:
    return {tenant_id: count for tenant_id, count in rows}


async def _keys(session: AsyncSession, health: dict[UUID, TenantHealth]) -> None:
    rows = await session.execute(
        select(ApiKey.tenant_id, ApiKey.status, func.count()).group_by(
            ApiKey.tenant_id, ApiKey.status
        )
    )
    for tenant_id, status, count in rows:
        if tenant_id not in health:
            continue
        if status is KeyStatus.ACTIVE:
            health[tenant_id].keys_active += count
        elif status in KEYS_WANTING_ACTION:
            health[tenant_id].keys_wanting_action += count


async def _syncs(session: AsyncSession, health: dict[UUID, TenantHealth], now: datetime) -> None:
    for pair, cursor in await serving_cursors(session):
        tenant = health.get(pair.tenant_id)
        if tenant is None:
            continue
        tenant.pairs += 1
        if cursor is None:
            continue
        if cursor.is_blocked or cursor.consecutive_failures:
            tenant.pairs_failing += 1
        if cursor.last_success_at is not None:
            hours = (now - cursor.last_success_at).total_seconds() / 3600
            tenant.stalest_sync_hours = round(max(tenant.stalest_sync_hours or 0.0, hours), 1)


async def _complaints(
    session: AsyncSession, health: dict[UUID, TenantHealth], now: datetime
) -> None:
    # A complaint may be resolved through the end of its due day, UTC (`deadline_moment`):
    # it is overdue once that day is over, so every due date before today (UTC).
    last_overdue_day = now.astimezone(UTC).date() - timedelta(days=1)
    rows = await session.execute(
        select(Complaint.tenant_id, func.count())
        .where(
            Complaint.resolution_state.in_(OPEN_COMPLAINT),
            Complaint.cms_resolution_date.is_(None),
            Complaint.due_date <= last_overdue_day,
        )
        .group_by(Complaint.tenant_id)
    )
    for tenant_id, count in rows:
        if tenant_id in health:
            health[tenant_id].complaints_overdue = count
    waiting = await session.execute(
        select(Resolution.tenant_id, Resolution.in_doubt_since.is_not(None), func.count())
        .where(Resolution.state.in_((ResolutionState.QUEUED, ResolutionState.UPLOADING)))
        .group_by(Resolution.tenant_id, Resolution.in_doubt_since.is_not(None))
    )
    for tenant_id, in_doubt, count in waiting:
        if tenant_id in health:
            health[tenant_id].resolutions_waiting += count
            if in_doubt:
                health[tenant_id].resolutions_in_doubt += count


async def _deliveries(session: AsyncSession, health: dict[UUID, TenantHealth]) -> None:
    pending = _by_tenant(
        await session.execute(
            select(WebhookMessage.tenant_id, func.count())
            .where(WebhookMessage.status == MessageStatus.PENDING)
            .group_by(WebhookMessage.tenant_id)
        )
    )
    disabled = _by_tenant(
        await session.execute(
            select(WebhookEndpoint.tenant_id, func.count())
            .where(WebhookEndpoint.is_enabled.is_(False))
            .group_by(WebhookEndpoint.tenant_id)
        )
    )
    outbox = _by_tenant(
        await session.execute(
            select(Event.tenant_id, func.count())
            .where(Event.dispatched_at.is_(None))
            .group_by(Event.tenant_id)
        )
    )
    alerts: dict[UUID, dict[bool, int]] = defaultdict(dict)
    for alerted, severity, count in await session.execute(
        select(Alert.tenant_id, Alert.severity, func.count())
        .where(Alert.resolved_at.is_(None))
        .group_by(Alert.tenant_id, Alert.severity)
    ):
        critical = severity is Severity.CRITICAL
        alerts[alerted][critical] = alerts[alerted].get(critical, 0) + count
    for tenant_id, tenant in health.items():
        tenant.webhook_messages_pending = pending.get(tenant_id, 0)
        tenant.webhook_endpoints_disabled = disabled.get(tenant_id, 0)
        tenant.outbox_undispatched = outbox.get(tenant_id, 0)
        counts = alerts.get(tenant_id, {})
        tenant.alerts_critical = counts.get(True, 0)
        tenant.alerts_open = counts.get(True, 0) + counts.get(False, 0)


def _attention(tenant: TenantHealth, *, stale_hours: float) -> list[str]:
    """What an on-call engineer should look at first, in words."""
    said = []
    if tenant.alerts_critical:
        said.append(f"{tenant.alerts_critical} critical alert(s) open")
    if tenant.keys_wanting_action:
        said.append(f"{tenant.keys_wanting_action} key(s) need their RP")
    if tenant.pairs_failing:
        said.append(f"{tenant.pairs_failing} of {tenant.pairs} contract sync(s) failing")
    if tenant.stalest_sync_hours is not None and tenant.stalest_sync_hours > stale_hours:
        said.append(f"a contract last synced {tenant.stalest_sync_hours} h ago")
    if tenant.complaints_overdue:
        said.append(f"{tenant.complaints_overdue} complaint(s) overdue")
    if tenant.resolutions_in_doubt:
        said.append(f"{tenant.resolutions_in_doubt} resolution(s) in doubt")
    if tenant.webhook_endpoints_disabled:
        said.append(f"{tenant.webhook_endpoints_disabled} webhook endpoint(s) disabled")
    return said


async def tenant_health(
    session: AsyncSession,
    *,
    now: datetime,
    slug: str | None = None,
    stale_after: timedelta = timedelta(hours=2),
) -> list[TenantHealth]:
    """Every active tenant's figures (or the one named `slug`, offboarded or not), by slug."""
    statement = select(Tenant).order_by(Tenant.slug)
    statement = (
        statement.where(Tenant.slug == slug)
        if slug is not None
        else statement.where(Tenant.status == TenantStatus.ACTIVE)
    )
    health = {t.id: TenantHealth(t.slug, t.status.value) for t in await session.scalars(statement)}
    if health:
        await _keys(session, health)
        await _syncs(session, health, now)
        await _complaints(session, health, now)
        await _deliveries(session, health)
    for tenant in health.values():
        tenant.attention = _attention(tenant, stale_hours=stale_after.total_seconds() / 3600)
    return list(health.values())
