"""Forgot your password? in a real browser, under the pages' Content-Security-Policy: from
the sign-in page's link to an emailed link (a real SMTP server), whose token leaves the
address bar before the form shows, to signing in with the new password."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from hub.app import create_app
from hub.core.db import Database
from hub.ctm.simulator import bind
from hub.settings import Settings
from tests.integration.alerts.support import Sink, smtp_sink
from tests.portal.test_recovery import EMAIL, NEW, link_in, run_jobs
from tests.support import RecordingQueue, make_member, make_tenant

pytestmark = pytest.mark.slow


@pytest.fixture
async def mailing_hub(
    settings: Settings, committed_db: Database, redis: Any
) -> AsyncIterator[tuple[str, Settings, Sink]]:
    """The hub served on a loopback port, sending email to a sink; its URL is its public one."""
    sock = bind()
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    with smtp_sink() as (sink, smtp_url):
        served = settings.model_copy(update={"smtp_url": smtp_url, "public_url": url})
        app = create_app(served, database=committed_db, redis=redis)
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag only
                await asyncio.sleep(0.01)
            yield url, served, sink
        finally:
            server.should_exit = True
            await task


async def test_forgot_email_link_new_password_sign_in(
    browser: Any,
    mailing_hub: tuple[str, Settings, Sink],
    committed_db: Database,
    redis: Any,
    queue: RecordingQueue,
) -> None:
    url, served, sink = mailing_hub
    async with committed_db.transaction() as session:
        await make_member(session, await make_tenant(session, "acme", "Acme Health"), email=EMAIL)
    context = await browser.new_context(base_url=url)
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        await page.goto("/portal/login")
        await page.click("[data-testid=forgot-link]")
        await page.fill("input[name=email]", EMAIL)
        await page.click("button[type=submit]")
        assert "on its way" in (await page.text_content("[data-testid=forgot-sent]") or "")
        await run_jobs(served, committed_db, redis, queue)
        link = link_in(sink.to(EMAIL)[0])
        assert link.startswith(f"{url}/portal/login/reset?token=")

        await page.goto(link)
        assert page.url == f"{url}/portal/login/reset", "the token left the address bar"
        await page.fill("input[name=password]", NEW)
        await page.fill("input[name=repeated]", NEW)
        await page.click("button[type=submit]")
        await page.wait_for_selector("[data-testid=reset-done]")

        await page.goto("/portal/login")
        await page.fill("input[name=email]", EMAIL)
        await page.fill("input[name=password]", NEW)
        await page.click("button[type=submit]")
        await page.wait_for_url(re.compile(r".*/portal/?$"))
    finally:
        await context.close()
    assert not problems, problems
