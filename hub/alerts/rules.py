"""When the alert rules run (what holds is in `hub.alerts.conditions`). Two ways in:

- **Hooks**, called by the keys, syncs and webhooks services where an event happens, in
  that transaction: `on_key_change`, `on_sync_outcome`, `on_endpoint_disabled`. An event
  raises its alert (`key.invalid`, `key.compromised`, `key.access_lost`, `key.orphaned`,
  `sync.failing` after N failures, `webhook.endpoint_disabled`) and re-checks the subject,
  so a rotation resolves "rotation due" and "invalid" in the same commit.
- **The cron** (`evaluate`, with the time passed in) raises the time-based alerts
  (`key.rotation_due` and its escalations, `contract.uncovered`, `sync.failing` for a pair
  with no success in 2 intervals, `complaint.due_soon` / `complaint.overdue`) and resolves
  every open alert whose condition has cleared.

Alerts raised by an event are never raised by the cron (it cannot tell a key CMS refused
from one whose RP left); the cron only keeps them open while their condition holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import repository
from hub.alerts.conditions import (
    AlertPolicy,
    complaint_conditions,
    coverage_conditions,
    endpoint_condition,
    failures_condition,
    key_conditions,
    key_idents,
    resolution_conditions,
    sync_conditions,
)
from hub.alerts.models import AlertKind
from hub.alerts.service import Condition, Reconciled, reconcile
from hub.core.db import utcnow
from hub.core.ids import TenantID
from hub.keys.models import ApiKey, Environment, KeyStatus
from hub.syncs.models import SyncCursor
from hub.tenants.models import Tenant, TenantStatus
from hub.webhooks.models import WebhookEndpoint

__all__ = ["AlertPolicy", "evaluate", "on_endpoint_disabled", "on_key_change", "on_sync_outcome"]

KEY_KINDS = (
    AlertKind.KEY_ROTATION_DUE,
    AlertKind.KEY_INVALID,
    AlertKind.KEY_COMPROMISED,
    AlertKind.KEY_ACCESS_LOST,
    AlertKind.KEY_ORPHANED,
)
# Raised whenever they hold (by a hook or the cron); the other key kinds only by their event.
LEVEL_KEY_KINDS = frozenset({AlertKind.KEY_ROTATION_DUE, AlertKind.KEY_COMPROMISED})


async def on_key_change(
    session: AsyncSession,
    key: ApiKey,
    action: str,
    details: Mapping[str, Any],
    *,
    now: datetime | None = None,
    policy: AlertPolicy | None = None,
) -> Reconciled:
    """Hook: a key's state changed (`action` is its event type). Raise what the event
    means, resolve what it cleared, and re-check the key it replaces and, for a production
    key, which contracts are left uncovered."""
    now, policy = now or utcnow(), policy or AlertPolicy()
    result = await _check_key(session, key, now=now, policy=policy, event=action, details=details)
    if key.replaces_id is not None:
        old = await session.get(ApiKey, key.replaces_id)
        if old is not None:
            result.add(await _check_key(session, old, now=now, policy=policy))
    if key.environment is Environment.PRODUCTION:
        result.add(await check_coverage(session, TenantID(key.tenant_id), now=now))
    return result


async def _check_key(
    session: AsyncSession,
    key: ApiKey,
    *,
    now: datetime,
    policy: AlertPolicy,
    event: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Reconciled:
    ident = (await key_idents(session, [key])).get(key.id, str(key.id))
    holding = await key_conditions(session, key, ident=ident, now=now, policy=policy)
    contract = (details or {}).get("contract")
    may_raise = {
        c.dedupe_key
        for c in holding
        if c.kind in LEVEL_KEY_KINDS
        or (
            c.kind.value == event
            and (c.kind is not AlertKind.KEY_ACCESS_LOST or c.qualifier == contract)
        )
    }
    open_alerts = await repository.open_alerts(
        session, kinds=KEY_KINDS, tenant_id=TenantID(key.tenant_id), subject_id=key.id
    )
    return await reconcile(
        session, open_alerts=open_alerts, holding=holding, may_raise=may_raise, now=now
    )


async def check_coverage(
    session: AsyncSession, tenant_id: TenantID | None = None, *, now: datetime
) -> Reconciled:
    holding = await coverage_conditions(session, tenant_id)
    open_alerts = await repository.open_alerts(
        session, kinds=[AlertKind.CONTRACT_UNCOVERED], tenant_id=tenant_id
    )
    return await reconcile(session, open_alerts=open_alerts, holding=holding, now=now)


async def on_sync_outcome(
    session: AsyncSession,
    *,
    key: ApiKey,
    cursor: SyncCursor,
    succeeded: bool,
    now: datetime | None = None,
    policy: AlertPolicy | None = None,
) -> Reconciled:
    """Hook: a sync of (key, contract) ended. A success resolves `sync.failing`; the Nth
    failure in a row raises it. A blocked pair (the key was refused) is the key alerts'."""
    now, policy = now or utcnow(), policy or AlertPolicy()
    ident = (await key_idents(session, [key])).get(key.id, str(key.id))
    condition = failures_condition(key, ident, cursor)
    if succeeded:
        found = await repository.find_open(session, condition.tenant_id, condition.dedupe_key)
        open_alerts = [found] if found is not None else []
        return await reconcile(session, open_alerts=open_alerts, holding=[], now=now)
    if cursor.is_blocked or cursor.consecutive_failures < policy.sync_failures:
        return Reconciled()
    return await reconcile(session, open_alerts=[], holding=[condition], now=now)


