"""The platform's state as Prometheus gauges: backlogs, their oldest items, keys, syncs,
resolutions and open alerts, summed over every tenant.

Read from the database (and Redis for the job queue) when `/metrics` is scraped, at most
once per `CACHE_SECONDS` per process. No label names a tenant, a key or a contract: the
figures are the vendor's, and they stay few whatever the number of tenants.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import Alert
from hub.complaints.models import Resolution, ResolutionState
from hub.core.ids import uuid7_floor
from hub.events.models import Event
from hub.keys.models import ApiKey, Environment, KeyStatus
from hub.syncs import service as sync_service
from hub.syncs.models import RunOutcome, SyncCursor, SyncRun
from hub.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage

CACHE_SECONDS = 10.0
ARQ_QUEUE = "arq:queue"  # arq's default queue, the one every hub job goes to


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def _age(now: datetime, moment: datetime | None) -> float:
    return 0.0 if moment is None else max(0.0, (now - moment).total_seconds())


async def _outbox(session: AsyncSession, now: datetime) -> list[Sample]:
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(Event.occurred_at)).where(Event.dispatched_at.is_(None))
        )
    ).one()
    return [
        Sample("hub_outbox_undispatched_events", "Events not yet handed to their handlers", count),
        Sample(
            "hub_outbox_oldest_undispatched_age_seconds",
            "Age of the oldest event not yet handed on (0 when none waits)",
            _age(now, oldest),
        ),
    ]


async def _webhooks(session: AsyncSession, now: datetime) -> list[Sample]:
    pending = WebhookMessage.status == MessageStatus.PENDING
    (waiting,) = (await session.execute(select(func.count()).where(pending))).one()
    oldest_due = await session.scalar(
        select(func.min(WebhookMessage.next_attempt_at)).where(
            pending, WebhookMessage.next_attempt_at <= now
        )
    )
    state = case(
        (WebhookEndpoint.is_enabled.is_(False), "disabled"),
        (WebhookEndpoint.failing_since.is_not(None), "failing"),
        else_="ok",
    )
    endpoints = dict.fromkeys(("ok", "failing", "disabled"), 0)
    for name, count in await session.execute(select(state, func.count()).group_by(state)):
        endpoints[name] = count
    return [
        Sample("hub_webhook_messages_pending", "Webhook messages not yet delivered", waiting),
        Sample(
            "hub_webhook_oldest_due_age_seconds",
            "How long the longest-due webhook message has been due (0 when none is)",
            _age(now, oldest_due),
        ),
        *(
            Sample("hub_webhook_endpoints", "Webhook endpoints by state", n, {"state": s})
            for s, n in endpoints.items()
        ),
    ]


async def _keys(session: AsyncSession) -> list[Sample]:
    counts = {
        (environment.value, status.value): 0 for environment in Environment for status in KeyStatus
    }
    rows = await session.execute(
        select(ApiKey.environment, ApiKey.status, func.count()).group_by(
            ApiKey.environment, ApiKey.status
        )
    )
    for environment, status, count in rows:
        counts[(environment.value, status.value)] = count
    return [
        Sample(
            "hub_keys",
            "HPMS API keys by environment and status",
            count,
            {"environment": environment, "status": status},
        )
        for (environment, status), count in counts.items()
    ]


async def serving_cursors(session: AsyncSession) -> list[tuple[sync_service.Pair, Any]]:
    """Each (key, contract) pair that syncs (each contract's serving key), with its cursor's
    state (failures, blocked, last success), or None before its first sync."""
    cursors = {
        (c.api_key_id, c.contract): c
        for c in await session.execute(
            select(
                SyncCursor.api_key_id,
                SyncCursor.contract,
                SyncCursor.is_blocked,
                SyncCursor.consecutive_failures,
                SyncCursor.last_success_at,
            )
        )
    }
    return [
        (pair, cursors.get((pair.key_id, pair.contract)))
        for pair in await sync_service.serving_pairs(session)
    ]


async def _syncs(session: AsyncSession, now: datetime) -> list[Sample]:
    """The (key, contract) pairs that sync (each contract's serving key), by state."""
    states = ("ok", "failing", "blocked", "never_synced")
    pairs = {(e.value, s): 0 for e in Environment for s in states}
    stalest = {e.value: 0.0 for e in Environment}
    for pair, cursor in await serving_cursors(session):
        environment = pair.environment.value
        if cursor is None or (cursor.last_success_at is None and not cursor.consecutive_failures):
            state = "never_synced"
        else:
            state = (
                "blocked"
                if cursor.is_blocked
                else "failing"
                if cursor.consecutive_failures
                else "ok"
            )
        pairs[(environment, state)] += 1
        if cursor is not None and cursor.last_success_at is not None and not cursor.is_blocked:
            stalest[environment] = max(stalest[environment], _age(now, cursor.last_success_at))
    # Runs are keyed by time-ordered ids: the last hour (a day for those still running) is a
    # primary-key range, not a scan of every run ever made.
    runs = dict.fromkeys((o.value for o in RunOutcome), 0)
    recent = await session.execute(
        select(SyncRun.outcome, func.count())
        .where(SyncRun.id >= uuid7_floor(now - timedelta(hours=1)))
        .group_by(SyncRun.outcome)
    )
    for outcome, count in recent:
        runs[outcome.value] = count
    runs[RunOutcome.RUNNING.value] = (
        await session.scalar(
            select(func.count()).where(
                SyncRun.id >= uuid7_floor(now - timedelta(days=1)),
                SyncRun.outcome == RunOutcome.RUNNING,
            )
        )
        or 0
    )
    return [
        *(
            Sample(
                "hub_sync_pairs",
                "(key, contract) pairs that sync, by environment and state",
                n,
                {"environment": e, "state": s},
            )
            for (e, s), n in pairs.items()
        ),
        *(
            Sample(
                "hub_sync_stalest_success_age_seconds",
                "Time since the least recent successful sync of a pair that syncs",
                age,
                {"environment": e},
            )
            for e, age in stalest.items()
        ),
        *(
            Sample(
                "hub_sync_runs_last_hour",
                "Sync runs started in the last hour by outcome "
                "(running: those started in the last day still running)",
                n,
                {"outcome": outcome},
            )
            for outcome, n in runs.items()
        ),
    ]


async def _resolutions(session: AsyncSession, now: datetime) -> list[Sample]:
    waiting = (ResolutionState.QUEUED, ResolutionState.UPLOADING)
    counts = {"queued": 0, "uploading": 0, "in_doubt": 0}
    oldest: datetime | None = None
    rows = await session.execute(
        select(
            Resolution.state,
            Resolution.in_doubt_since.is_not(None),
            func.count(),
            func.min(Resolution.created_at),
        )
        .where(Resolution.state.in_(waiting))
        .group_by(Resolution.state, Resolution.in_doubt_since.is_not(None))
    )
    for state, in_doubt, count, first in rows:
        counts["in_doubt" if in_doubt else state.value] += count
        oldest = first if oldest is None or (first is not None and first < oldest) else oldest
    return [
        *(
            Sample(
                "hub_resolutions_waiting",
                "Resolutions not yet decided by CMS: queued, uploading, or in doubt",
                n,
                {"state": s},
            )
            for s, n in counts.items()
        ),
        Sample(
            "hub_resolutions_oldest_waiting_age_seconds",
            "Age of the oldest resolution CMS has not decided (0 when none waits)",
            _age(now, oldest),
        ),
    ]


async def _alerts(session: AsyncSession) -> list[Sample]:
    rows = await session.execute(
        select(Alert.kind, Alert.severity, func.count())
        .where(Alert.resolved_at.is_(None))  # as the open alerts' partial index says
        .group_by(Alert.kind, Alert.severity)
    )
    return [
        Sample(
            "hub_alerts_unresolved",
            "Open and acknowledged alerts, by kind and severity",
            count,
            {"kind": kind.value, "severity": severity.value},
        )
        for kind, severity, count in rows
    ]


async def collect(session: AsyncSession, redis: Any, *, now: datetime) -> list[Sample]:
    started = time.perf_counter()
    samples = [
        *await _outbox(session, now),
        *await _webhooks(session, now),
        *await _keys(session),
        *await _syncs(session, now),
        *await _resolutions(session, now),
        *await _alerts(session),
        Sample("hub_jobs_queued", "Jobs waiting in the worker queue", await redis.zcard(ARQ_QUEUE)),
    ]
    samples.append(
        Sample(
            "hub_metrics_collect_seconds",
            "Time spent reading these figures",
            time.perf_counter() - started,
        )
    )
    return samples


def render(samples: Sequence[Sample]) -> bytes:
    """The samples in Prometheus's text format (one family per name)."""
    registry = CollectorRegistry(auto_describe=False)
    gauges: dict[str, Gauge] = {}
    for sample in samples:
        gauge = gauges.get(sample.name)
        if gauge is None:
            gauge = gauges[sample.name] = Gauge(
                sample.name, sample.help, labelnames=sorted(sample.labels), registry=registry
            )
        target = gauge.labels(**sample.labels) if sample.labels else gauge
        target.set(sample.value)
    return generate_latest(registry)
