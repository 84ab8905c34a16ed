"""/healthz answers while the process is up; /readyz names whichever backend is down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hub.app import create_app
from hub.core.db import Database
from hub.core.redis import EmbeddedRedis, connect
from hub.settings import Settings
from tests.support import app_client


class TestHealth:
    async def test_healthz_needs_no_backend(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_ok_when_both_answer(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "redis": "ok"}

    async def test_readyz_names_a_stopped_redis(
        self, settings: Settings, db: Database, tmp_path: Path
    ) -> None:
        own = EmbeddedRedis(tmp_path / "r")
        own.start()
        redis = await connect(own.url)
        try:
            app = create_app(settings, database=db, redis=redis)
            async with app_client(app) as client:
                assert (await client.get("/readyz")).status_code == 200
                own.stop()
                response = await client.get("/readyz")
        finally:
            own.stop()
            await redis.aclose()
        assert response.status_code == 503
        body = response.json()
        assert body["detail"].startswith("redis unreachable")
        assert body["extra"]["database"] == "ok"

    async def test_readyz_names_an_unreachable_database(
        self, settings: Settings, redis: Any, tmp_path: Path
    ) -> None:
        missing = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
        app = create_app(settings, database=missing, redis=redis)
        async with app_client(app) as client:
            response = await client.get("/readyz")
        await missing.dispose()
        assert response.status_code == 503
        assert response.json()["detail"].startswith("database unreachable")
        assert response.json()["extra"]["redis"] == "ok"

    async def test_every_response_carries_a_request_id(self, client: httpx.AsyncClient) -> None:
        mine = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert mine.headers["x-request-id"] == "abc-123"
        made = await client.get("/healthz", headers={"X-Request-ID": "bad id\n"})
        assert made.headers["x-request-id"] != "bad id\n"
        assert len(made.headers["x-request-id"]) == 36

    async def test_refusals_before_any_handler_carry_a_request_id_too(
        self, client: httpx.AsyncClient
    ) -> None:
        # Answered by the bearer-token middleware (401) and by routing (404, 405): an
        # integrator reporting one quotes its id, which the log lines of it carry.
        for method, path in (
            ("GET", "/api/v1/me"),
            ("GET", "/api/v1/no-such-route"),
            ("DELETE", "/healthz"),
        ):
            response = await client.request(method, path, headers={"X-Request-ID": "ask-7"})
            assert response.status_code in {401, 404, 405}, (method, path)
            assert response.headers.get("x-request-id") == "ask-7", (method, path)

    async def test_openapi_document_is_served(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/schema/openapi.json")
        assert response.status_code == 200
        document = response.json()
        assert "/api/v1/me" in document["paths"]
        assert "BearerToken" in document["components"]["securitySchemes"]


class TestAuditContext:
    async def test_audit_rows_carry_the_request_id_and_client_ip(
        self, client: httpx.AsyncClient, session: Any
    ) -> None:
        from sqlalchemy import select

        from hub.audit.models import AuditEntry
        from tests.support import make_member, make_tenant

        member = await make_member(
            session, await make_tenant(session, "ctx"), email="c@ctx.example"
        )
        await session.commit()
        response = await client.post(
            "/api/v1/tokens",
            headers=member.headers | {"X-Request-ID": "req-audit-1"},
            json={"name": "ci", "scopes": ["keys:read"]},
        )
        assert response.status_code == 201
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.request_id == "req-audit-1")
        )
        assert entry is not None
        assert entry.ip == "127.0.0.1"
