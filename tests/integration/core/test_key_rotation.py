"""Master-key rotation (re-wrap only) and data-key rotation (re-seal), with real commits."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from uuid import UUID

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.audit import service as audit
from hub.audit.models import PLATFORM_CHAIN, AuditEntry
from hub.audit.service import Actor
from hub.core import crypto
from hub.core.crypto import (
    LocalKeyRingProvider,
    MasterKeyRejected,
    MasterKeyUnavailable,
    TenantKeyMissing,
)
from hub.core.crypto.errors import RetiredKeyInUse, RotationNotSettled
from hub.core.crypto.keyring import WrappedKey
from hub.core.crypto.models import KeyPurpose, KeyState, TenantKey
from hub.core.db import Database
from hub.tenants import keys
from hub.tenants.models import Tenant
from tests.support import make_tenant
from tests.trust import (
    SECRET_FIELD,
    TEST_MASTER_KEY,
    open_all,
    raw_secrets,
    ring,
    sealed_metadata,
    sealed_table,
    store_secret,
    with_crypto,
)

NEW_KEY = os.urandom(32)
ACTOR = Actor.system("tests")


@pytest.fixture
async def table(engine: AsyncEngine) -> AsyncIterator[Table]:
    async with sealed_table(engine) as created:
        yield created


async def seed(database: Database, count: int) -> list[Tenant]:
    """`count` tenants with two secrets each, committed."""
    tenants = []
    async with database.transaction() as session:
        for index in range(count):
            tenant = await make_tenant(session, f"tenant-{index}")
            await store_secret(session, tenant.id, "a", f"secret-a-{index}")
            await store_secret(session, tenant.id, "b", f"secret-b-{index}")
            tenants.append(tenant)
    return tenants


async def versions_in_use(database: Database) -> dict[str | None, int]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(TenantKey.master_key_version, func.count()).group_by(
                TenantKey.master_key_version
            )
        )
        return {version: count for version, count in rows}


def expected(index: int) -> dict[str, str]:
    return {"a": f"secret-a-{index}", "b": f"secret-b-{index}"}


class CrashingProvider(LocalKeyRingProvider):
    """Dies (like a killed process) after `wraps_left` wraps."""

    def __init__(self, inner: LocalKeyRingProvider, wraps_left: int) -> None:
        super().__init__(inner.ring)
        self.wraps_left = wraps_left

    async def wrap(self, key: bytes, *, context: bytes) -> WrappedKey:
        if self.wraps_left == 0:
            raise RuntimeError("process killed")
        self.wraps_left -= 1
        return await super().wrap(key, context=context)


class TestMasterKeyRotation:
    async def test_rewraps_everything_then_old_key_can_leave_the_ring(
        self, committed_db: Database, table: Table
    ) -> None:
        tenants = await seed(committed_db, 3)
        rotating = with_crypto(committed_db, ring(("v2", NEW_KEY), ("test1", TEST_MASTER_KEY)))
        report = await keys.rotate_master_key(rotating, actor=ACTOR, batch_size=4)
        assert report.rewrapped == 6  # data + index key per tenant
        assert report.pending_before == {"test1": 6}
        assert report.batches == 2
        assert await versions_in_use(committed_db) == {"v2": 6}

        only_new = with_crypto(committed_db, ring(("v2", NEW_KEY)))
        for index, tenant in enumerate(tenants):
            assert await open_all(only_new, tenant.id) == expected(index)

    async def test_no_sealed_value_changes(self, committed_db: Database, table: Table) -> None:
        [tenant] = await seed(committed_db, 1)
        async with committed_db.transaction() as session:
            before = await raw_secrets(session, tenant.id)
        rotating = with_crypto(committed_db, ring(("v2", NEW_KEY), ("test1", TEST_MASTER_KEY)))
        await keys.rotate_master_key(rotating, actor=ACTOR)
        async with committed_db.transaction() as session:
            assert await raw_secrets(session, tenant.id) == before

    async def test_interrupted_then_resumed_ends_consistent(
        self, committed_db: Database, table: Table
    ) -> None:
        tenants = await seed(committed_db, 5)  # 10 keys
        both = ring(("v2", NEW_KEY), ("test1", TEST_MASTER_KEY))
        assert isinstance(both.provider, LocalKeyRingProvider)
        both.provider = CrashingProvider(both.provider, wraps_left=5)
        with pytest.raises(RuntimeError, match="process killed"):
            await keys.rotate_master_key(with_crypto(committed_db, both), actor=ACTOR, batch_size=2)
        # Two batches committed; the third rolled back whole.
        assert await versions_in_use(committed_db) == {"v2": 4, "test1": 6}
        halfway = with_crypto(committed_db, ring(("v2", NEW_KEY), ("test1", TEST_MASTER_KEY)))
        for index, tenant in enumerate(tenants):
            assert await open_all(halfway, tenant.id) == expected(index)

        report = await keys.rotate_master_key(halfway, actor=ACTOR, batch_size=2)
        assert report.pending_before == {"test1": 6}
        assert report.rewrapped == 6
        assert await versions_in_use(committed_db) == {"v2": 10}
        only_new = with_crypto(committed_db, ring(("v2", NEW_KEY)))
        for index, tenant in enumerate(tenants):
            assert await open_all(only_new, tenant.id) == expected(index)

    async def test_each_batch_is_audited_on_the_platform_chain(
        self, committed_db: Database, table: Table
    ) -> None:
        await seed(committed_db, 2)
        rotating = with_crypto(committed_db, ring(("v2", NEW_KEY), ("test1", TEST_MASTER_KEY)))
        await keys.rotate_master_key(rotating, actor=ACTOR, batch_size=3)
        async with committed_db.transaction() as session:
            entries = (
                await session.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.action == audit.MASTER_KEY_ROTATED)
                    .order_by(AuditEntry.seq)
                )
            ).all()
            assert [(e.chain_id, e.details["rewrapped"]) for e in entries] == [
                (PLATFORM_CHAIN, 3),
                (PLATFORM_CHAIN, 1),
            ]
            assert entries[0].target_id == "v2"
            platform = await audit.verify_chain(session, PLATFORM_CHAIN)
        assert platform.is_intact
        assert platform.entries == 2

    async def test_nothing_to_do_reports_zero(self, committed_db: Database, table: Table) -> None:
        await seed(committed_db, 1)
        report = await keys.rotate_master_key(committed_db, actor=ACTOR)
        assert (report.rewrapped, report.batches, report.pending_before) == (0, 0, {})

    async def test_ring_missing_a_version_refuses_before_writing(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        wrong = with_crypto(committed_db, ring(("v3", NEW_KEY)))
        with pytest.raises(MasterKeyUnavailable) as caught:
            await keys.rotate_master_key(wrong, actor=ACTOR)
        assert "'test1'" in str(caught.value)
        assert str(tenant.id) in str(caught.value)
        assert await versions_in_use(committed_db) == {"test1": 2}

    async def test_wrong_key_under_the_right_version_is_named(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        impostor = with_crypto(committed_db, ring(("test1", NEW_KEY)))
        with pytest.raises(MasterKeyRejected, match=f"'test1'.*{tenant.id}"):
            await open_all(impostor, tenant.id)


class TestDataKeyRotation:
    async def test_reseals_the_tenants_values_and_leaves_others_alone(
        self, committed_db: Database, table: Table
    ) -> None:
        acme, globex = await seed(committed_db, 2)
        async with committed_db.transaction() as session:
            acme_before = await raw_secrets(session, acme.id)
            globex_before = await raw_secrets(session, globex.id)
        report = await keys.rotate_data_key(
            committed_db, tenant_id=acme.id, actor=ACTOR, metadata=sealed_metadata, batch_size=1,
            settle_seconds=0,
        )  # fmt: skip
        assert report.version == 2
        assert report.resealed == {"trust_test_secrets.secret": 2}
        async with committed_db.transaction() as session:
            acme_after = await raw_secrets(session, acme.id)
            assert await raw_secrets(session, globex.id) == globex_before
        assert [s.key_version for _, _, s in acme_before] == [1, 1]
        assert [s.key_version for _, _, s in acme_after] == [2, 2]
        assert await open_all(committed_db, acme.id) == expected(0)
        committed_db.crypto.clear()  # type: ignore[union-attr]
        assert await open_all(committed_db, acme.id) == expected(0)
        assert await open_all(committed_db, globex.id) == expected(1)

    async def test_a_late_pass_reseals_what_another_process_sealed_with_the_old_key(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        # Another process (its own key cache, warm before the rotation) keeps the old key.
        other = with_crypto(committed_db, ring(("test1", TEST_MASTER_KEY)))
        assert await open_all(other, tenant.id) == expected(0)
        waits: list[float] = []

        async def meanwhile(seconds: float) -> None:
            waits.append(seconds)
            async with other.transaction() as session:
                await store_secret(session, tenant.id, "c", "sealed-meanwhile")

        report = await keys.rotate_data_key(
            committed_db, tenant_id=tenant.id, actor=ACTOR, metadata=sealed_metadata,
            settle_seconds=600, sleep=meanwhile, on_wait=waits.append,
        )  # fmt: skip
        told, slept = waits  # told (on_wait), then slept: what was left of the 600 s
        assert 590 < told <= 600
        assert slept == told
        assert report.resealed == {"trust_test_secrets.secret": 2}
        assert report.resealed_late == {"trust_test_secrets.secret": 1}
        async with committed_db.transaction() as session:
            versions = [s.key_version for _, _, s in await raw_secrets(session, tenant.id)]
        assert versions == [2, 2, 2], "nothing is left under the old key"
        committed_db.crypto.clear()  # type: ignore[union-attr]
        assert await open_all(committed_db, tenant.id) == expected(0) | {"c": "sealed-meanwhile"}

    async def test_a_process_whose_cache_is_older_than_the_rotation_opens_the_new_values(
        self, committed_db: Database, table: Table
    ) -> None:
        """Loops take one cipher (`cipher_for`) and open many values with it: a page of
        complaints, a webhook batch's secret. One cached before another process rotated the
        key must not fail every read (500s, webhooks failed for good) until it expires."""
        [tenant] = await seed(committed_db, 1)
        other = with_crypto(committed_db, ring(("test1", TEST_MASTER_KEY)))
        assert await open_all(other, tenant.id) == expected(0)  # its cache: v1 only
        await keys.rotate_data_key(
            committed_db, tenant_id=tenant.id, actor=ACTOR, metadata=sealed_metadata,
            settle_seconds=0,
        )  # fmt: skip
        async with other.transaction() as session:
            cipher = await crypto.cipher_for(session, tenant.id)
            opened = {
                label: cipher.open(sealed, field=SECRET_FIELD, row=row_id)
                for row_id, label, sealed in await raw_secrets(session, tenant.id)
            }
        assert opened == expected(0)
        assert cipher.active_version == 2

    async def test_old_version_is_retired_not_destroyed(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        await keys.rotate_data_key(
            committed_db, tenant_id=tenant.id, actor=ACTOR, metadata=sealed_metadata,
            settle_seconds=0,
        )  # fmt: skip
        async with committed_db.transaction() as session:
            data_keys = (
                await session.scalars(
                    select(TenantKey)
                    .where(TenantKey.tenant_id == tenant.id, TenantKey.purpose == KeyPurpose.DATA)
                    .order_by(TenantKey.version)
                )
            ).all()
        assert [(k.version, k.state) for k in data_keys] == [
            (1, KeyState.RETIRED),
            (2, KeyState.ACTIVE),
        ]

    async def test_blind_indexes_survive_a_data_key_rotation(
        self, committed_db: Database, table: Table
    ) -> None:
        from hub.core import crypto

        [tenant] = await seed(committed_db, 1)
        async with committed_db.transaction() as session:
            before = await crypto.blind_index(session, "1EG4", tenant=tenant.id, field="t.mbi")
        await keys.rotate_data_key(
            committed_db, tenant_id=tenant.id, actor=ACTOR, metadata=sealed_metadata,
            settle_seconds=0,
        )  # fmt: skip
        committed_db.crypto.clear()  # type: ignore[union-attr]
        async with committed_db.transaction() as session:
            after = await crypto.blind_index(session, "1EG4", tenant=tenant.id, field="t.mbi")
        assert before == after

    async def test_rotation_is_audited_on_the_tenant_chain(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        await keys.rotate_data_key(
            committed_db, tenant_id=tenant.id, actor=ACTOR, metadata=sealed_metadata,
            settle_seconds=0,
        )  # fmt: skip
        async with committed_db.transaction() as session:
            stages = (
                await session.scalars(
                    select(AuditEntry.details)
                    .where(
                        AuditEntry.chain_id == tenant.id,
                        AuditEntry.action == audit.TENANT_DATA_KEY_ROTATED,
                    )
                    .order_by(AuditEntry.seq)
                )
            ).all()
        assert stages == [
            {"version": 2, "stage": "new_key"},
            {"version": 2, "stage": "resealed", "values": 2, "late": 0},
        ]

    async def test_unknown_tenant_is_named(self, committed_db: Database) -> None:
        from hub.core.ids import uuid7

        ghost = uuid7()
        with pytest.raises(TenantKeyMissing, match=str(ghost)):
            await keys.rotate_data_key(committed_db, tenant_id=ghost, actor=ACTOR, settle_seconds=0)


async def data_key_states(database: Database, tenant_id: UUID) -> list[tuple[int, KeyState]]:
    async with database.transaction() as session:
        rows = await session.execute(
            select(TenantKey.version, TenantKey.state)
            .where(TenantKey.tenant_id == tenant_id, TenantKey.purpose == KeyPurpose.DATA)
            .order_by(TenantKey.version)
        )
        return [(version, state) for version, state in rows]


async def rotate(database: Database, tenant_id: UUID) -> None:
    await keys.rotate_data_key(
        database, tenant_id=tenant_id, actor=ACTOR, metadata=sealed_metadata, settle_seconds=0
    )


async def discard(
    database: Database, tenant_id: UUID, *, settle_seconds: float = 0
) -> keys.DiscardedKeys:
    """Retired keys discarded, the throwaway sealed table standing for the hub's columns."""
    return await keys.discard_retired_keys(
        database, tenant_id=tenant_id, actor=ACTOR, metadata=sealed_metadata,
        settle_seconds=settle_seconds,
    )  # fmt: skip


