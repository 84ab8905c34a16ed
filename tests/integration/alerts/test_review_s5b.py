"""A fresh-eyes review of alerts: who may acknowledge an alert (and that it is audited),
and who is still emailed about an alert after leaving the tenant."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules
from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth.models import Role
from hub.core.db import utcnow
from hub.keys import service as keys
from tests.integration.alerts.support import make_key, make_plan
from tests.support import make_member


class TestAcknowledgeIsForThoseAccountable:
    async def test_a_viewer_the_alert_is_not_for_cannot_acknowledge_a_critical_alert(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        viewer = await make_member(
            session, plan.admin.tenant, email="reader@plan.example", role=Role.VIEWER
        )
        key = await make_key(session, plan, environment="sandbox", key_id="KEY-ACK-1")
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
        )
        await session.commit()
        [alert] = (
            await client.get(
                "/api/v1/alerts", params={"kind": "key.compromised"}, headers=viewer.headers
            )
        ).json()
        refused = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=viewer.headers
        )
        assert refused.status_code == 403, refused.text
        for someone in (plan.caseworker,):  # a member it is not for, even one who may write
            also = await client.post(
                f"/api/v1/alerts/{alert['id']}/acknowledge", headers=someone.headers
            )
            assert also.status_code == 403, also.text
        still = await client.get("/api/v1/alerts/summary", headers=viewer.headers)
        assert still.json()["acknowledged"] == 0

        # The responsible party (a viewer here) is who the alert is for: they may.
        acked = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=plan.rp.headers
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledged_by"] == str(plan.rp.user.id)

    async def test_a_viewer_may_not_acknowledge_what_is_not_theirs_but_an_admin_may(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        viewer = await make_member(
            session, plan.admin.tenant, email="reader@plan.example", role=Role.VIEWER
        )
        await rules.evaluate(session, now=utcnow())  # both contracts uncovered (warning)
        await session.commit()
        alerts = (await client.get("/api/v1/alerts", headers=viewer.headers)).json()
        first = alerts[0]["id"]
        refused = await client.post(f"/api/v1/alerts/{first}/acknowledge", headers=viewer.headers)
        assert refused.status_code == 403, refused.text
        acked = await client.post(f"/api/v1/alerts/{first}/acknowledge", headers=plan.admin.headers)
        assert acked.status_code == 200, acked.text

    async def test_an_acknowledgement_is_audited_once(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan, environment="sandbox", key_id="KEY-ACK-2")
        await keys.mark_invalid(session, tenant_id=plan.tenant_id, key_id=key.id, reason="403")
        await session.commit()
        [alert] = (
            await client.get("/api/v1/alerts", params={"kind": "key.invalid"},
                             headers=plan.admin.headers)
        ).json()  # fmt: skip
        for _ in range(2):
            acked = await client.post(
                f"/api/v1/alerts/{alert['id']}/acknowledge", headers=plan.admin.headers
            )
            assert acked.status_code == 200, acked.text
        entries = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "alert.acknowledged", AuditEntry.target_id == alert["id"]
                )
            )
        ).all()
        assert len(entries) == 1, "acknowledging is a state change: audited, once"
        [entry] = entries
        assert entry.actor_id == plan.admin.user.id
        assert entry.tenant_id == plan.tenant_id
        assert entry.details["kind"] == "key.invalid"
        assert entry.details["severity"] == "critical"
        assert timedelta(0) <= utcnow() - entry.occurred_at < timedelta(minutes=5)
