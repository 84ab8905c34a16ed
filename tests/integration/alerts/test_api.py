"""/api/v1/alerts: the tenant's list with filters, acknowledging, and each caller's own
email preference."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules
from hub.audit.service import Actor
from hub.auth.models import Role
from hub.core.db import utcnow
from hub.keys import service as keys
from tests.integration.alerts.support import SECRET_CANARY, make_key, make_plan
from tests.support import make_member, make_tenant


class TestListAndAcknowledge:
    async def test_list_filters_by_state_and_kind(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan, environment="sandbox", key_id="KEY-API-1")
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
        )
        await rules.evaluate(session, now=utcnow())  # both contracts uncovered in production
        await session.commit()
        listed = await client.get("/api/v1/alerts", headers=plan.caseworker.headers)
        assert listed.status_code == 200, listed.text
        assert sorted(a["kind"] for a in listed.json()) == [
            "contract.uncovered", "contract.uncovered", "key.compromised",
        ]  # fmt: skip
        assert SECRET_CANARY not in listed.text
        only = await client.get(
            "/api/v1/alerts", params={"kind": "key.compromised", "state": "open"},
            headers=plan.caseworker.headers,
        )  # fmt: skip
        [alert] = only.json()
        assert alert["severity"] == "critical"
        assert alert["subject"]["label"] == "sandbox key KEY-API-1"
        assert {r["reason"] for r in alert["recipients"]} == {
            "responsible_party", "tenant_admin", "vendor_operator",
        }  # fmt: skip
        operator = next(r for r in alert["recipients"] if r["reason"] == "vendor_operator")
        assert operator["email"] is None, "the vendor's people are not listed to a tenant"

        # A critical alert is acknowledged by someone it is for (test_review_s5b has who may).
        acked = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=plan.admin.headers
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["state"] == "acknowledged"
        assert acked.json()["acknowledged_by"] == str(plan.admin.user.id)
        twice = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=plan.admin.headers
        )
        assert twice.json()["acknowledged_at"] == acked.json()["acknowledged_at"]
        acknowledged = await client.get(
            "/api/v1/alerts", params={"state": "acknowledged"}, headers=plan.admin.headers
        )
        assert [a["id"] for a in acknowledged.json()] == [alert["id"]]
        summary = await client.get("/api/v1/alerts/summary", headers=plan.caseworker.headers)
        assert summary.json() == {"open": 2, "acknowledged": 1, "critical": 1}

        await keys.deactivate_key(session, plan.rp.principal, key_id=key.id)
        await session.commit()
        late = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=plan.admin.headers
        )
        assert late.status_code == 409
        resolved = await client.get(
            "/api/v1/alerts", params={"state": "resolved"}, headers=plan.admin.headers
        )
        assert [a["resolved_reason"] for a in resolved.json()] == ["the condition cleared"]

    async def test_bad_filter_names_the_parameter(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        await session.commit()
        bad = await client.get(
            "/api/v1/alerts", params={"state": "closed"}, headers=plan.admin.headers
        )
        assert bad.status_code == 400
        assert "state" in bad.text

    async def test_another_tenants_alert_is_not_found(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan, environment="sandbox")
        await keys.mark_invalid(session, tenant_id=plan.tenant_id, key_id=key.id, reason="403")
        other = await make_member(
            session, await make_tenant(session, "other"), email="x@other.example"
        )
        await session.commit()
        [alert] = (await client.get("/api/v1/alerts", headers=plan.admin.headers)).json()
        assert (await client.get("/api/v1/alerts", headers=other.headers)).json() == []
        response = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=other.headers
        )
        assert response.status_code == 404


class TestPreferences:
    async def test_each_caller_sets_their_own(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        viewer = await make_member(
            session, plan.admin.tenant, email="v@plan.example", role=Role.VIEWER
        )
        await session.commit()
        first = await client.get("/api/v1/alerts/preferences", headers=viewer.headers)
        assert first.json() == {"email": "immediate", "critical_always_emailed": True}
        put = await client.put(
            "/api/v1/alerts/preferences", headers=viewer.headers, json={"email": "off"}
        )
        assert put.status_code == 200, put.text
        assert (await client.get("/api/v1/alerts/preferences", headers=viewer.headers)).json()[
            "email"
        ] == "off"
        mine = await client.get("/api/v1/alerts/preferences", headers=plan.admin.headers)
        assert mine.json()["email"] == "immediate", "another user's choice is their own"
        bad = await client.put(
            "/api/v1/alerts/preferences", headers=viewer.headers, json={"email": "weekly"}
        )
        assert bad.status_code == 400
        assert "email" in bad.text
