"""A form that makes a secret, in a real browser: a member creates an API token, then
reloads the answer (Chromium sends the POST again, as a user who presses F5 on it does).
The hub makes no second token: the page says the form was already sent and names the
token made then, and the token shown first is the only one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from hub.auth.models import ApiToken, Role
from hub.core.db import Database
from tests.support import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.slow
OVERVIEW = re.compile(r".*/portal/?$")


async def tokens_named(committed_db: Database, name: str) -> list[ApiToken]:
    async with committed_db.transaction(read_only=True) as session:
        return list((await session.scalars(select(ApiToken).where(ApiToken.name == name))).all())


class TestBrowserReload:
    async def test_reloading_the_new_tokens_page_makes_no_second_token(
        self, page: Any, committed_db: Database
    ) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme", "Acme Health")
            await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
        await page.goto("/portal/")
        await page.fill("input[name=email]", "admin@acme.test")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(OVERVIEW)
        await page.goto("/portal/tokens")
        form = page.locator("[data-testid=create-token]")
        await form.locator("input[name=name]").fill("ci-bot")
        await form.locator("input[name=scopes][value='complaints:read']").check()
        await form.locator("button[type=submit]").click()
        secret = (await page.text_content("[data-testid=token-secret]") or "").strip()
        assert secret.startswith("hub_")
        [made] = await tokens_named(committed_db, "ci-bot")

        sent: list[str] = []
        page.on("request", lambda request: sent.append(f"{request.method} {request.url}"))
        answer = await page.reload()
        # The reload sent the form again (the answer is no-store: nothing to show but that).
        assert answer is not None
        assert any(line.startswith("POST ") and line.endswith("/portal/tokens") for line in sent)
        assert answer.status == 409
        heading = await page.text_content("h1")
        assert heading == "Already sent"
        detail = await page.text_content("[data-testid=error-detail]") or ""
        assert 'the token "ci-bot" was made then' in detail
        assert "cannot be shown again" in detail
        assert secret not in await page.content()
        assert [token.id for token in await tokens_named(committed_db, "ci-bot")] == [made.id]

        await page.click("[data-testid=made-link]")
        await page.wait_for_url(re.compile(r".*/portal/tokens$"))
        rows = page.locator("[data-testid=tokens] tbody tr")
        assert await rows.count() == 2  # the member's own token from the fixture, and ci-bot
        assert await page.locator(f"[data-testid='token-{made.prefix}']").count() == 1
