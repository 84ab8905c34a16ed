"""Helpers for the trust-core tests: a throwaway table with a sealed column, rings of
master keys, and a Database on a given ring."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from sqlalchemy import Column, MetaData, String, Table, Uuid, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.core import crypto
from hub.core.crypto import Crypto, LocalKeyRingProvider, MasterKeyRing, Sealed, SealedColumn
from hub.core.db import Database
from hub.core.ids import uuid7

TEST_MASTER_KEY = bytes(range(32))  # the "test1" key of tests/conftest.py
SECRET_FIELD = "trust_test_secrets.secret"

# Not in hub.models: created and dropped by the tests that use it, so the migration drift
# check never sees it. Rotation finds it by its column type, like any real sealed table.
sealed_metadata = MetaData()
secrets_table = Table(
    "trust_test_secrets",
    sealed_metadata,
    Column("id", Uuid(), primary_key=True),
    Column("tenant_id", Uuid(), nullable=False, index=True),
    Column("label", String(50), nullable=False),
    Column("secret", SealedColumn(), nullable=True),
)


def ring(*entries: tuple[str, bytes]) -> Crypto:
    return Crypto(LocalKeyRingProvider(MasterKeyRing(list(entries))))


def ring_text(*entries: tuple[str, bytes]) -> str:
    return ",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in entries)


@asynccontextmanager
async def sealed_table(engine: AsyncEngine) -> AsyncIterator[Table]:
    """Create the throwaway sealed table (committed), and drop it afterwards."""
    async with engine.begin() as connection:
        await connection.run_sync(sealed_metadata.create_all)
    try:
        yield secrets_table
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(sealed_metadata.drop_all)


async def store_secret(session: AsyncSession, tenant_id: UUID, label: str, plaintext: str) -> UUID:
    row = uuid7()
    sealed = await crypto.seal(session, plaintext, tenant=tenant_id, field=SECRET_FIELD, row=row)
    await session.execute(
        secrets_table.insert().values(id=row, tenant_id=tenant_id, label=label, secret=sealed)
    )
    return row


async def raw_secrets(session: AsyncSession, tenant_id: UUID) -> list[tuple[UUID, str, Sealed]]:
    """The stored rows as they are: (id, label, sealed value)."""
    rows = await session.execute(
        select(secrets_table.c.id, secrets_table.c.label, secrets_table.c.secret)
        .where(secrets_table.c.tenant_id == tenant_id)
        .order_by(secrets_table.c.label)
    )
    return [(row_id, label, sealed) for row_id, label, sealed in rows]


async def open_all(database: Database, tenant_id: UUID) -> dict[str, str]:
    """Every secret of the tenant opened through `database`'s crypto, by label."""
    async with database.transaction() as session:
        opened: dict[str, str] = {}
        for row_id, label, sealed in await raw_secrets(session, tenant_id):
            opened[label] = await crypto.open(
                session, sealed, tenant=tenant_id, field=SECRET_FIELD, row=row_id
            )
        return opened


def with_crypto(database: Database, new: Crypto) -> Database:
    """Another Database on the same engine (really committing) with a different crypto."""
    return Database(database.engine, database.queue, crypto=new)
