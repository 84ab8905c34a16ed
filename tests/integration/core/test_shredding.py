"""Offboarding crypto-shreds a tenant: its data keys are destroyed, so the raw rows it
leaves behind no longer open, while every other tenant's values still do."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import service as audit
from hub.audit.models import AuditEntry
from hub.auth import service as auth
from hub.auth.models import ApiToken, User
from hub.core import crypto
from hub.core.crypto import TenantKeyDestroyed
from hub.core.crypto.models import KeyState, TenantKey
from hub.core.db import Database
from hub.core.errors import Conflict, Forbidden
from hub.tenants import service as tenants
from hub.tenants.models import Tenant, TenantStatus
from tests.support import PASSWORD, make_member, make_tenant
from tests.trust import (
    SECRET_FIELD,
    TEST_MASTER_KEY,
    open_all,
    raw_secrets,
    ring,
    sealed_table,
    store_secret,
    with_crypto,
)


@pytest.fixture
async def table(engine: AsyncEngine) -> AsyncIterator[Table]:
    async with sealed_table(engine) as created:
        yield created


async def make_operator(database: Database) -> User:
    async with database.transaction() as session:
        return await auth.create_user(
            session, email="ops@vendor.example", password=PASSWORD, is_operator=True
        )


async def two_tenants(database: Database) -> tuple[Tenant, Tenant]:
    async with database.transaction() as session:
        doomed, kept = await make_tenant(session, "doomed"), await make_tenant(session, "kept")
        for tenant in (doomed, kept):
            await store_secret(session, tenant.id, "key", f"{tenant.slug}-api-secret")
            await store_secret(session, tenant.id, "hook", f"{tenant.slug}-webhook-secret")
    return doomed, kept


async def offboard(database: Database, tenant: Tenant, operator: User) -> int:
    async with database.transaction() as session:
        fresh = await tenants.get_tenant_by_slug(session, tenant.slug)
        return await tenants.offboard_tenant(session, tenant=fresh, operator=operator)


class TestOffboarding:
    async def test_raw_rows_no_longer_open_and_other_tenant_is_untouched(
        self, committed_db: Database, table: Table
    ) -> None:
        operator = await make_operator(committed_db)
        doomed, kept = await two_tenants(committed_db)
        assert await open_all(committed_db, doomed.id) == {
            "hook": "doomed-webhook-secret",
            "key": "doomed-api-secret",
        }
        async with committed_db.transaction() as session:
            rows_before = await raw_secrets(session, doomed.id)

        assert await offboard(committed_db, doomed, operator) == 2  # data key and index key

        # A brand-new process (cold cache) on the full key ring: the rows are still there,
        # byte for byte, and none of them opens.
        fresh = with_crypto(committed_db, ring(("test1", TEST_MASTER_KEY)))
        async with fresh.transaction() as session:
            rows_after = await raw_secrets(session, doomed.id)
            assert rows_after == rows_before
            for row_id, _, sealed in rows_after:
                with pytest.raises(TenantKeyDestroyed, match=str(doomed.id)):
                    await crypto.open(
                        session, sealed, tenant=doomed.id, field=SECRET_FIELD, row=row_id
                    )
        assert await open_all(fresh, kept.id) == {
            "hook": "kept-webhook-secret",
            "key": "kept-api-secret",
        }

    async def test_the_process_that_shredded_forgets_the_key_at_once(
        self, committed_db: Database, table: Table
    ) -> None:
        operator = await make_operator(committed_db)
        doomed, _ = await two_tenants(committed_db)
        await open_all(committed_db, doomed.id)  # warm this process's cache
        await offboard(committed_db, doomed, operator)
        with pytest.raises(TenantKeyDestroyed):
            await open_all(committed_db, doomed.id)

    async def test_key_material_is_erased_from_the_table(
        self, committed_db: Database, table: Table
    ) -> None:
        operator = await make_operator(committed_db)
        doomed, kept = await two_tenants(committed_db)
        await offboard(committed_db, doomed, operator)
        async with committed_db.transaction() as session:
            rows = (await session.execute(select(TenantKey.tenant_id, TenantKey.state,
                    TenantKey.wrapped_key, TenantKey.destroyed_at))).all()  # fmt: skip
        for tenant_id, state, wrapped, destroyed_at in rows:
            if tenant_id == doomed.id:
                assert (state, wrapped) == (KeyState.DESTROYED, None)
                assert destroyed_at is not None
            else:
                assert tenant_id == kept.id
                assert state is KeyState.ACTIVE
                assert wrapped is not None

    async def test_sealing_for_an_offboarded_tenant_is_refused(
        self, committed_db: Database, table: Table
    ) -> None:
        operator = await make_operator(committed_db)
        doomed, _ = await two_tenants(committed_db)
        await offboard(committed_db, doomed, operator)
        async with committed_db.transaction() as session:
            with pytest.raises(TenantKeyDestroyed):
                await store_secret(session, doomed.id, "new", "too late")

    async def test_tokens_are_revoked_status_set_and_audited(
        self, committed_db: Database, table: Table
    ) -> None:
        operator = await make_operator(committed_db)
        doomed, _ = await two_tenants(committed_db)
        async with committed_db.transaction() as session:
            member = await make_member(session, doomed, email="admin@doomed.example")
        await offboard(committed_db, doomed, operator)
        async with committed_db.transaction() as session:
            assert await auth.authenticate(session, member.token) is None
            token = await session.scalar(select(ApiToken).where(ApiToken.tenant_id == doomed.id))
            assert token is not None
            assert token.revoked_at is not None
            tenant = await tenants.get_tenant_by_slug(session, "doomed")
            assert tenant.status is TenantStatus.OFFBOARDED
            assert tenant.offboarded_at is not None
            entry = await session.scalar(
                select(AuditEntry).where(AuditEntry.action == audit.TENANT_OFFBOARDED)
            )
            assert entry is not None
            assert (entry.chain_id, entry.actor_id, entry.actor_label) == (
                doomed.id,
                operator.id,
                "ops@vendor.example",
            )
            assert entry.details == {"slug": "doomed", "keys_destroyed": 2, "tokens_revoked": 1}
            [report] = await audit.verify(session, tenant_id=doomed.id)  # type: ignore[arg-type]
            assert report.is_intact


class TestOffboardingRules:
    async def test_only_an_operator_may_offboard(
        self, committed_db: Database, table: Table
    ) -> None:
        doomed, _ = await two_tenants(committed_db)
        async with committed_db.transaction() as session:
            member = await make_member(session, doomed, email="admin@doomed.example")
        with pytest.raises(Forbidden, match="not a platform operator"):
            await offboard(committed_db, doomed, member.user)
        assert await open_all(committed_db, doomed.id) == {
            "hook": "doomed-webhook-secret",
            "key": "doomed-api-secret",
        }

    async def test_offboarding_twice_is_a_conflict(
        self, committed_db: Database, table: Table
    ) -> None:
        operator = await make_operator(committed_db)
        doomed, _ = await two_tenants(committed_db)
        await offboard(committed_db, doomed, operator)
        with pytest.raises(Conflict, match="already offboarded"):
            await offboard(committed_db, doomed, operator)
