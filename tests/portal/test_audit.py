"""The audit log page: the tenant's entries newest first, filtered as the API filters them,
paged; only for roles holding `audit:read`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth.models import Role
from tests.portal.support import sign_in
from tests.support import make_member, make_tenant


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    await make_member(session, tenant, email="worker@acme.test", role=Role.CASEWORKER)
    for n in range(3):
        await audit.record(
            session, actor=Actor.system("tests"), action="tests.step", tenant_id=tenant.id,
            target_type="thing", target_id=f"thing-{n}", details={"n": n, "note": "<b>x</b>"},
        )  # fmt: skip
    beta = await make_tenant(session, "beta", "Beta Plan")
    await audit.record(
        session, actor=Actor.system("tests"), action="tests.elsewhere", tenant_id=beta.id,
        details={},
    )  # fmt: skip
    await session.commit()
    return tenant, admin


class TestAuditLog:
    async def test_shows_the_tenants_entries_newest_first_with_details(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        answer = await portal.get("/portal/audit")
        assert answer.status_code == 200
        text = answer.text
        assert "tests.elsewhere" not in text
        assert text.index("thing-2") < text.index("thing-1") < text.index("thing-0")
        assert "membership.added" in text
        # Details as the API gives them (JSON), escaped: never markup.
        assert "{&#34;n&#34;: 2, &#34;note&#34;: &#34;&lt;b&gt;x&lt;/b&gt;&#34;}" in text
        assert "<b>x</b>" not in text

    async def test_filters_by_action_actor_and_target(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        steps = (await portal.get("/portal/audit", params={"action": "tests."})).text
        assert "thing-0" in steps
        assert "membership.added" not in steps
        by_actor = (await portal.get("/portal/audit", params={"actor": "tests"})).text
        assert "thing-0" in by_actor
        assert "token.issued" not in by_actor
        by_target = (await portal.get("/portal/audit", params={"target": "thing-1"})).text
        assert "thing-1" in by_target
        assert "thing-0" not in by_target

    async def test_filters_by_days(self, portal: httpx.AsyncClient, acme: Any) -> None:
        await sign_in(portal, "admin@acme.test")
        past = await portal.get(
            "/portal/audit", params={"since": "2001-01-01", "until": "2001-12-31"}
        )
        assert 'data-testid="audit-empty"' in past.text
        now = await portal.get("/portal/audit", params={"since": "2001-01-01"})
        assert "thing-0" in now.text

    async def test_a_bad_date_is_named(self, portal: httpx.AsyncClient, acme: Any) -> None:
        await sign_in(portal, "admin@acme.test")
        answer = await portal.get("/portal/audit", params={"since": "yesterday"})
        assert answer.status_code == 400
        assert 'data-testid="error-since"' in answer.text
        backwards = await portal.get(
            "/portal/audit", params={"since": "2026-02-01", "until": "2026-01-01"}
        )
        assert backwards.status_code == 400
        assert 'data-testid="error-until"' in backwards.text

    async def test_pages_older_entries(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        tenant, _ = acme
        for n in range(60):
            await audit.record(
                session, actor=Actor.system("tests"), action="tests.many", tenant_id=tenant.id,
                target_type="many", target_id=f"many-{n:02d}",
            )  # fmt: skip
        await session.commit()
        await sign_in(portal, "admin@acme.test")
        first = await portal.get("/portal/audit", params={"action": "tests.many"})
        assert "many-59" in first.text
        assert "many-09" not in first.text
        older = first.text.split('data-testid="older" href="')[1].split('"')[0]
        rest = await portal.get(older.replace("&amp;", "&"))
        assert "many-09" in rest.text
        assert "many-59" not in rest.text
        assert 'data-testid="older"' not in rest.text

    async def test_a_caseworker_gets_403_and_no_menu_entry(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "worker@acme.test")
        answer = await portal.get("/portal/audit")
        assert answer.status_code == 403
        assert 'href="/portal/audit"' not in (await portal.get("/portal/")).text
