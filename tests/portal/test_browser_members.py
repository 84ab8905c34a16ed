"""Members in a real browser: an admin adds a new user, reads the one-time password, and the
new member signs in with it in another browser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub.auth.models import Role
from hub.core.db import Database
from tests.support import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.slow
OVERVIEW = re.compile(r".*/portal/?$")


async def sign_in(page: Any, email: str, password: str) -> None:
    await page.goto("/portal/")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(OVERVIEW)


class TestBrowserMembers:
    async def test_add_a_new_user_who_signs_in_with_the_one_time_password(
        self, page: Any, browser: Any, live_url: str, committed_db: Database
    ) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme", "Acme Health")
            await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
        await sign_in(page, "admin@acme.test", PASSWORD)
        await page.click("nav.side >> text=Members")
        await page.wait_for_url("**/portal/members")
        form = page.locator("[data-testid=add-member]")
        await form.locator("input[name=email]").fill("nia@acme.test")
        await form.locator("input[name=display_name]").fill("Nia New")
        await form.locator("select[name=role]").select_option("caseworker")
        await form.locator("button[type=submit]").click()
        password = (await page.text_content("[data-testid=new-password]") or "").strip()
        assert len(password) >= 12
        row = page.locator("[data-testid='member-nia@acme.test']")
        assert "Nia New" in (await row.text_content() or "")

        context = await browser.new_context(base_url=live_url)
        try:
            other = await context.new_page()
            await other.goto("/portal/")
            await other.fill("input[name=email]", "nia@acme.test")
            await other.fill("input[name=password]", password)
            await other.click("button[type=submit]")
            # A password someone else was given is replaced before anything else opens.
            await other.wait_for_url(re.compile(r".*/portal/account/password(\?.*)?$"))
            form = other.locator("[data-testid=set-password]")
            await form.locator("input[name=current]").fill(password)
            await form.locator("input[name=password]").fill("a passphrase only I know")
            await form.locator("input[name=repeated]").fill("a passphrase only I know")
            await form.locator("button[type=submit]").click()
            await other.wait_for_url(OVERVIEW)
            who = await other.text_content("[data-testid=who]") or ""
            assert "nia@acme.test · caseworker" in who
        finally:
            await context.close()
