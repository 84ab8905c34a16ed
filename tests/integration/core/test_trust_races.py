"""Key operations racing the writers they run beside: a data-key rotation's re-seal against
a value rewritten meanwhile, a master-key rotation's re-wrap against an offboarding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Table, Update, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.core import crypto
from hub.core.crypto import service as key_service
from hub.core.crypto.models import KeyState, TenantKey
from hub.core.db import Database
from tests.conftest import TEST_DATABASE_URL
from tests.support import make_tenant
from tests.trust import (
    SECRET_FIELD,
    TEST_MASTER_KEY,
    open_all,
    ring,
    sealed_table,
    secrets_table,
    store_secret,
    with_crypto,
)

ON_POSTGRES = pytest.mark.skipif(
    TEST_DATABASE_URL is None,
    reason="two transactions at once on one row: PostgreSQL only (SQLite has one writer)",
)


@pytest.fixture
async def table(engine: AsyncEngine) -> AsyncIterator[Table]:
    async with sealed_table(engine) as created:
        yield created


def before_first_update(session: AsyncSession, meanwhile: Any) -> None:
    """Run `meanwhile(session)` just before the session's first UPDATE statement: what a
    writer committing between a batch's read and its write would leave behind."""
    original = session.execute
    fired = False

    async def execute(statement: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal fired
        if isinstance(statement, Update) and not fired:
            fired = True
            await meanwhile(session)
        return await original(statement, *args, **kwargs)

    session.execute = execute  # type: ignore[method-assign]


class TestResealAgainstAWriter:
    async def test_a_value_rewritten_during_the_batch_is_not_put_back(
        self, committed_db: Database, table: Table
    ) -> None:
        """A webhook secret or HPMS key secret rotated while rotate-key re-seals its row
        must stay rotated: the batch re-seals what it read, not over what is there now."""
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme")
            row = await store_secret(session, tenant.id, "hook", "old-secret")
        async with committed_db.transaction() as session:
            await key_service.new_data_key_version(session, tenant.id)

        async def rotate_the_secret(session: AsyncSession) -> None:
            fresh = await crypto.seal(
                session, "new-secret", tenant=tenant.id, field=SECRET_FIELD, row=row
            )
            await session.execute(
                secrets_table.update().where(secrets_table.c.id == row).values(secret=fresh)
            )

        ref = next(
            r for r in key_service.sealed_columns(secrets_table.metadata) if r.table is table
        )
        async with committed_db.transaction() as session:
            before_first_update(session, rotate_the_secret)
            resealed, _ = await key_service.reseal_batch(
                session, tenant.id, ref, after=None, limit=10
            )
        assert resealed == 0, "the value it read was gone: nothing of its own to re-seal"
        committed_db.crypto.clear()  # type: ignore[union-attr]
        assert await open_all(committed_db, tenant.id) == {"hook": "new-secret"}


async def wrapped_keys_left(database: Database, tenant_id: Any) -> list[tuple[int, KeyState]]:
    """The tenant's key rows that still hold key material: (version, state)."""
    async with database.transaction() as session:
        rows = await session.execute(
            select(TenantKey.version, TenantKey.state).where(
                TenantKey.tenant_id == tenant_id, TenantKey.wrapped_key.is_not(None)
            )
        )
        return [(version, state) for version, state in rows]


async def while_shredding(database: Database, tenant_id: Any, other: Any) -> Any:
    """Destroy the tenant's keys in a transaction that commits only once `other` (a task on
    another connection) has had time to reach the same rows; `other`'s outcome."""
    async with database.transaction() as session:
        await key_service.destroy_tenant_keys(session, tenant_id)
        task = asyncio.ensure_future(other)
        await asyncio.sleep(0.5)  # it reads the keys, then waits on the rows' locks
    return await asyncio.gather(task, return_exceptions=True)


@ON_POSTGRES
class TestKeyOperationsAgainstOffboarding:
    async def test_a_master_key_rotation_does_not_bring_shredded_keys_back(
        self, committed_db: Database
    ) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "doomed")
        rotating = with_crypto(committed_db, ring(("v2", b"\x02" * 32), ("test1", TEST_MASTER_KEY)))

        async def rewrap() -> int:
            async with rotating.transaction() as session:
                batch = await key_service.rewrap_batch(session, after=None, limit=100)
            return batch.rewrapped

        await while_shredding(committed_db, tenant.id, rewrap())
        assert await wrapped_keys_left(committed_db, tenant.id) == []

    async def test_a_data_key_rotation_gives_a_shredded_tenant_no_new_key(
        self, committed_db: Database
    ) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "doomed")

        async def rotate() -> int:
            async with committed_db.transaction() as session:
                return await key_service.new_data_key_version(session, tenant.id)

        [outcome] = await while_shredding(committed_db, tenant.id, rotate())
        assert isinstance(outcome, crypto.TenantKeyDestroyed)
        assert await wrapped_keys_left(committed_db, tenant.id) == []
        async with committed_db.transaction() as session:
            states = set((await session.scalars(
                select(TenantKey.state).where(TenantKey.tenant_id == tenant.id)
            )).all())  # fmt: skip
        assert states == {KeyState.DESTROYED}
