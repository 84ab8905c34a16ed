"""Fixtures for webhook tests: loopback receivers allowed (as the issue asks for tests), a
receiver server, a delivery session, and a tenant admin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core.db import Database
from hub.settings import Settings
from tests.integration.webhooks.support import Harness, Receiver, policy
from tests.support import Member, make_member, make_tenant


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allow_private_networks": True,
            "webhook_allow_http_hosts": "127.0.0.1,localhost",
        }
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    session = policy().create_session()
    try:
        yield session
    finally:
        await session.close()


@pytest.fixture
async def admin(session: AsyncSession) -> Member:
    tenant = await make_tenant(session, "plan-a")
    member = await make_member(session, tenant, email="admin@plan-a.example")
    await session.commit()
    return member


@pytest.fixture
def harness(db: Database, http: aiohttp.ClientSession) -> Harness:
    return Harness(db, http)
