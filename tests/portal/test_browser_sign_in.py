"""The portal in a real browser: sign in, the layout, htmx loaded under the page's
Content-Security-Policy, sign out."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import Role
from hub.core.db import Database
from tests.support import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.slow
OVERVIEW = re.compile(r".*/portal/?$")


async def seed(committed_db: Database) -> None:
    async with committed_db.transaction() as session:
        await _people(session)


async def _people(session: AsyncSession) -> None:
    tenant = await make_tenant(session, "acme", "Acme Health")
    await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)


async def sign_in(page: Any, email: str = "admin@acme.test", password: str = PASSWORD) -> None:
    await page.goto("/portal/")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")


class TestBrowserSignIn:
    async def test_sign_in_show_the_overview_and_sign_out(
        self, page: Any, committed_db: Database
    ) -> None:
        await seed(committed_db)
        await sign_in(page)
        await page.wait_for_url(OVERVIEW)
        assert await page.text_content("[data-testid=tenant-name]") == "Acme Health"
        assert "admin@acme.test" in (await page.text_content("[data-testid=who]") or "")
        assert await page.evaluate("typeof window.htmx") == "object"  # loaded under the CSP
        await page.click("[data-testid=sign-out]")
        await page.wait_for_url("**/portal/login")
        await page.goto("/portal/")
        await page.wait_for_url(re.compile(r".*/portal/login\?next=.*"))

    async def test_a_wrong_password_says_so(self, page: Any, committed_db: Database) -> None:
        await seed(committed_db)
        await sign_in(page, password="not the password")
        error = await page.text_content("[data-testid=login-error]")
        assert error == "The email or the password is wrong."
