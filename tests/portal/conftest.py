"""Portal fixtures: an httpx client for page and form tests, and for browser tests the hub
served on a loopback port with a headless Chromium (Debian's `/usr/bin/chromium`, or
`HUB_TEST_CHROMIUM`) driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from hub.app import create_app
from hub.core.db import Database
from hub.ctm.simulator import bind
from hub.settings import Settings
from tests.support import app_client

CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
async def portal(settings: Settings, db: Database, redis: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the portal in the test's transaction (it keeps the session cookie)."""
    app = create_app(settings, database=db, redis=redis)
    async with app_client(app) as client:
        yield client


@pytest.fixture
async def live_url(settings: Settings, committed_db: Database, redis: Any) -> AsyncIterator[str]:
    """The hub served by uvicorn on a loopback port, on a database that really commits (a
    browser makes requests at once; the test's one-connection transaction is not for that)."""
    app = create_app(settings, database=committed_db, redis=redis)
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


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 - once per run, before any loop work
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--headless"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Any, live_url: str) -> AsyncIterator[Any]:
    """A fresh browser context (no cookies) on the live hub; page errors fail the test."""
    context = await browser.new_context(base_url=live_url)
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    # A page answered 4xx on purpose (a refused sign-in) is not a fault; a script, style or
    # request of the page's own that fails is (the console's words for both are the same).
    opened.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    opened.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and response.request.resource_type != "document"
            else None
        ),
    )
    opened.set_default_timeout(10_000)
    try:
        yield opened
    finally:
        await context.close()
    assert not problems, f"the browser reported errors: {problems}"
