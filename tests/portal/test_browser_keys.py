"""The keys pages in a real browser: the RP adds a key (verified by the CTM simulator),
sees it listed without its secret, and reports it compromised after confirming (htmx)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from hub.app import create_app
from hub.auth.models import Role
from hub.core.db import Database
from hub.ctm.simulator import bind
from hub.ctm.simulator.server import RunningSimulator, running_simulator
from hub.ctm.simulator.state import SimState
from hub.keys import service as keys
from hub.keys.verify import CtmVerifier
from hub.settings import Settings
from tests.support import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.slow
KEY_PAGE = re.compile(r".*/portal/keys/[0-9a-f-]{36}(\?.*)?$")


@pytest.fixture
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(SimState(environment="sandbox")) as running:
        yield running


@pytest.fixture
async def live_url(
    settings: Settings, committed_db: Database, redis: Any, sim: RunningSimulator
) -> AsyncIterator[str]:
    """As the portal conftest's, with a verifier that asks the simulator (as CMS)."""
    here = settings.model_copy(update={"ctm_sandbox_url": sim.url})
    verifier = CtmVerifier(here)
    app = create_app(here, database=committed_db, redis=redis, ctm_verifier=verifier)
    sock = bind()
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag only
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        await verifier.aclose()


async def seed(committed_db: Database) -> None:
    async with committed_db.transaction() as session:
        tenant = await make_tenant(session, "acme", "Acme Health")
        admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
        await make_member(session, tenant, email="rp@acme.test", role=Role.CASEWORKER)
        await keys.add_contract(session, admin.principal, number="H1234")


class TestBrowserKeys:
    async def test_rp_adds_a_key_sees_it_listed_and_reports_it_compromised(
        self, page: Any, committed_db: Database, sim: RunningSimulator
    ) -> None:
        await seed(committed_db)
        key = sim.state.add_key(hpms_user="RPUSER01", contracts={"H1234"})
        await page.goto("/portal/keys")
        await page.fill("input[name=email]", "rp@acme.test")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/portal/keys")
        await page.click("[data-testid=add-key]")
        await page.fill("input[name=label]", "primary")
        await page.fill("input[name=key_id]", key.key_id)
        await page.fill("input[name=secret]", key.secret)
        await page.fill("input[name=hpms_user_id]", "RPUSER01")
        await page.fill("input[name=poc_name]", "Toni Tech")
        await page.fill("input[name=poc_email]", "toni@acme.test")
        await page.fill("input[name=contracts]", "H1234")
        await page.click("[data-testid=save-key]")
        await page.wait_for_url(KEY_PAGE)
        assert "verified with CMS" in (await page.text_content("[data-testid=flash]") or "")
        await page.click("nav.side >> text=Keys")
        await page.wait_for_url("**/portal/keys")
        assert key.key_id in (await page.text_content("[data-testid=keys]") or "")
        assert key.secret not in await page.content()
        await page.click("[data-testid=keys] >> text=primary")
        await page.wait_for_url(KEY_PAGE)
        asked: list[str] = []  # htmx's hx-confirm asks before it posts
        pending: list[Any] = []

        def confirm(dialog: Any) -> None:
            asked.append(dialog.message)
            pending.append(asyncio.ensure_future(dialog.accept()))

        page.once("dialog", confirm)
        await page.click("[data-testid=compromise]")
        await page.wait_for_url(re.compile(r".*\?done=compromised$"))
        assert asked == ["Report this key compromised? It stops being used at once."]
        assert await page.text_content("[data-testid=key-status]") == "compromised"
        assert key.secret not in await page.content()
