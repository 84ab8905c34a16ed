"""Sealing through a session: tenant keys made at tenant creation, stored only wrapped,
opened through the process cache."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import crypto
from hub.core.crypto import Crypto, CryptoNotConfigured, SealedValueRejected
from hub.core.crypto.models import KeyPurpose, KeyState, TenantKey
from hub.core.db import Database
from hub.core.ids import uuid7
from tests.support import make_tenant

FIELD = "api_key_versions.secret"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestTenantKeys:
    async def test_tenant_creation_makes_wrapped_data_and_index_keys(
        self, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "acme")
        keys = (
            await session.scalars(select(TenantKey).where(TenantKey.tenant_id == tenant.id))
        ).all()
        assert sorted((k.purpose, k.version, k.state) for k in keys) == [
            (KeyPurpose.DATA, 1, KeyState.ACTIVE),
            (KeyPurpose.INDEX, 1, KeyState.ACTIVE),
        ]
        for key in keys:
            assert key.master_key_version == "test1"
            assert key.wrapped_key is not None
            assert len(key.wrapped_key) == 12 + 32 + 16

    async def test_ensure_is_idempotent(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        await crypto.ensure_tenant_key(session, tenant.id)
        count = len((await session.scalars(select(TenantKey.id))).all())
        await crypto.ensure_tenant_key(session, tenant.id)
        assert len((await session.scalars(select(TenantKey.id))).all()) == count


class TestSealThroughSession:
    async def test_round_trip_with_only_a_session(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        row = uuid7()
        sealed = await crypto.seal(session, "s3cret", tenant=tenant.id, field=FIELD, row=row)
        assert await crypto.open(session, sealed, tenant=tenant.id, field=FIELD, row=row) == (
            "s3cret"
        )

    async def test_other_tenant_cannot_open(self, session: AsyncSession) -> None:
        acme, globex = await make_tenant(session, "acme"), await make_tenant(session, "globex")
        row = uuid7()
        sealed = await crypto.seal(session, "s3cret", tenant=acme.id, field=FIELD, row=row)
        with pytest.raises(SealedValueRejected, match=str(globex.id)):
            await crypto.open(session, sealed, tenant=globex.id, field=FIELD, row=row)

    async def test_a_cold_process_opens_from_the_database(
        self, db: Database, crypto: Crypto
    ) -> None:
        async with db.sessions() as session:
            tenant = await make_tenant(session, "acme")
            row = uuid7()
            sealed = await crypto_seal(session, tenant.id, row)
            crypto.clear()  # as if another process: nothing cached
            assert await crypto_open(session, sealed, tenant.id, row) == "s3cret"
            assert len(crypto) == 1

    async def test_blind_index_is_stable_for_a_tenant(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        first = await crypto.blind_index(session, "1EG4-TE5", tenant=tenant.id, field="c.mbi")
        assert first == await crypto.blind_index(
            session, " 1eg4-te5 ", tenant=tenant.id, field="c.mbi"
        )

    async def test_session_without_crypto_is_refused_clearly(self, db: Database) -> None:
        bare = Database(db.engine)
        async with bare.sessions() as session:
            with pytest.raises(CryptoNotConfigured, match="crypto="):
                await crypto.seal(session, "x", tenant=uuid7(), field=FIELD, row=uuid7())


class TestCache:
    async def test_entries_expire_after_the_ttl(self, db: Database, crypto: Crypto) -> None:
        clock = FakeClock()
        timed = Crypto(crypto.provider, cache_ttl=60, clock=clock)
        db.crypto = timed
        async with db.sessions() as session:
            tenant = await make_tenant(session, "acme")
            await crypto_seal(session, tenant.id, uuid7())
            assert timed.cached(tenant.id) is not None
            clock.now += 61
            assert timed.cached(tenant.id) is None

    async def test_cache_is_bounded(self, db: Database, crypto: Crypto) -> None:
        small = Crypto(crypto.provider, cache_size=2)
        db.crypto = small
        async with db.sessions() as session:
            tenants = [await make_tenant(session, f"t{i}") for i in range(3)]
            for tenant in tenants:
                await crypto_seal(session, tenant.id, uuid7())
            assert len(small) == 2
            assert small.cached(tenants[0].id) is None


async def crypto_seal(session: AsyncSession, tenant_id: object, row: object) -> crypto.Sealed:
    return await crypto.seal(session, "s3cret", tenant=tenant_id, field=FIELD, row=row)  # type: ignore[arg-type]


async def crypto_open(
    session: AsyncSession, sealed: crypto.Sealed, tenant_id: object, row: object
) -> str:
    return await crypto.open(session, sealed, tenant=tenant_id, field=FIELD, row=row)  # type: ignore[arg-type]
