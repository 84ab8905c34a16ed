"""The operator console: every tenant's health, onboarding a tenant and its first admin;
operators only, and never a secret or PHI on its pages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth import service as auth
from hub.auth.models import Role
from hub.tenants.models import Tenant
from tests.portal.support import csrf_of, post_form, post_once, sign_in, sign_in_first_time
from tests.support import PASSWORD, make_member, make_tenant


@pytest.fixture
async def operator(session: AsyncSession) -> Any:
    user = await auth.create_user(
        session, email="ops@vendor.test", password=PASSWORD, is_operator=True
    )
    await session.commit()
    return user


class TestConsole:
    async def test_an_operator_lands_on_the_console_and_sees_every_tenant(
        self, portal: httpx.AsyncClient, operator: Any, session: AsyncSession
    ) -> None:
        await make_tenant(session, "acme", "Acme Health")
        await make_tenant(session, "beta", "Beta Plans")
        await session.commit()
        answer = await portal.post(
            "/portal/login", data={"email": "ops@vendor.test", "password": PASSWORD}
        )
        assert answer.headers["location"] == "/console/"
        page = await portal.get("/console/")
        assert page.status_code == 200
        assert 'href="/console/tenants/acme"' in page.text
        assert 'href="/console/tenants/beta"' in page.text

    async def test_members_of_tenants_may_not_open_it(
        self, portal: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "acme", "Acme Health")
        await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
        await session.commit()
        await sign_in(portal, "admin@acme.test")
        answer = await portal.get("/console/")
        assert answer.status_code == 403
        assert "for platform operators" in answer.text
        assert 'href="/console/"' not in (await portal.get("/portal/")).text

    async def test_onboard_a_tenant_and_its_first_admin(
        self, portal: httpx.AsyncClient, operator: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "ops@vendor.test")
        created = await post_form(
            portal, "/console/tenants", csrf, {"name": "Gamma Care", "slug": "gamma"}
        )
        assert created.status_code == 303
        assert created.headers["location"] == "/console/tenants/gamma"
        added = await post_once(
            portal,
            "/console/tenants/gamma/members",
            csrf,
            {"email": "first@gamma.test", "role": "admin"},
        )
        assert added.status_code == 200
        assert "first@gamma.test is now a member (admin)." in added.text
        shown = added.text.split('class="secret">')[1].split("<")[0]
        assert len(shown) >= 20
        again = await portal.get("/console/tenants/gamma")
        assert shown not in again.text  # shown once
        assert "first@gamma.test" in again.text
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == "gamma"))
        assert tenant is not None
        actions = {
            (e.action, e.actor_label)
            for e in await session.scalars(
                select(AuditEntry).where(AuditEntry.tenant_id == tenant.id)
            )
        }
        assert ("tenant.created", "ops@vendor.test") in actions
        assert ("membership.added", "ops@vendor.test") in actions
        async with httpx.AsyncClient(transport=portal._transport, base_url=portal.base_url) as new:
            await sign_in_first_time(new, "first@gamma.test", shown)
            assert "Gamma Care" in (await new.get("/portal/")).text

    async def test_an_existing_user_is_added_without_a_new_password(
        self, portal: httpx.AsyncClient, operator: Any, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "acme", "Acme Health")
        await make_member(session, tenant, email="someone@acme.test", role=Role.VIEWER)
        await make_tenant(session, "beta", "Beta Plans")
        await session.commit()
        csrf = await sign_in(portal, "ops@vendor.test")
        added = await post_once(
            portal,
            "/console/tenants/beta/members",
            csrf,
            {"email": "someone@acme.test", "role": "caseworker"},
        )
        assert "someone@acme.test is now a member (caseworker)." in added.text
        assert 'class="secret"' not in added.text
        twice = await post_once(
            portal,
            "/console/tenants/beta/members",
            csrf,
            {"email": "someone@acme.test", "role": "viewer"},
        )
        assert twice.status_code == 400
        assert "already a member" in twice.text

    @pytest.mark.parametrize(
        ("form", "field", "words"),
        [
            ({"name": "X", "slug": "Not A Slug"}, "slug", "lower-case letters"),
            ({"name": "", "slug": "fine"}, "name", "must not be empty"),
        ],
    )
    async def test_a_bad_tenant_is_named_beside_its_field(
        self,
        portal: httpx.AsyncClient,
        operator: Any,
        form: dict[str, str],
        field: str,
        words: str,
    ) -> None:
        csrf = await sign_in(portal, "ops@vendor.test")
        answer = await post_form(portal, "/console/tenants", csrf, form)
        assert answer.status_code == 400
        error = answer.text.split(f'data-testid="error-{field}">')[1].split("<")[0]
        assert words in error
        assert f'value="{form["slug"]}"' in answer.text  # what was typed is kept

    async def test_a_bad_email_or_role_is_refused(
        self, portal: httpx.AsyncClient, operator: Any, session: AsyncSession
    ) -> None:
        await make_tenant(session, "acme", "Acme Health")
        await session.commit()
        csrf = await sign_in(portal, "ops@vendor.test")
        bad_email = await post_once(
            portal, "/console/tenants/acme/members", csrf, {"email": "nope", "role": "admin"}
        )
        assert bad_email.status_code == 400
        assert "is not an email address" in bad_email.text
        bad_role = await post_once(
            portal, "/console/tenants/acme/members", csrf, {"email": "a@acme.test", "role": "boss"}
        )
        assert bad_role.status_code == 400
        assert await auth.find_user_by_email(session, "a@acme.test") is None

    async def test_an_unknown_tenant_is_a_404_page(
        self, portal: httpx.AsyncClient, operator: Any
    ) -> None:
        await sign_in(portal, "ops@vendor.test")
        answer = await portal.get("/console/tenants/nobody")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")

    async def test_forms_need_the_session_token(
        self, portal: httpx.AsyncClient, operator: Any
    ) -> None:
        page = await portal.get("/portal/login")
        assert page.status_code == 200
        await sign_in(portal, "ops@vendor.test")
        answer = await portal.post("/console/tenants", data={"name": "Evil", "slug": "evil"})
        assert answer.status_code == 403
        assert csrf_of(await portal.get("/console/"))
