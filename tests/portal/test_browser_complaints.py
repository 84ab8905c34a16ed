"""The caseworker's main flow in a real browser: filter the complaints list in place (htmx,
the address following), open a complaint, read its PHI, write a resolution, see it queued."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from hub.auth.models import Role
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID
from tests.integration.complaints.support import IMMEDIATE, make_complaint
from tests.support import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.slow


async def seed(committed_db: Database) -> None:
    today = utcnow().date()
    async with committed_db.transaction() as session:
        tenant = await make_tenant(session, "acme", "Acme Health")
        await make_member(session, tenant, email="case@acme.test", role=Role.CASEWORKER)
        tid = TenantID(tenant.id)
        await make_complaint(
            session, tid, complaint_id="CTM-LATE", received=today - timedelta(days=20),
            assigned=today - timedelta(days=20),
        )  # fmt: skip
        await make_complaint(
            session, tid, complaint_id="CTM-NEW", contract="S5678", issue_level=IMMEDIATE,
            received=today,
        )  # fmt: skip


class TestBrowserComplaints:
    async def test_filter_open_read_and_write_a_resolution(
        self, page: Any, committed_db: Database
    ) -> None:
        await seed(committed_db)
        await page.goto("/portal/complaints")
        await page.fill("input[name=email]", "case@acme.test")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r".*/portal/complaints$"))
        assert await page.locator("[data-testid=complaint-row]").count() == 2

        await page.select_option("select[name=status]", "overdue")  # htmx: no reload
        await page.wait_for_url(re.compile(r".*/portal/complaints\?status=overdue.*"))
        await page.wait_for_function(
            "document.querySelectorAll('[data-testid=complaint-row]').length === 1"
        )
        assert await page.text_content("[data-testid=status]") == "overdue"

        await page.click("text=CTM-LATE")
        await page.wait_for_url(re.compile(r".*/portal/complaints/[0-9a-f-]{36}$"))
        assert "Canary PHI summary" in (await page.text_content("[data-testid=phi]") or "")

        await page.fill("textarea[name=summary]", "Called the member; the refill was sent.")
        await page.select_option("select[name=complainant_satisfied]", "Y")
        await page.click("[data-testid=write-resolution] button[type=submit]")
        await page.wait_for_url(re.compile(r".*\?done=written$"))
        assert "Resolution queued" in (await page.text_content("[data-testid=flash]") or "")
        assert await page.text_content("[data-testid=resolution-pill]") == "queued"
        assert await page.locator("[data-testid=write-resolution]").count() == 0

        await page.goto("/portal/complaints?resolution=queued")
        assert await page.text_content("[data-testid=resolution-state]") == "queued"
