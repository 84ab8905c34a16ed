"""/api/v1/events: `type` is one exact type or a pattern (`key.*`, `*`); bad filters get a
400 naming the parameter."""

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
        listed = await client.get("/api/v1/events?type=key.*", headers=admin.headers)
        assert [e["type"] for e in listed.json()] == ["key.created"]

    async def test_type_matches_one_exact_type_or_a_pattern(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await make_member(
            session, await make_tenant(session, "acme"), email="admin@acme.example"
        )
        for type_ in ("key.created", "key.rotated", "sync.completed"):
            record_event(session, admin.tenant_id, type_, {"key": "k1"})
        await session.commit()

        async def types(filter_: str) -> list[str]:
            response = await client.get(
                "/api/v1/events", params={"type": filter_}, headers=admin.headers
            )
            assert response.status_code == 200, response.text
            return [e["type"] for e in response.json()]

        assert await types("key.created") == ["key.created"]
        assert await types("key.*") == ["key.created", "key.rotated"]
        assert await types("*") == ["key.created", "key.rotated", "sync.completed"]
        assert await types("") == ["key.created", "key.rotated", "sync.completed"]

    async def test_a_prefix_or_unknown_type_is_a_400_naming_it(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await make_member(
            session, await make_tenant(session, "acme"), email="admin@acme.example"
        )
        record_event(session, admin.tenant_id, "key.created", {"key": "k1"})
        await session.commit()
        for bad in ("key.", "key", "key.create", "nothing.*", "key.c*", "%"):
            response = await client.get(
                "/api/v1/events", params={"type": bad}, headers=admin.headers
            )
            assert response.status_code == 400, (bad, response.text)
            [problem] = response.json()["extra"]
            assert problem["key"] == "type", bad
            assert "complaint.*" in problem["message"]
