"""The tokens page: one's own tokens (every member's for a tenant admin), creating one within
the role with the token shown once, revoking."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth import service as auth
from hub.auth.models import ApiToken, Role
from tests.portal.support import post_form, post_once, sign_in
from tests.support import make_member, make_tenant

SECRET = re.compile(r'data-testid="token-secret">([^<]+)<')


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    viewer = await make_member(session, tenant, email="viewer@acme.test", role=Role.VIEWER)
    await session.commit()
    return tenant, admin, viewer


async def token_named(session: AsyncSession, name: str, email: str | None = None) -> ApiToken:
    statement = select(ApiToken).where(ApiToken.name == name)
    if email is not None:
        user = await auth.get_user_by_email(session, email)
        statement = statement.where(ApiToken.user_id == user.id)
    found = await session.scalar(statement.execution_options(populate_existing=True))
    assert found is not None
    return found


class TestTokensList:
    async def test_a_member_sees_only_their_own(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, admin, viewer = acme
        await sign_in(portal, "viewer@acme.test")
        answer = await portal.get("/portal/tokens")
        assert answer.status_code == 200
        mine = (await auth.list_visible_tokens(session, _principal(viewer)))[0]
        assert f'data-testid="token-{mine.prefix}"' in answer.text
        theirs = await session.scalar(select(ApiToken).where(ApiToken.user_id == admin.user.id))
        assert theirs is not None
        assert theirs.prefix not in answer.text
        assert viewer.token not in answer.text  # never the token itself

    async def test_an_admin_sees_every_members_tokens_with_owner(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        _, admin, viewer = acme
        await sign_in(portal, "admin@acme.test")
        answer = await portal.get("/portal/tokens")
        assert "<th>Owner</th>" in answer.text
        assert "viewer@acme.test" in answer.text
        assert admin.token not in answer.text
        assert viewer.token not in answer.text


def _principal(member: Any) -> Any:
    from hub.auth.models import ROLE_SCOPES
    from hub.auth.principal import member_principal

    return member_principal(
        user_id=member.user.id, email=member.user.email, tenant_id=member.tenant.id,
        role=member.membership.role, scopes=ROLE_SCOPES[member.membership.role],
    )  # fmt: skip


class TestCreateToken:
    async def test_the_token_is_shown_once_and_works(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        answer = await post_once(
            portal, "/portal/tokens", csrf,
            {"name": "reporting", "scopes": ["complaints:read", "alerts:read"],
             "expires_in": "30d"},
        )  # fmt: skip
        assert answer.status_code == 200
        found = SECRET.search(answer.text)
        assert found is not None
        secret = found.group(1)
        token = await token_named(session, "reporting")
        assert sorted(token.scopes) == ["alerts:read", "complaints:read"]
        assert token.expires_at is not None
        again = await portal.get("/portal/tokens")
        assert secret not in again.text
        assert f'data-testid="token-{token.prefix}"' in again.text
        me = await portal.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200
        assert me.json()["scopes"] == ["alerts:read", "complaints:read"]
        issued = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "token.issued", AuditEntry.target_id == str(token.id)
            )
        )
        assert issued is not None
        assert secret not in str(issued.details)

    async def test_the_form_offers_only_the_roles_scopes(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "viewer@acme.test")
        answer = await portal.get("/portal/tokens")
        assert 'value="complaints:read"' in answer.text
        assert 'value="tenant:admin"' not in answer.text
        assert 'value="complaints:write"' not in answer.text

    async def test_a_scope_beyond_the_role_is_refused_beside_scopes(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        answer = await post_once(
            portal, "/portal/tokens", csrf,
            {"name": "sneaky", "scopes": ["tenant:admin"], "expires_in": "30d"},
        )  # fmt: skip
        assert answer.status_code == 400
        assert 'data-testid="error-scopes"' in answer.text
        assert "tenant:admin" in answer.text
        assert 'value="sneaky"' in answer.text
        assert await session.scalar(select(ApiToken).where(ApiToken.name == "sneaky")) is None

    async def test_no_scope_and_no_name_are_named(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        no_scope = await post_once(
            portal, "/portal/tokens", csrf, {"name": "x", "expires_in": "7d"}
        )
        assert no_scope.status_code == 400
        assert 'data-testid="error-scopes"' in no_scope.text
        no_name = await post_once(
            portal, "/portal/tokens", csrf, {"scopes": "alerts:read", "expires_in": "7d"}
        )
        assert no_name.status_code == 400
        assert 'data-testid="error-name"' in no_name.text
        bad_expiry = await post_once(
            portal,
            "/portal/tokens",
            csrf,
            {"name": "x", "scopes": "alerts:read", "expires_in": "9y"},
        )
        assert bad_expiry.status_code == 400
        assert 'data-testid="error-expires_in"' in bad_expiry.text

    async def test_never_expiring_is_a_choice(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_once(
            portal, "/portal/tokens", csrf,
            {"name": "forever", "scopes": "tenant:admin", "expires_in": "never"},
        )  # fmt: skip
        assert answer.status_code == 200
        assert (await token_named(session, "forever")).expires_at is None

    async def test_without_csrf_is_refused(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        await sign_in(portal, "viewer@acme.test")
        answer = await portal.post(
            "/portal/tokens", data={"name": "x", "scopes": "alerts:read", "expires_in": "7d"}
        )
        assert answer.status_code == 403
        assert await session.scalar(select(ApiToken).where(ApiToken.name == "x")) is None


class TestRevokeToken:
    async def test_revokes_and_shows_it(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        token = await token_named(session, "test", "viewer@acme.test")
        answer = await post_form(portal, f"/portal/tokens/{token.id}/revoke", csrf)
        assert answer.status_code == 303
        shown = await portal.get(answer.headers["location"])
        assert "The token was revoked." in shown.text
        assert "revoked 20" in shown.text
        assert (await token_named(session, "test", "viewer@acme.test")).revoked_at is not None
        assert await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "token.revoked", AuditEntry.target_id == str(token.id)
            )
        )

    async def test_a_member_may_not_revoke_anothers_token(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, admin, _ = acme
        theirs = await session.scalar(select(ApiToken).where(ApiToken.user_id == admin.user.id))
        assert theirs is not None
        csrf = await sign_in(portal, "viewer@acme.test")
        answer = await post_form(portal, f"/portal/tokens/{theirs.id}/revoke", csrf)
        assert answer.status_code == 403
        assert (await token_named(session, "test", "viewer@acme.test")).revoked_at is None

    async def test_another_tenants_token_is_a_404_page(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        beta = await make_tenant(session, "beta", "Beta Plan")
        stranger = await make_member(session, beta, email="s@beta.test", role=Role.ADMIN)
        await session.commit()
        theirs = await session.scalar(select(ApiToken).where(ApiToken.user_id == stranger.user.id))
        assert theirs is not None
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(portal, f"/portal/tokens/{theirs.id}/revoke", csrf)
        assert answer.status_code == 404
        await session.refresh(theirs)
        assert theirs.revoked_at is None
