"""Two transactions acting on one alert at once (the 5-minute cron, and a request's hook):
it is resolved, or escalated, once, and everyone is told once."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, select

from hub.alerts import repository, service
from hub.alerts.models import AlertKind, Severity, SubjectType
from hub.alerts.service import Audience
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID, uuid7
from hub.events.models import Event
from tests.conftest import TEST_DATABASE_URL
from tests.support import make_tenant

pytestmark = pytest.mark.skipif(
    TEST_DATABASE_URL is None,
    reason="concurrent writers need PostgreSQL (SQLite serialises every transaction already)",
)


def condition(tenant_id: TenantID, subject: UUID, stage: int = 1) -> service.Condition:
    return service.Condition(
        tenant_id=tenant_id, kind=AlertKind.SYNC_FAILING, severity=Severity.WARNING,
        subject_type=SubjectType.KEY, subject_id=subject,
        subject_label="KEY-RACE", message=f"failing (stage {stage})", next_action="look",
        audience=frozenset({Audience.TENANT_ADMIN}), stage=stage,
    )  # fmt: skip


async def count(db: Database, type_: str) -> int:
    async with db.transaction() as session:
        return int(
            await session.scalar(select(func.count()).select_from(Event).where(Event.type == type_))
            or 0
        )


async def open_alert(db: Database, stage: int = 1) -> tuple[TenantID, UUID]:
    async with db.transaction() as session:
        tenant_id = TenantID((await make_tenant(session, f"race-{uuid7().hex[:8]}")).id)
        subject = uuid7()
        await service.raise_alert(session, condition(tenant_id, subject, stage), now=utcnow())
    return tenant_id, subject


class TestOneAlertTwoTransactions:
    async def test_a_stale_reading_does_not_resolve_it_twice(self, committed_db: Database) -> None:
        db = committed_db
        tenant_id, _ = await open_alert(db)
        async with db.transaction() as cron:  # reads every open alert, unlocked
            stale = await repository.open_alerts(cron, kinds=[AlertKind.SYNC_FAILING])
            async with db.transaction() as hook:  # meanwhile a sync succeeds: resolved
                fresh = await repository.open_alerts(
                    hook, kinds=[AlertKind.SYNC_FAILING], tenant_id=tenant_id
                )
                done = await service.reconcile(hook, open_alerts=fresh, holding=[])
                assert len(done.resolved) == 1
            late = await service.reconcile(cron, open_alerts=stale, holding=[])
        assert late.resolved == []
        assert await count(db, service.RESOLVED) == 1

    async def test_a_stale_reading_does_not_escalate_it_twice(self, committed_db: Database) -> None:
        db = committed_db
        tenant_id, subject = await open_alert(db)
        later = condition(tenant_id, subject, stage=2)
        async with db.transaction() as cron:
            stale = await repository.open_alerts(cron, kinds=[AlertKind.SYNC_FAILING])
            async with db.transaction() as hook:
                fresh = await repository.open_alerts(
                    hook, kinds=[AlertKind.SYNC_FAILING], tenant_id=tenant_id
                )
                done = await service.reconcile(
                    hook, open_alerts=fresh, holding=[later], now=utcnow()
                )
                assert len(done.escalated) == 1
            late = await service.reconcile(
                cron, open_alerts=stale, holding=[later], now=utcnow() + timedelta(seconds=1)
            )
        assert late.escalated == []
        assert await count(db, service.ESCALATED) == 1
