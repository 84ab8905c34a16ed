"""Webhooks in a real browser: a tenant admin creates an endpoint, sees its signing secret
once (gone when the endpoint's page is reloaded), and sends a test event (htmx)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hub.auth.models import Role
from hub.core.db import Database
from hub.settings import Settings
from tests.portal.support import LOOPBACK_RECEIVERS
from tests.support import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.slow
URL = "http://127.0.0.1:9/hook"


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=LOOPBACK_RECEIVERS)


async def seed(committed_db: Database) -> None:
    async with committed_db.transaction() as session:
        tenant = await make_tenant(session, "acme", "Acme Health")
        await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)


class TestBrowserWebhooks:
    async def test_create_see_the_secret_once_and_send_a_test(
        self, page: Any, committed_db: Database
    ) -> None:
        await seed(committed_db)
        await page.goto("/portal/webhooks")
        await page.fill("input[name=email]", "admin@acme.test")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r".*/portal/webhooks$"))
        await page.click("[data-testid=new-endpoint]")
        await page.fill("input[name=url]", URL)
        await page.fill("input[name=event_types]", "complaint.*")
        await page.click("[data-testid=endpoint-form] button[type=submit]")
        secret = await page.text_content("[data-testid=secret]")
        assert secret is not None
        assert secret.startswith("whsec_")
        await page.click("[data-testid=secret-saved]")
        await page.wait_for_url(re.compile(r".*/portal/webhooks/[0-9a-f-]{36}$"))
        await page.reload()
        assert await page.locator("[data-testid=secret]").count() == 0
        assert secret not in await page.content()
        assert await page.text_content("[data-testid=endpoint-url]") == URL
        await page.click("[data-testid=send-test]")  # htmx: HX-Redirect back with a message
        await page.wait_for_url(re.compile(r".*\?done=tested$"))
        assert "on its way" in (await page.text_content("[data-testid=flash]") or "")
        assert await page.text_content("[data-testid=message-status]") == "pending"
