"""`hub tenants health`: which tenant needs attention, in counts and ages only."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.service import Actor
from hub.auth import service as auth
from hub.complaints.models import ResolutionState
from hub.core.db import utcnow
from hub.core.ids import TenantID
from hub.keys import service as keys
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.metrics.tenants import tenant_health
from hub.tenants import service as tenants
from tests.integration.complaints.support import make_complaint
from tests.support import PASSWORD, make_member, make_tenant


async def seed(session: AsyncSession) -> None:
    troubled = await make_tenant(session, "troubled")
    admin = await make_member(session, troubled, email="admin@troubled.example")
    await keys.add_contract(session, admin.principal, number="H1234")
    data = KeyCreate(
        environment="production", key_id="TROUBLED-KEY", secret="s3cret", hpms_user_id="RP01",
        technical_poc=TechnicalPoc("Toni", "toni@troubled.example"), contracts=["H1234"],
        verify=False,
    )  # fmt: skip
    key = await keys.create_key(session, admin.principal, data=data, verifier=None)
    await keys.report_compromise(
        session, tenant_id=TenantID(troubled.id), key_id=key.id, actor=Actor.system("test")
    )
    today = utcnow().date()
    tid = TenantID(troubled.id)
    weeks_ago = today - timedelta(days=20)
    await make_complaint(session, tid, received=weeks_ago, assigned=weeks_ago)  # overdue
    resolved_at_cms = today - timedelta(days=15)  # not overdue
    await make_complaint(
        session, tid, received=weeks_ago, assigned=weeks_ago, cms_resolution_date=resolved_at_cms
    )
    await make_complaint(session, tid, received=today, assigned=today)  # not yet due
    await make_complaint(session, tid, received=today, assigned=today, state=ResolutionState.QUEUED)
    await make_tenant(session, "calm")
    gone = await make_tenant(session, "gone")
    operator = await auth.create_user(
        session, email="ops@vendor.example", password=PASSWORD, is_operator=True
    )
    await tenants.offboard_tenant(session, tenant=gone, operator=operator)
    await session.flush()


class TestTenantHealth:
    async def test_says_which_tenant_needs_what(self, session: AsyncSession) -> None:
        await seed(session)
        found = {t.slug: t for t in await tenant_health(session, now=utcnow())}
        assert sorted(found) == ["calm", "troubled"]  # an offboarded tenant is left out
        troubled, calm = found["troubled"], found["calm"]
        assert (troubled.keys_active, troubled.keys_wanting_action) == (0, 1)
        assert troubled.complaints_overdue == 1
        assert troubled.alerts_critical >= 1  # key.compromised
        assert any("critical alert" in said for said in troubled.attention)
        assert any("key(s) need their RP" in said for said in troubled.attention)
        assert any("1 complaint(s) overdue" in said for said in troubled.attention)
        assert calm.attention == []
        assert "TROUBLED-KEY" not in json.dumps(troubled.as_dict())

    async def test_one_tenant_by_slug_even_offboarded(self, session: AsyncSession) -> None:
        await seed(session)
        (gone,) = await tenant_health(session, now=utcnow(), slug="gone")
        assert gone.status == "offboarded"
        assert await tenant_health(session, now=utcnow(), slug="nosuch") == []