async def on_endpoint_disabled(
    session: AsyncSession, endpoint: WebhookEndpoint, *, reason: str, now: datetime | None = None
) -> Reconciled:
    """Hook: the webhooks domain disabled a failing endpoint."""
    return await reconcile(
        session, open_alerts=[], holding=[endpoint_condition(endpoint, reason)], now=now
    )


# The cron --------------------------------------------------------------------------------


async def evaluate(
    session: AsyncSession, *, now: datetime | None = None, policy: AlertPolicy | None = None
) -> Reconciled:
    """Every rule over every active tenant: raise what the time brought, resolve what
    cleared. An offboarded tenant's alerts all resolve (nobody is left to act on them)."""
    now, policy = now or utcnow(), policy or AlertPolicy()
    active = frozenset(
        await session.scalars(select(Tenant.id).where(Tenant.status == TenantStatus.ACTIVE))
    )

    def live(conditions: Iterable[Condition]) -> list[Condition]:
        return [c for c in conditions if c.tenant_id in active]

    keys = live(await _key_holding(session, now=now, policy=policy))
    complaints = live(await complaint_conditions(session, now=now, policy=policy))
    result = Reconciled()
    for kinds, holding, may_raise, reason in (
        (KEY_KINDS, keys, {c.dedupe_key for c in keys if c.kind in LEVEL_KEY_KINDS}, None),
        ([AlertKind.CONTRACT_UNCOVERED], live(await coverage_conditions(session)), None, None),
        (
            [AlertKind.SYNC_FAILING],
            live(await sync_conditions(session, now=now, policy=policy)),
            None,
            None,
        ),
        ([AlertKind.COMPLAINT_OVERDUE], complaints, None, "the complaint was resolved"),
        (
            [AlertKind.COMPLAINT_DUE_SOON],
            complaints,
            None,
            "the complaint was resolved, or its deadline passed (see complaint.overdue)",
        ),
        (
            [AlertKind.RESOLUTION_UNCONFIRMED],
            live(await resolution_conditions(session)),
            None,
            "the resolution was settled",
        ),
        (
            [AlertKind.WEBHOOK_ENDPOINT_DISABLED],
            live(await _disabled_endpoints(session)),
            (),
            "the endpoint was enabled again",
        ),
    ):
        open_alerts = await repository.open_alerts(session, kinds=kinds)
        result.add(
            await reconcile(
                session,
                open_alerts=open_alerts,
                holding=[c for c in holding if c.kind in kinds],
                may_raise=may_raise,
                now=now,
                resolved_reason=reason or "the condition cleared",
            )
        )
    return result


async def _key_holding(
    session: AsyncSession, *, now: datetime, policy: AlertPolicy
) -> list[Condition]:
    keys = (
        await session.scalars(select(ApiKey).where(ApiKey.status != KeyStatus.DEACTIVATED))
    ).all()
    idents = await key_idents(session, keys)
    holding: list[Condition] = []
    for key in keys:
        ident = idents.get(key.id, str(key.id))
        holding += await key_conditions(session, key, ident=ident, now=now, policy=policy)
    return holding


async def _disabled_endpoints(session: AsyncSession) -> list[Condition]:
    """`webhook.endpoint_disabled` holds while its endpoint stays disabled (and exists)."""
    open_alerts = await repository.open_alerts(session, kinds=[AlertKind.WEBHOOK_ENDPOINT_DISABLED])
    disabled = await session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id.in_([a.subject_id for a in open_alerts]),
            WebhookEndpoint.is_enabled.is_(False),
        )
    )
    return [endpoint_condition(e, e.disabled_reason or "disabled") for e in disabled]
