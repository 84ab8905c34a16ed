"""Signing in and out of the portal, the session's limits, CSRF and origin checks, choosing
a tenant, and the guard that keeps each page to the roles that may open it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.core.db import Database, utcnow
from hub.portal import throttle
from hub.portal.models import PortalSession
from hub.settings import Settings
from tests.portal.support import csrf_of, post_form, sign_in
from tests.support import PASSWORD, app_client, make_member, make_tenant


@pytest.fixture
async def portal(settings: Settings, db: Database, redis: Any) -> Any:
    app = create_app(settings, database=db, redis=redis)
    async with app_client(app) as client:
        yield client


@pytest.fixture
async def acme(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    viewer = await make_member(session, tenant, email="viewer@acme.test", role=Role.VIEWER)
    await session.commit()
    return tenant, admin, viewer


async def sessions_of(session: AsyncSession) -> list[PortalSession]:
    statement = select(PortalSession).execution_options(populate_existing=True)
    return list(await session.scalars(statement))


class TestSignIn:
    async def test_pages_send_a_signed_out_visitor_to_sign_in(
        self, portal: httpx.AsyncClient
    ) -> None:
        answer = await portal.get("/portal/complaints?status=overdue")
        assert answer.status_code == 303
        assert (
            answer.headers["location"] == "/portal/login?next=/portal/complaints%3Fstatus%3Doverdue"
        )

    async def test_sign_in_lands_on_the_overview_of_the_only_tenant(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        overview = await portal.get("/portal/")
        assert overview.status_code == 200
        assert "Acme Health" in overview.text
        assert "admin@acme.test · admin" in overview.text
        assert overview.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in overview.headers["content-security-policy"]

    async def test_cookie_is_http_only_and_not_for_other_sites(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        answer = await portal.post(
            "/portal/login", data={"email": "admin@acme.test", "password": PASSWORD}
        )
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("hub_session=")
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Path=/" in cookie

    async def test_goes_on_to_the_page_asked_for(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        answer = await portal.post(
            "/portal/login",
            data={"email": "admin@acme.test", "password": PASSWORD, "next": "/portal/tokens"},
        )
        assert answer.headers["location"] == "/portal/tokens"

    @pytest.mark.parametrize(
        "target", ["https://evil.test/", "//evil.test/x", "/\\evil.test", "/api/v1/me"]
    )
    async def test_never_goes_on_to_another_site(
        self, portal: httpx.AsyncClient, acme: Any, target: str
    ) -> None:
        answer = await portal.post(
            "/portal/login", data={"email": "admin@acme.test", "password": PASSWORD, "next": target}
        )
        assert answer.headers["location"] == "/portal/"

    async def test_wrong_password_and_unknown_email_say_the_same(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        wrong = await portal.post(
            "/portal/login", data={"email": "admin@acme.test", "password": "nope"}
        )
        unknown = await portal.post(
            "/portal/login", data={"email": "who@acme.test", "password": "nope"}
        )
        assert wrong.status_code == unknown.status_code == 401
        assert "The email or the password is wrong." in wrong.text
        assert "The email or the password is wrong." in unknown.text
        assert "set-cookie" not in wrong.headers
        refused = list(
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "user.sign_in"))
        )
        assert [(e.outcome.value, e.details["email"]) for e in refused] == [
            ("denied", "admin@acme.test"),
            ("denied", "who@acme.test"),
        ]
        assert all("nope" not in str(e.details) for e in refused)

    async def test_an_email_is_locked_after_five_failures(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        for _ in range(throttle.EMAIL_LIMIT):
            await portal.post("/portal/login", data={"email": "admin@acme.test", "password": "no"})
        locked = await portal.post(
            "/portal/login", data={"email": "admin@acme.test", "password": PASSWORD}
        )
        assert locked.status_code == 429
        assert "Too many failed sign-ins" in locked.text
        assert "set-cookie" not in locked.headers
        other = await portal.post(
            "/portal/login", data={"email": "viewer@acme.test", "password": PASSWORD}
        )
        assert other.status_code == 303

    async def test_a_lockout_ends_by_itself(
        self, portal: httpx.AsyncClient, acme: Any, redis: Any
    ) -> None:
        await portal.post("/portal/login", data={"email": "admin@acme.test", "password": "no"})
        by_email, _ = throttle._keys("admin@acme.test", "")
        assert 0 < await redis.ttl(by_email) <= throttle.WINDOW_SECONDS
        assert await redis.get(by_email) == b"1"

    async def test_sign_in_is_audited(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "user.sign_in", AuditEntry.outcome == "success"
            )
        )
        assert entry is not None
        assert entry.actor_label == "admin@acme.test"


class TestSession:
    async def test_signing_in_again_replaces_the_session(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        first = portal.cookies["hub_session"]
        await sign_in(portal, "viewer@acme.test")  # the same browser, the old cookie sent
        assert portal.cookies["hub_session"] != first
        overview = await portal.get("/portal/")
        assert "viewer@acme.test · viewer" in overview.text
        live = [s for s in await sessions_of(session) if s.ended_at is None]
        assert len(live) == 1

    async def test_sign_out_ends_the_session_for_good(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        cookie = portal.cookies["hub_session"]
        out = await post_form(portal, "/portal/logout", csrf)
        assert out.status_code == 303
        portal.cookies.set("hub_session", cookie)  # a copy kept by someone else
        again = await portal.get("/portal/")
        assert again.status_code == 303
        assert again.headers["location"].startswith("/portal/login")

    async def test_idle_session_ends(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession, settings: Settings
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        (row,) = await sessions_of(session)
        row.last_seen_at = utcnow() - timedelta(minutes=settings.portal_idle_minutes + 1)
        await session.commit()
        answer = await portal.get("/portal/")
        assert answer.status_code == 303
        await session.refresh(row)
        assert row.ended_at is not None

    async def test_session_ends_at_its_lifetime_however_busy(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        (row,) = await sessions_of(session)
        row.expires_at = utcnow() - timedelta(seconds=1)
        await session.commit()
        assert (await portal.get("/portal/")).status_code == 303

    async def test_a_deactivated_user_is_signed_out(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, admin, _ = acme
        await sign_in(portal, "admin@acme.test")
        admin.user.is_active = False
        await session.commit()
        assert (await portal.get("/portal/")).status_code == 303

    async def test_a_removed_member_must_choose_again(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, _, viewer = acme
        await sign_in(portal, "viewer@acme.test")
        await session.delete(viewer.membership)
        await session.commit()
        answer = await portal.get("/portal/")
        assert answer.headers["location"] == "/portal/tenants"
        choose = await portal.get("/portal/tenants")
        assert "You are not a member of any tenant" in choose.text
        assert "Acme Health" not in choose.text


class TestForms:
    async def test_a_form_without_the_token_is_refused(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        answer = await portal.post("/portal/logout", data={})
        assert answer.status_code == 403
        assert "reload the page" in answer.text
        assert (await portal.get("/portal/")).status_code == 200  # still signed in

    async def test_a_token_of_another_session_is_refused(
        self, portal: httpx.AsyncClient, acme: Any, settings: Settings, db: Database, redis: Any
    ) -> None:
        other = create_app(settings, database=db, redis=redis)
        async with app_client(other) as second:
            theirs = await sign_in(second, "viewer@acme.test")
        await sign_in(portal, "admin@acme.test")
        answer = await post_form(portal, "/portal/logout", theirs)
        assert answer.status_code == 403

    async def test_a_form_from_another_origin_is_refused(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(
            portal, "/portal/logout", csrf, headers={"Origin": "https://evil.test"}
        )
        assert answer.status_code == 403
        assert "another site" in answer.text

    async def test_htmx_posts_carry_the_token_in_a_header(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        page = await portal.get("/portal/")
        assert f'hx-headers=\'{{"X-CSRF-Token": "{csrf}"}}\'' in page.text
        answer = await portal.post(
            "/portal/logout", headers={"X-CSRF-Token": csrf, "HX-Request": "true"}
        )
        assert answer.status_code == 200
        assert answer.headers["hx-redirect"] == "/portal/login"


class TestTenants:
    async def test_a_member_of_two_tenants_chooses(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        _, _admin, _ = acme
        beta = await make_tenant(session, "beta", "Beta Plans")
        await make_member(session, beta, email="admin@acme.test", role=Role.VIEWER)
        await session.commit()
        answer = await portal.post(
            "/portal/login", data={"email": "admin@acme.test", "password": PASSWORD}
        )
        assert answer.headers["location"] == "/portal/tenants"
        chooser = await portal.get("/portal/tenants")
        assert "Acme Health" in chooser.text
        assert "Beta Plans" in chooser.text
        assert (await portal.get("/portal/")).headers["location"] == "/portal/tenants"
        chosen = await post_form(
            portal, "/portal/tenants", csrf_of(chooser), {"tenant_id": str(beta.id)}
        )
        assert chosen.status_code == 303
        overview = await portal.get("/portal/")
        assert "Beta Plans" in overview.text
        assert "admin@acme.test · viewer" in overview.text

    async def test_cannot_choose_a_tenant_one_is_not_in(
        self, portal: httpx.AsyncClient, acme: Any, session: AsyncSession
    ) -> None:
        other = await make_tenant(session, "other", "Other Plan")
        await session.commit()
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(portal, "/portal/tenants", csrf, {"tenant_id": str(other.id)})
        assert answer.status_code == 404
        assert "Other Plan" not in answer.text


class TestGuard:
    async def test_a_viewer_may_not_open_admin_pages(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "viewer@acme.test")
        answer = await portal.get("/portal/members")
        assert answer.status_code == 403
        assert "Your role (viewer) may not open this page" in answer.text
        menu = (await portal.get("/portal/")).text
        assert 'href="/portal/members"' not in menu
        assert 'href="/portal/complaints"' in menu

    async def test_unknown_portal_paths_are_a_page_not_json(
        self, portal: httpx.AsyncClient, acme: Any
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        answer = await portal.get("/portal/no/such/thing")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")

    async def test_the_console_is_for_operators(self, portal: httpx.AsyncClient, acme: Any) -> None:
        await sign_in(portal, "admin@acme.test")
        assert (await portal.get("/console/")).status_code in {403, 404}

    async def test_the_root_leads_to_the_portal(self, portal: httpx.AsyncClient) -> None:
        answer = await portal.get("/")
        assert answer.status_code in {302, 307}
        assert answer.headers["location"] == "/portal/"
