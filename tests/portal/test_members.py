"""The members page: list, add (an existing user, or a new one with a one-time password),
change a role (never the last admin's), remove; only tenant admins."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth import service as auth
from hub.auth.models import ApiToken, Membership, Role, User
from tests.portal.support import csrf_of, post_form, post_once, sign_in, sign_in_first_time
from tests.support import PASSWORD, make_member, make_tenant

ONE_TIME = re.compile(r'data-testid="new-password">([^<]+)<')


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    worker = await make_member(session, tenant, email="worker@acme.test", role=Role.CASEWORKER)
    viewer = await make_member(session, tenant, email="viewer@acme.test", role=Role.VIEWER)
    await session.commit()
    return tenant, admin, worker, viewer


async def actions(session: AsyncSession, action: str) -> list[AuditEntry]:
    return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


class TestMembersList:
    async def test_shows_each_member_with_role_and_last_sign_in(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        answer = await portal.get("/portal/members")
        assert answer.status_code == 200
        for email in ("admin@acme.test", "worker@acme.test", "viewer@acme.test"):
            assert f'data-testid="member-{email}"' in answer.text
        row = answer.text.split('data-testid="member-worker@acme.test"')[1].split("</tr>")[0]
        assert '<option value="caseworker" selected>' in row
        assert "—" in row  # never signed in
        mine = answer.text.split('data-testid="member-admin@acme.test"')[1].split("</tr>")[0]
        assert "UTC" in mine  # signed in just now
        assert "Remove" not in mine  # not oneself

    async def test_a_caseworker_gets_403_and_no_menu_entry(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "worker@acme.test")
        answer = await portal.get("/portal/members")
        assert answer.status_code == 403
        assert "Your role (caseworker) may not open this page" in answer.text
        assert 'href="/portal/members"' not in (await portal.get("/portal/")).text

    async def test_a_viewer_cannot_post_to_members(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        answer = await post_form(
            portal, "/portal/members", csrf, {"email": "x@acme.test", "role": "admin"}
        )
        assert answer.status_code == 403
        assert await auth.find_user_by_email(session, "x@acme.test") is None


class TestAddMember:
    async def test_a_new_user_gets_a_one_time_password_that_signs_in(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_once(
            portal, "/portal/members", csrf,
            {"email": "New@Acme.test", "display_name": "Nia New", "role": "caseworker"},
        )  # fmt: skip
        assert answer.status_code == 200
        assert "new@acme.test was added as caseworker." in answer.text
        found = ONE_TIME.search(answer.text)
        assert found is not None
        password = found.group(1)
        assert len(password) >= 12
        # Shown once: the list page afterwards does not carry it.
        again = await portal.get("/portal/members")
        assert password not in again.text
        assert 'data-testid="member-new@acme.test"' in again.text
        assert "Nia New" in again.text
        assert await actions(session, "user.created")
        added = await actions(session, "membership.added")
        assert added[-1].actor_label == "admin@acme.test"
        assert added[-1].details["role"] == "caseworker"
        assert password not in str([e.details for e in await actions(session, "user.created")])
        other = httpx.AsyncClient(transport=portal._transport, base_url=portal.base_url)
        async with other:
            await sign_in_first_time(other, "new@acme.test", password)
            assert "new@acme.test · caseworker" in (await other.get("/portal/")).text

    async def test_an_existing_user_is_added_without_a_password(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        elsewhere = await make_tenant(session, "beta", "Beta Plan")
        await make_member(session, elsewhere, email="bo@beta.test", role=Role.ADMIN)
        await session.commit()
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_once(
            portal, "/portal/members", csrf, {"email": "bo@beta.test", "role": "viewer"}
        )
        assert answer.status_code == 200
        assert "bo@beta.test was added as viewer." in answer.text
        assert "new-password" not in answer.text
        user = await auth.get_user_by_email(session, "bo@beta.test")
        assert await auth.repository.find_member_by_user(session, acme[0].id, user.id)

    async def test_a_bad_email_is_named_and_kept(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_once(
            portal, "/portal/members", csrf, {"email": "not-an-email", "role": "viewer"}
        )
        assert answer.status_code == 400
        assert 'data-testid="error-email"' in answer.text
        assert "is not an email address" in answer.text
        assert 'value="not-an-email"' in answer.text

    async def test_an_existing_member_is_a_conflict_beside_the_email(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_once(
            portal, "/portal/members", csrf, {"email": "viewer@acme.test", "role": "admin"}
        )
        assert answer.status_code == 409
        assert 'data-testid="error-email"' in answer.text
        assert "already a member" in answer.text

    async def test_an_unknown_role_is_named(self, portal: httpx.AsyncClient, acme: Any) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_once(
            portal, "/portal/members", csrf, {"email": "z@acme.test", "role": "owner"}
        )
        assert answer.status_code == 400
        assert 'data-testid="error-role"' in answer.text

    async def test_without_csrf_is_refused(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        answer = await portal.post(
            "/portal/members", data={"email": "z@acme.test", "role": "viewer"}
        )
        assert answer.status_code == 403
        assert await auth.find_user_by_email(session, "z@acme.test") is None


class TestChangeRole:
    async def test_changes_the_role_and_audits_it(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, _, worker, _ = acme
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(
            portal, f"/portal/members/{worker.membership.id}/role", csrf, {"role": "viewer"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portal/members?done=role"
        shown = await portal.get(answer.headers["location"])
        assert "The member&#39;s role was changed." in shown.text
        row = shown.text.split('data-testid="member-worker@acme.test"')[1].split("</tr>")[0]
        assert '<option value="viewer" selected>' in row
        entry = (await actions(session, "membership.role_changed"))[-1]
        assert entry.details["from"] == "caseworker"
        assert entry.details["to"] == "viewer"
        assert entry.actor_label == "admin@acme.test"

    async def test_the_last_admin_keeps_the_role(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, admin, _, _ = acme
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(
            portal, f"/portal/members/{admin.membership.id}/role", csrf, {"role": "viewer"}
        )
        assert answer.status_code == 409
        assert "last admin" in answer.text
        await session.refresh(admin.membership)
        assert admin.membership.role is Role.ADMIN

    async def test_an_admin_may_step_down_when_another_admin_remains(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, admin, worker, _ = acme
        csrf = await sign_in(portal, "admin@acme.test")
        await post_form(
            portal, f"/portal/members/{worker.membership.id}/role", csrf, {"role": "admin"}
        )
        answer = await post_form(
            portal, f"/portal/members/{admin.membership.id}/role", csrf, {"role": "caseworker"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portal/"
        assert (await portal.get("/portal/members")).status_code == 403

    async def test_another_tenants_member_is_a_404_page(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        beta = await make_tenant(session, "beta", "Beta Plan")
        stranger = await make_member(session, beta, email="s@beta.test", role=Role.VIEWER)
        await session.commit()
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(
            portal, f"/portal/members/{stranger.membership.id}/role", csrf, {"role": "admin"}
        )
        assert answer.status_code == 404
        assert "<html" in answer.text
        removed = await post_form(portal, f"/portal/members/{stranger.membership.id}/remove", csrf)
        assert removed.status_code == 404
        await session.refresh(stranger.membership)
        assert stranger.membership.role is Role.VIEWER


class TestRemoveMember:
    async def test_removes_the_member_and_revokes_their_tokens(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, _, worker, _ = acme
        membership_id, user_id = worker.membership.id, worker.user.id
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(portal, f"/portal/members/{membership_id}/remove", csrf)
        assert answer.status_code == 303
        shown = await portal.get(answer.headers["location"])
        assert "The member was removed" in shown.text
        assert "worker@acme.test" not in shown.text
        session.expire_all()
        assert await session.get(Membership, membership_id) is None
        tokens = await session.scalars(select(ApiToken).where(ApiToken.user_id == user_id))
        assert all(t.revoked_at is not None for t in tokens)
        assert await actions(session, "membership.removed")
        assert await session.get(User, user_id) is not None  # the user stays

    async def test_htmx_confirmed_removal_redirects(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        _, _, _, viewer = acme
        await sign_in(portal, "admin@acme.test")
        members = await portal.get("/portal/members")
        assert f'hx-post="/portal/members/{viewer.membership.id}/remove"' in members.text
        assert "hx-confirm=" in members.text
        answer = await portal.post(
            f"/portal/members/{viewer.membership.id}/remove",
            headers={"HX-Request": "true", "X-CSRF-Token": csrf_of(members)},
        )
        assert answer.headers["hx-redirect"] == "/portal/members?done=removed"

    async def test_an_admin_cannot_remove_themselves(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        _, admin, _, _ = acme
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(portal, f"/portal/members/{admin.membership.id}/remove", csrf)
        assert answer.status_code == 409
        assert "cannot remove themselves" in answer.text

    async def test_a_removed_member_is_no_longer_signed_in_to_the_tenant(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        _, _, worker, _ = acme
        other = httpx.AsyncClient(transport=portal._transport, base_url=portal.base_url)
        async with other:
            await sign_in(other, "worker@acme.test", PASSWORD)
            csrf = await sign_in(portal, "admin@acme.test")
            await post_form(portal, f"/portal/members/{worker.membership.id}/remove", csrf)
            answer = await other.get("/portal/")
            assert answer.status_code == 303
            assert answer.headers["location"] == "/portal/tenants"
