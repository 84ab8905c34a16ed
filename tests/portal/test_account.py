"""The account page: one's email and name, changing the password (other sessions end, this
one stays; audited), the live sessions, signing out everywhere else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.portal.service import check_password
from tests.portal.support import post_form, sign_in
from tests.support import PASSWORD, make_member, make_tenant

NEW = "a much better passphrase"


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    viewer = await make_member(session, tenant, email="viewer@acme.test", role=Role.VIEWER)
    await session.commit()
    return tenant, viewer


def second(portal: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=portal._transport, base_url=portal.base_url, headers={"user-agent": "Other/1.0"}
    )


async def audited(session: AsyncSession, action: str) -> list[AuditEntry]:
    return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


class TestAccount:
    async def test_shows_who_and_where_signed_in(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        async with second(portal) as other:
            await sign_in(other, "viewer@acme.test")
            await sign_in(portal, "viewer@acme.test")
            answer = await portal.get("/portal/account")
        assert answer.status_code == 200
        assert '<dd data-testid="account-email">viewer@acme.test</dd>' in answer.text
        assert "Other/1.0" in answer.text
        assert answer.text.count('class="pill ok">this one<') == 1
        assert "Sign out everywhere else" in answer.text

    async def test_signed_out_goes_to_sign_in(self, portal: httpx.AsyncClient) -> None:
        answer = await portal.get("/portal/account")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/portal/login")


class TestChangePassword:
    async def test_changes_it_ends_other_sessions_keeps_this_one(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        async with second(portal) as other:
            await sign_in(other, "viewer@acme.test")
            csrf = await sign_in(portal, "viewer@acme.test")
            answer = await post_form(
                portal, "/portal/account/password", csrf,
                {"current": PASSWORD, "password": NEW, "repeated": NEW},
            )  # fmt: skip
            assert answer.status_code == 303
            shown = await portal.get(answer.headers["location"])
            assert shown.status_code == 200
            assert "Your password was changed" in shown.text
            assert "Other/1.0" not in shown.text
            assert (await other.get("/portal/")).status_code == 303  # signed out
        entry = (await audited(session, "user.password_changed"))[-1]
        assert entry.details == {"sessions_ended": 1, "required": False}
        assert NEW not in str(entry.details)
        async with second(portal) as fresh:
            await sign_in(fresh, "viewer@acme.test", NEW)
        session.expire_all()  # the page changed the hash in its own request
        assert await check_password(session, email="viewer@acme.test", password=PASSWORD) is None

    @pytest.mark.parametrize(
        ("form", "field"),
        [
            ({"current": "wrong wrong wrong", "password": NEW, "repeated": NEW}, "current"),
            ({"current": PASSWORD, "password": "short", "repeated": "short"}, "password"),
            ({"current": PASSWORD, "password": NEW, "repeated": NEW + "!"}, "repeated"),
        ],
    )
    async def test_refusals_name_the_field_and_keep_no_password(
        self, portal: httpx.AsyncClient, acme: Any, form: dict[str, str], field: str
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        answer = await post_form(portal, "/portal/account/password", csrf, form)
        assert answer.status_code == 400
        assert f'data-testid="error-{field}"' in answer.text
        assert NEW not in answer.text
        assert PASSWORD not in answer.text

    async def test_without_csrf_is_refused(self, portal: httpx.AsyncClient, acme: Any) -> None:
        await sign_in(portal, "viewer@acme.test")
        answer = await portal.post(
            "/portal/account/password",
            data={"current": PASSWORD, "password": NEW, "repeated": NEW},
        )
        assert answer.status_code == 403


class TestSignOutElsewhere:
    async def test_ends_the_others_and_audits(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        async with second(portal) as other:
            await sign_in(other, "viewer@acme.test")
            csrf = await sign_in(portal, "viewer@acme.test")
            answer = await post_form(portal, "/portal/account/sessions/end-others", csrf)
            assert answer.status_code == 303
            assert (await other.get("/portal/")).status_code == 303
            shown = await portal.get(answer.headers["location"])
            assert "Your other sessions were signed out." in shown.text
            assert "Other/1.0" not in shown.text
        assert (await audited(session, "user.sessions_ended"))[-1].details == {"sessions_ended": 1}
