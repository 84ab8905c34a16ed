"""Offboarding against what is being made in the tenant at the same moment (PostgreSQL: two
transactions at once; SQLite has one writer, so they never overlap)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from hub.auth import service as auth
from hub.auth.models import User
from hub.core.db import Database
from hub.core.errors import Conflict
from hub.keys import service as keys
from hub.keys.models import ApiKey, KeyStatus
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.tenants import service as tenants
from hub.tenants.models import Tenant
from hub.webhooks import service as webhooks
from hub.webhooks.schemas import EndpointCreate
from tests.conftest import TEST_DATABASE_URL
from tests.integration.webhooks.support import rules as url_rules
from tests.support import PASSWORD, Member, make_member, make_tenant

pytestmark = pytest.mark.skipif(
    TEST_DATABASE_URL is None, reason="two transactions at once: PostgreSQL only"
)


def key_body(key_id: str) -> KeyCreate:
    return KeyCreate(
        environment="production", key_id=key_id, secret="s3cret", hpms_user_id="RPUSER01",
        technical_poc=TechnicalPoc("Toni", "toni@plan.example"),
        contracts=["H1234"], verify=False,
    )  # fmt: skip


async def setup(db: Database) -> tuple[Tenant, Member, User]:
    async with db.transaction() as session:
        tenant = await make_tenant(session, "racing")
        admin = await make_member(session, tenant, email="admin@racing.example")
        await keys.add_contract(session, admin.principal, number="H1234")
        operator = await auth.create_user(
            session, email="ops@vendor.example", password=PASSWORD, is_operator=True
        )
    return tenant, admin, operator


async def offboard(db: Database, tenant: Tenant, operator: User) -> None:
    async with db.transaction() as session:
        fresh = await session.get(Tenant, tenant.id)
        assert fresh is not None
        await tenants.offboard_tenant(session, tenant=fresh, operator=operator)


class TestOffboardingRaces:
    async def test_a_key_made_during_an_offboarding_is_refused(
        self, committed_db: Database
    ) -> None:
        tenant, admin, operator = await setup(committed_db)
        made: asyncio.Task[None] | None = None
        async with committed_db.transaction() as session:
            fresh = await session.get(Tenant, tenant.id)
            assert fresh is not None
            await tenants.offboard_tenant(session, tenant=fresh, operator=operator)

            async def make_key() -> None:
                async with committed_db.transaction() as other:
                    await keys.create_key(
                        other, admin.principal, data=key_body("LATE-KEY"), verifier=None
                    )

            made = asyncio.create_task(make_key())
            await asyncio.sleep(0.5)
            assert not made.done()  # waits for the offboarding to end
        with pytest.raises(Conflict, match="offboarded"):
            await asyncio.wait_for(made, timeout=10)
        async with committed_db.transaction() as session:
            assert (await session.scalars(select(ApiKey))).all() == []

    async def test_a_key_being_made_when_the_offboarding_starts_is_retired_with_it(
        self, committed_db: Database
    ) -> None:
        tenant, admin, operator = await setup(committed_db)
        async with committed_db.transaction() as session:
            key = await keys.create_key(
                session, admin.principal, data=key_body("EARLY-KEY"), verifier=None
            )
            offboarding = asyncio.create_task(offboard(committed_db, tenant, operator))
            await asyncio.sleep(0.5)
            assert not offboarding.done()  # waits for the key to be committed
        await asyncio.wait_for(offboarding, timeout=10)
        async with committed_db.transaction() as session:
            stored = await session.get(ApiKey, key.id)
            assert stored is not None
            assert stored.status is KeyStatus.DEACTIVATED

    async def test_an_endpoint_made_during_an_offboarding_is_refused(
        self, committed_db: Database
    ) -> None:
        tenant, admin, operator = await setup(committed_db)
        async with committed_db.transaction() as session:
            fresh = await session.get(Tenant, tenant.id)
            assert fresh is not None
            await tenants.offboard_tenant(session, tenant=fresh, operator=operator)

            async def make_endpoint() -> None:
                async with committed_db.transaction() as other:
                    data = EndpointCreate(url="https://receiver.example/h", event_types=["*"])
                    await webhooks.create_endpoint(
                        other, admin.principal, data=data, rules=url_rules()
                    )

            made = asyncio.create_task(make_endpoint())
            await asyncio.sleep(0.5)
            assert not made.done()
        with pytest.raises(Conflict, match="offboarded"):
            await asyncio.wait_for(made, timeout=10)
