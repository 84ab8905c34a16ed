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
from hub.tenants import service as tenants
from tests.conftest import TEST_DATABASE_URL
from tests.support import PASSWORD, make_tenant
from tests.trust import (
    SECRET_FIELD,
    TEST_MASTER_KEY,
    open_all,
    raw_secrets,
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
