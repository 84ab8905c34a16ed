"""Bearer-token authentication, scopes, and the token routes."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import service as auth
from hub.auth.models import ApiToken, Role, Scope
from hub.core.db import utcnow
from hub.core.errors import Invalid
from tests.support import Member, bearer, make_member, make_tenant


@pytest.fixture
async def admin(session: AsyncSession) -> Member:
    member = await make_member(
        session, await make_tenant(session, "acme"), email="admin@acme.example"
    )
    await session.commit()
    return member


class TestAuthentication:
    async def test_no_token_is_401_with_www_authenticate(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["status_code"] == 401

    @pytest.mark.parametrize(
        "header",
        ["Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer hub_" + "A" * 30 + "_AAAAAA", "Bearer "],
    )
    async def test_bad_token_is_401(self, client: httpx.AsyncClient, header: str) -> None:
        response = await client.get("/api/v1/me", headers={"Authorization": header})
        assert response.status_code == 401
        assert "www-authenticate" in response.headers

    async def test_valid_token_identifies_the_member(
        self, client: httpx.AsyncClient, admin: Member
    ) -> None:
        response = await client.get("/api/v1/me", headers=admin.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["email"] == "admin@acme.example"
        assert body["tenant_id"] == str(admin.tenant.id)
        assert body["role"] == "admin"
        assert "tenant:admin" in body["scopes"]

    async def test_expired_token_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, admin: Member
    ) -> None:
        issued = await auth.issue_token(
            session, user=admin.user, tenant_id=admin.tenant_id,
            scopes=frozenset({Scope.KEYS_READ}), name="old",
            expires_in=timedelta(minutes=1), now=utcnow() - timedelta(minutes=2),
        )  # fmt: skip
        await session.commit()
        assert (await client.get("/api/v1/me", headers=bearer(issued.plaintext))).status_code == 401

    async def test_revoked_token_is_refused(
        self, client: httpx.AsyncClient, session: AsyncSession, admin: Member
    ) -> None:
        response = await client.post(
            "/api/v1/tokens", headers=admin.headers, json={"name": "temp", "scopes": ["keys:read"]}
        )
        token = response.json()
        assert (await client.get("/api/v1/me", headers=bearer(token["secret"]))).status_code == 200
        revoked = await client.delete(
            f"/api/v1/tokens/{token['token']['id']}", headers=admin.headers
        )
        assert revoked.status_code == 200
        assert revoked.json()["revoked_at"] is not None
        assert (await client.get("/api/v1/me", headers=bearer(token["secret"]))).status_code == 401

    async def test_member_removed_from_tenant_loses_access(
        self, client: httpx.AsyncClient, session: AsyncSession, admin: Member
    ) -> None:
        await session.delete(admin.membership)
        await session.commit()
        assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 401

    async def test_only_the_hash_is_stored(self, session: AsyncSession, admin: Member) -> None:
        stored = (await session.scalars(select(ApiToken))).all()
        assert stored
        for row in stored:
            assert admin.token not in (row.token_hash, row.prefix, row.name)
            assert admin.token.startswith(row.prefix)


class TestScopes:
    async def test_missing_scope_is_403(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "narrow")
        member = await make_member(
            session, tenant, email="n@n.example", scopes=frozenset({Scope.KEYS_READ})
        )
        await session.commit()
        response = await client.get("/api/v1/members", headers=member.headers)
        assert response.status_code == 403
        assert "tenant:admin" in response.json()["detail"]

    async def test_role_caps_the_scopes_a_token_may_hold(
        self, session: AsyncSession, client: httpx.AsyncClient
    ) -> None:
        tenant = await make_tenant(session, "capped")
        viewer = await make_member(session, tenant, email="v@c.example", role=Role.VIEWER)
        await session.commit()
        response = await client.post(
            "/api/v1/tokens",
            headers=viewer.headers,
            json={"name": "sneaky", "scopes": ["complaints:write"]},
        )
        assert response.status_code == 400
        assert response.json()["extra"][0]["key"] == "scopes"
        with pytest.raises(Invalid, match="may not hold"):
            await auth.issue_token(
                session, user=viewer.user, tenant_id=viewer.tenant_id,
                scopes=frozenset({Scope.TENANT_ADMIN}), name="x",
            )  # fmt: skip

    async def test_demotion_narrows_tokens_already_issued(
        self, session: AsyncSession, client: httpx.AsyncClient, admin: Member
    ) -> None:
        assert (await client.get("/api/v1/members", headers=admin.headers)).status_code == 200
        admin.membership.role = Role.VIEWER
        await session.commit()
        assert (await client.get("/api/v1/members", headers=admin.headers)).status_code == 403


class TestTokenRoutes:
    async def test_token_is_shown_once_and_listed_without_it(
        self, client: httpx.AsyncClient, admin: Member
    ) -> None:
        created = await client.post(
            "/api/v1/tokens",
            headers=admin.headers,
            json={"name": "ci", "scopes": ["complaints:read"], "expires_in": "30d"},
        )
        assert created.status_code == 201
        body = created.json()
        assert body["secret"].startswith("hub_")
        assert body["token"]["expires_at"] is not None
        listed = await client.get("/api/v1/tokens", headers=admin.headers)
        assert body["secret"] not in listed.text
        assert body["token"]["id"] in listed.text

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            ({"name": "x", "scopes": ["complaints:eat"]}, "scopes"),
            ({"name": "x", "scopes": []}, "scopes"),
            ({"name": "x", "scopes": ["keys:read"], "expires_in": "forever"}, "expires_in"),
            ({"name": "x", "scopes": ["keys:read"], "expires_in": "999d"}, "expires_in"),
            ({"name": "c\x00i", "scopes": ["keys:read"]}, "name"),  # PostgreSQL cannot store it
        ],
    )
    async def test_bad_token_request_names_the_field(
        self, client: httpx.AsyncClient, admin: Member, payload: dict[str, object], field: str
    ) -> None:
        response = await client.post("/api/v1/tokens", headers=admin.headers, json=payload)
        assert response.status_code == 400
        assert response.json()["extra"][0]["key"] == field

    async def test_unknown_body_field_is_refused(
        self, client: httpx.AsyncClient, admin: Member
    ) -> None:
        response = await client.post(
            "/api/v1/tokens",
            headers=admin.headers,
            json={"name": "x", "scopes": ["keys:read"], "tenant_id": "elsewhere"},
        )
        assert response.status_code == 400
        assert "tenant_id" in response.text

    async def test_member_cannot_revoke_someone_elses_token(
        self, client: httpx.AsyncClient, session: AsyncSession, admin: Member
    ) -> None:
        worker = await make_member(
            session, admin.tenant, email="w@acme.example", role=Role.CASEWORKER
        )
        await session.commit()
        admins_token_id = (await client.get("/api/v1/tokens", headers=admin.headers)).json()[0][
            "id"
        ]
        response = await client.delete(f"/api/v1/tokens/{admins_token_id}", headers=worker.headers)
        assert response.status_code == 403
        own = await client.get("/api/v1/tokens", headers=worker.headers)
        assert [t["user_id"] for t in own.json()] == [str(worker.user.id)]
