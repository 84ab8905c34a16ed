"""In a real browser: a user whose password an operator generated signs in, is sent to set
their own, and goes on to the page they asked for."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub.audit.service import Actor
from hub.auth import service as auth
from hub.auth.models import Role
from hub.core.db import Database
from tests.support import make_member, make_tenant

pytestmark = pytest.mark.slow
NEW = "a passphrase only I know"


class TestBrowserNewPassword:
    async def test_a_generated_password_is_replaced_then_on_to_the_alerts(
        self, page: Any, committed_db: Database
    ) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme", "Acme Health")
            member = await make_member(session, tenant, email="nia@acme.test", role=Role.VIEWER)
            given = (await auth.reset_password(session, member.user, actor=Actor.cli())).password
        await page.goto("/portal/alerts")
        await page.fill("input[name=email]", "nia@acme.test")
        await page.fill("input[name=password]", given)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r".*/portal/account/password\?next=.*"))
        form = page.locator("[data-testid=set-password]")
        await form.locator("input[name=current]").fill(given)
        await form.locator("input[name=password]").fill(NEW)
        await form.locator("input[name=repeated]").fill(NEW)
        await form.locator("button[type=submit]").click()
        await page.wait_for_url(re.compile(r".*/portal/alerts$"))
        assert "nia@acme.test · viewer" in (await page.text_content("[data-testid=who]") or "")
