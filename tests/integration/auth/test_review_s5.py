"""A security review's findings in auth: what a narrow or expiring token may do with the
token routes."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import service as auth
from hub.auth.models import Role, Scope
from tests.support import Member, bearer, make_member, make_tenant


@pytest.fixture
async def admin(session: AsyncSession) -> Member:
    member = await make_member(
        session, await make_tenant(session, "acme"), email="admin@acme.example"
    )
    await session.commit()
    return member


async def narrow_token(session: AsyncSession, member: Member, *scopes: Scope, **kw: object) -> str:
    issued = await auth.issue_token(
        session, user=member.user, tenant_id=member.tenant_id,
        scopes=frozenset(scopes), name="narrow", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    await session.commit()
    return issued.plaintext


class TestNarrowTokens:
    async def test_a_token_cannot_mint_one_with_scopes_it_lacks(
        self, client: httpx.AsyncClient, session: AsyncSession, admin: Member
    ) -> None:
        # A read-only token handed to a downstream system must not become an admin token.
        reader = await narrow_token(session, admin, Scope.COMPLAINTS_READ)
        response = await client.post(
            "/api/v1/tokens",
            headers=bearer(reader),
            json={"name": "escalate", "scopes": ["tenant:admin", "keys:manage"]},
        )
        assert response.status_code == 400, response.text
        assert response.json()["extra"][0]["key"] == "scopes"
        assert "keys:manage" in response.json()["detail"]
        same = await client.post(
            "/api/v1/tokens",
            headers=bearer(reader),
            json={"name": "same", "scopes": ["complaints:read"]},
        )
        assert same.status_code == 201, same.text

    async def test_an_expiring_token_cannot_mint_one_that_outlives_it(
        self, client: httpx.AsyncClient, session: AsyncSession, admin: Member
    ) -> None:
        brief = await narrow_token(
            session, admin, Scope.COMPLAINTS_READ, expires_in=timedelta(hours=1)
        )
        for body in (
            {"name": "forever", "scopes": ["complaints:read"]},
            {"name": "longer", "scopes": ["complaints:read"], "expires_in": "2h"},
        ):
            response = await client.post("/api/v1/tokens", headers=bearer(brief), json=body)
            assert response.status_code == 400, response.text
            assert response.json()["extra"][0]["key"] == "expires_in"
        shorter = await client.post(
            "/api/v1/tokens",
            headers=bearer(brief),
            json={"name": "shorter", "scopes": ["complaints:read"], "expires_in": "30m"},
        )
        assert shorter.status_code == 201, shorter.text

    async def test_an_admins_token_without_tenant_admin_sees_and_revokes_only_its_own(
        self, client: httpx.AsyncClient, session: AsyncSession, admin: Member
    ) -> None:
        other = await make_member(
            session, admin.tenant, email="cw@acme.example", role=Role.CASEWORKER
        )
        reader = await narrow_token(session, admin, Scope.COMPLAINTS_READ)
        others = (await client.get("/api/v1/tokens", headers=other.headers)).json()
        [others_token] = others
        listed = await client.get("/api/v1/tokens", headers=bearer(reader))
        assert others_token["id"] not in listed.text
        seen = await client.get(f"/api/v1/tokens/{others_token['id']}", headers=bearer(reader))
        assert seen.status_code == 404
        revoked = await client.delete(
            f"/api/v1/tokens/{others_token['id']}", headers=bearer(reader)
        )
        assert revoked.status_code in {403, 404}
        assert (await client.get("/api/v1/me", headers=other.headers)).status_code == 200
        # With tenant:admin the admin still manages every token of the tenant.
        assert (
            await client.get(f"/api/v1/tokens/{others_token['id']}", headers=admin.headers)
        ).status_code == 200
