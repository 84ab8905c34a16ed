"""/api/v1/events: bad filters get a 400 naming the parameter."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hub.events.service import record_event
from tests.support import make_member, make_tenant


class TestListEvents:
    async def test_a_nul_in_the_type_filter_is_a_400_naming_it(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await make_member(
            session, await make_tenant(session, "acme"), email="admin@acme.example"
        )
        record_event(session, admin.tenant_id, "key.created", {"key": "k1"})
        await session.commit()
        response = await client.get("/api/v1/events?type=key.%00", headers=admin.headers)
        assert response.status_code == 400, response.text
        [problem] = response.json()["extra"]
        assert (problem["key"], problem["source"]) == ("type", "query")
        assert "matching regex" in problem["message"]
        listed = await client.get("/api/v1/events?type=key.", headers=admin.headers)
        assert [e["type"] for e in listed.json()] == ["key.created"]