class TestDiscardingRetiredKeys:
    async def test_erases_what_nothing_names_and_every_value_still_opens(
        self, committed_db: Database, table: Table
    ) -> None:
        acme, globex = await seed(committed_db, 2)
        await rotate(committed_db, acme.id)
        await rotate(committed_db, acme.id)
        report = await discard(committed_db, acme.id)
        assert (report.active_version, report.discarded) == (3, [1, 2])
        assert await data_key_states(committed_db, acme.id) == [(3, KeyState.ACTIVE)]
        assert await data_key_states(committed_db, globex.id) == [(1, KeyState.ACTIVE)]
        committed_db.crypto.clear()  # type: ignore[union-attr]
        assert await open_all(committed_db, acme.id) == expected(0)
        assert await open_all(committed_db, globex.id) == expected(1)
        # The next rotation still counts up: no version is ever used twice.
        await rotate(committed_db, acme.id)
        assert await data_key_states(committed_db, acme.id) == [
            (3, KeyState.RETIRED),
            (4, KeyState.ACTIVE),
        ]
        async with committed_db.transaction() as session:
            details = (
                await session.scalars(
                    select(AuditEntry.details).where(
                        AuditEntry.chain_id == acme.id,
                        AuditEntry.action == audit.TENANT_DATA_KEYS_DISCARDED,
                    )
                )
            ).all()
        assert details == [{"active_version": 3, "discarded_versions": [1, 2]}]

    async def test_a_value_still_under_a_retired_key_keeps_it_and_is_named(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        # Another process, its cache warm from before the rotation, seals under v1 after it
        # (the rotation's late pass was skipped).
        other = with_crypto(committed_db, ring(("test1", TEST_MASTER_KEY)))
        assert await open_all(other, tenant.id) == expected(0)
        await rotate(committed_db, tenant.id)
        async with other.transaction() as session:
            await store_secret(session, tenant.id, "c", "sealed-late")
        with pytest.raises(RetiredKeyInUse, match=r"v1: trust_test_secrets.secret 1\)"):
            await discard(committed_db, tenant.id)
        assert await data_key_states(committed_db, tenant.id) == [
            (1, KeyState.RETIRED),
            (2, KeyState.ACTIVE),
        ]
        committed_db.crypto.clear()  # type: ignore[union-attr]
        assert await open_all(committed_db, tenant.id) == expected(0) | {"c": "sealed-late"}
        # Re-sealed by a rotation, the old keys can go.
        await rotate(committed_db, tenant.id)
        report = await discard(committed_db, tenant.id)
        assert report.discarded == [1, 2]
        committed_db.crypto.clear()  # type: ignore[union-attr]
        assert await open_all(committed_db, tenant.id) == expected(0) | {"c": "sealed-late"}

    async def test_refused_while_the_rotation_is_young(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        await rotate(committed_db, tenant.id)
        with pytest.raises(RotationNotSettled, match=r"data key v2 .* try again in (59\d|600) s"):
            await discard(committed_db, tenant.id, settle_seconds=600)
        assert await data_key_states(committed_db, tenant.id) == [
            (1, KeyState.RETIRED),
            (2, KeyState.ACTIVE),
        ]

    async def test_nothing_retired_is_nothing_to_do(
        self, committed_db: Database, table: Table
    ) -> None:
        [tenant] = await seed(committed_db, 1)
        report = await discard(committed_db, tenant.id)
        assert (report.active_version, report.discarded) == (1, [])
        async with committed_db.transaction() as session:
            audited = await session.scalar(
                select(func.count()).where(AuditEntry.action == audit.TENANT_DATA_KEYS_DISCARDED)
            )
        assert audited == 0

    async def test_every_sealed_column_of_the_hub_is_counted(self, committed_db: Database) -> None:
        """With the hub's own tables: a webhook secret sealed under the retired key by a
        process with a stale cache keeps that key, until a rotation re-seals it."""
        from hub.webhooks.schemas import EndpointCreate
        from hub.webhooks.service import create_endpoint
        from tests.integration.webhooks.support import principal_of, rules
        from tests.support import make_member

        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "hubwide")
            member = await make_member(session, tenant, email="admin@hubwide.example")
        stale = with_crypto(committed_db, ring(("test1", TEST_MASTER_KEY)))
        async with stale.transaction() as session:  # warms the stale process's cache
            await create_endpoint(
                session, principal_of(member), rules=rules(),
                data=EndpointCreate(url="https://one.example/hook", event_types=["*"]),
            )  # fmt: skip
        await keys.rotate_data_key(
            committed_db, tenant_id=member.tenant.id, actor=ACTOR, settle_seconds=0
        )
        async with stale.transaction() as session:
            await create_endpoint(
                session, principal_of(member), rules=rules(),
                data=EndpointCreate(url="https://two.example/hook", event_types=["*"]),
            )  # fmt: skip
        with pytest.raises(RetiredKeyInUse, match=r"\(v1: webhook_endpoints.secret 1\)"):
            await keys.discard_retired_keys(
                committed_db, tenant_id=member.tenant.id, actor=ACTOR, settle_seconds=0
            )
        await keys.rotate_data_key(
            committed_db, tenant_id=member.tenant.id, actor=ACTOR, settle_seconds=0
        )
        report = await keys.discard_retired_keys(
            committed_db, tenant_id=member.tenant.id, actor=ACTOR, settle_seconds=0
        )
        assert report.discarded == [1, 2]

    async def test_an_offboarded_tenant_is_named(
        self, committed_db: Database, table: Table
    ) -> None:
        from hub.core.crypto import TenantKeyDestroyed
        from hub.core.crypto.service import destroy_tenant_keys

        [tenant] = await seed(committed_db, 1)
        async with committed_db.transaction() as session:
            await destroy_tenant_keys(session, tenant.id)
        with pytest.raises(TenantKeyDestroyed, match="crypto-shredded"):
            await discard(committed_db, tenant.id)
