"""The audit log's hash chain: intact chains verify; an edited, deleted or reordered entry
is detected and located; concurrent writers never fork a tenant's chain."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEntry, AuditOutcome
from hub.audit.service import Actor, AuditDetailRefused
from hub.core.db import Database
from hub.core.ids import TenantID
from tests.conftest import TEST_DATABASE_URL
from tests.support import make_tenant

ACTOR = Actor.system("tests")


async def write(session: AsyncSession, tenant_id: UUID | None, count: int) -> list[AuditEntry]:
    return [
        await audit.record(
            session,
            actor=ACTOR,
            action="tests.step",
            tenant_id=tenant_id,
            target_type="thing",
            target_id=index,
            details={"step": index},
        )
        for index in range(1, count + 1)
    ]


async def chain_of(session: AsyncSession, tenant_id: UUID) -> audit.ChainReport:
    return await audit.verify_chain(session, tenant_id)


class TestWriting:
    async def test_entries_chain_in_order(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        first, second = await write(session, tenant.id, 2)
        created = await session.scalar(
            select(AuditEntry).where(AuditEntry.chain_id == tenant.id, AuditEntry.seq == 1)
        )
        assert created is not None
        assert created.action == "tenant.created"
        assert (first.seq, second.seq) == (2, 3)
        assert first.prev_hash == created.hash
        assert second.prev_hash == first.hash
        head = await session.get(AuditChainHead, tenant.id)
        assert head is not None
        assert (head.seq, head.hash) == (3, second.hash)

    async def test_tenants_have_separate_chains_and_platform_has_its_own(
        self, session: AsyncSession
    ) -> None:
        acme, globex = await make_tenant(session, "acme"), await make_tenant(session, "globex")
        [platform] = await write(session, None, 1)
        [other] = await write(session, globex.id, 1)
        assert platform.chain_id == PLATFORM_CHAIN
        assert platform.tenant_id is None
        assert (other.chain_id, other.seq) == (globex.id, 2)
        assert (await chain_of(session, acme.id)).entries == 1

    async def test_request_id_and_ip_come_from_the_log_context(self, session: AsyncSession) -> None:
        import structlog

        structlog.contextvars.bind_contextvars(request_id="req-42", client_ip="203.0.113.9")
        try:
            [entry] = await write(session, None, 1)
        finally:
            structlog.contextvars.unbind_contextvars("request_id", "client_ip")
        assert (entry.request_id, entry.ip) == ("req-42", "203.0.113.9")

    @pytest.mark.parametrize(
        ("details", "named"),
        [
            ({"client_secret": "x"}, "details.client_secret"),
            ({"nested": {"password": "x"}}, "details.nested.password"),
            ({"secret_value": "x"}, "details.secret_value"),
            ({"new_password_text": "x"}, "details.new_password_text"),
            ({"private_key_pem": "x"}, "details.private_key_pem"),
            ({"dataKeyMaterial": "x"}, "details.dataKeyMaterial"),
            ({"note": "Bearer abc.def"}, "details.note"),
            ({"list": ["ok", "hub_" + "A" * 30 + "_" + "B" * 6]}, r"details.list\[1\]"),
            ({"ratio": 0.5}, "float is not audited"),
            ({"blob": b"raw"}, "bytes is not audited"),
            ({"big": "x" * 5000}, "more than 4096 bytes"),
        ],
    )
    async def test_details_that_could_hold_a_secret_are_refused(
        self, session: AsyncSession, details: dict[str, object], named: str
    ) -> None:
        with pytest.raises(AuditDetailRefused, match=named):
            await audit.record(session, actor=ACTOR, action="tests.step", tenant_id=None,
                               details=details)  # fmt: skip

    async def test_counts_and_ids_named_after_secrets_are_kept(self, session: AsyncSession) -> None:
        details = {"tokens_revoked": 2, "secrets_destroyed": 1, "tokens": ["01a2-id"]}
        entry = await audit.record(
            session, actor=ACTOR, action="tests.step", tenant_id=None, details=details
        )
        assert entry.details == details

    async def test_action_must_be_dotted(self, session: AsyncSession) -> None:
        with pytest.raises(AuditDetailRefused, match=r"domain\.verb"):
            await audit.record(session, actor=ACTOR, action="Deleted Stuff", tenant_id=None)


class TestVerify:
    async def test_intact_chain_verifies(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        await write(session, tenant.id, 5)
        report = await chain_of(session, tenant.id)
        assert report.is_intact
        assert report.entries == 6

    async def test_every_chain_is_verified_platform_first(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        await write(session, None, 2)
        reports = await audit.verify(session)
        assert reports[0].chain_id == PLATFORM_CHAIN
        assert tenant.id in {r.chain_id for r in reports}
        assert all(r.is_intact for r in reports)

    @pytest.mark.parametrize(
        "change",
        [
            {"details": {"step": 99}},
            {"action": "tests.other"},
            {"outcome": AuditOutcome.DENIED},
            {"actor_label": "someone else"},
            {"target_id": "7"},
            {"ip": "198.51.100.1"},
        ],
    )
    async def test_an_edited_entry_is_located(
        self, session: AsyncSession, change: dict[str, object]
    ) -> None:
        tenant = await make_tenant(session, "acme")
        entries = await write(session, tenant.id, 5)
        victim = entries[2]  # seq 4
        await session.execute(update(AuditEntry).where(AuditEntry.id == victim.id).values(change))
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert (report.broken.seq, report.broken.entry_id) == (4, victim.id)
        assert "edited" in report.broken.reason

    async def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
        self, session: AsyncSession
    ) -> None:
        tenant = await make_tenant(session, "acme")
        entries = await write(session, tenant.id, 4)
        victim = entries[1]  # seq 3
        victim.details = {"step": 1000}
        victim.hash = audit.entry_hash(victim, victim.prev_hash)  # a careful forger
        await session.flush()
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert (report.broken.seq, report.broken.entry_id) == (4, entries[2].id)
        assert "previous-hash link" in report.broken.reason

    async def test_a_deleted_entry_is_located(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        entries = await write(session, tenant.id, 5)
        await session.execute(delete(AuditEntry).where(AuditEntry.id == entries[1].id))  # seq 3
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert report.broken.seq == 3
        assert report.broken.entry_id == entries[2].id  # seq 4 sits where 3 should be
        assert "missing" in report.broken.reason

    async def test_a_deleted_tail_is_detected_by_the_head(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        entries = await write(session, tenant.id, 5)
        await session.execute(delete(AuditEntry).where(AuditEntry.id == entries[-1].id))
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert report.broken.seq == 6
        assert "deleted from the end" in report.broken.reason

    async def test_reordered_entries_are_located(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        entries = await write(session, tenant.id, 5)
        a, b = entries[1], entries[2]  # seq 3 and 4 swap places
        await session.execute(update(AuditEntry).where(AuditEntry.id == a.id).values(seq=-1))
        await session.execute(update(AuditEntry).where(AuditEntry.id == b.id).values(seq=3))
        await session.execute(update(AuditEntry).where(AuditEntry.id == a.id).values(seq=4))
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert (report.broken.seq, report.broken.entry_id) == (3, b.id)

    async def test_a_removed_head_is_detected(self, session: AsyncSession) -> None:
        tenant = await make_tenant(session, "acme")
        await session.execute(delete(AuditChainHead).where(AuditChainHead.chain_id == tenant.id))
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert "head record is gone" in report.broken.reason

    async def test_a_tenants_whole_chain_deleted_is_detected(self, session: AsyncSession) -> None:
        """Every tenant's chain starts with `tenant.created`, written with the tenant: one
        with no chain at all lost it, entries and head together."""
        tenant, other = await make_tenant(session, "acme"), await make_tenant(session, "globex")
        await write(session, tenant.id, 3)
        await session.execute(delete(AuditEntry).where(AuditEntry.chain_id == tenant.id))
        await session.execute(delete(AuditChainHead).where(AuditChainHead.chain_id == tenant.id))
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert report.broken.seq == 1
        assert "the tenant's chain is gone" in report.broken.reason
        every = {r.chain_id: r for r in await audit.verify(session)}
        assert every[tenant.id].broken is not None, "found when verifying every chain too"
        assert every[other.id].is_intact

    async def test_long_chains_verify_in_batches(
        self, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(audit, "VERIFY_BATCH", 3)
        tenant = await make_tenant(session, "acme")
        entries = await write(session, tenant.id, 10)
        assert (await chain_of(session, tenant.id)).entries == 11
        await session.execute(
            update(AuditEntry).where(AuditEntry.id == entries[7].id).values(target_id="x")
        )
        report = await chain_of(session, tenant.id)
        assert report.broken is not None
        assert report.broken.seq == 9


@pytest.mark.skipif(
    TEST_DATABASE_URL is None,
    reason="concurrent writers need PostgreSQL (SQLite serialises every transaction already)",
)
class TestConcurrentWriters:
    async def test_parallel_transactions_keep_one_chain(self, committed_db: Database) -> None:
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme")
        tenant_id = TenantID(tenant.id)

        async def writer(index: int) -> None:
            async with committed_db.transaction() as session:
                await audit.record(session, actor=ACTOR, action="tests.parallel",
                                   tenant_id=tenant_id, details={"writer": index})  # fmt: skip
                await asyncio.sleep(0.01)  # hold the lock a moment: others must wait

        await asyncio.gather(*(writer(i) for i in range(16)))
        async with committed_db.transaction() as session:
            report = await audit.verify_chain(session, tenant_id)
            seqs = (
                await session.scalars(
                    select(AuditEntry.seq)
                    .where(AuditEntry.chain_id == tenant_id)
                    .order_by(AuditEntry.seq)
                )
            ).all()
        assert report.is_intact
        assert report.entries == 17
        assert list(seqs) == list(range(1, 18))

    async def test_an_entry_appended_while_verifying_is_not_a_break(
        self, committed_db: Database
    ) -> None:
        """`hub audit verify` runs beside a live hub: an entry committed after the walk read
        the chain's end and before it read the head is no deleted tail."""
        async with committed_db.transaction() as session:
            tenant = await make_tenant(session, "acme")
        tenant_id = TenantID(tenant.id)

        async with committed_db.transaction(read_only=True) as session:
            original = session.execute
            appended = False

            async def execute(statement: Any, *args: Any, **kwargs: Any) -> Any:
                nonlocal appended
                if not appended and AuditChainHead.__table__ in statement.get_final_froms():
                    appended = True  # another request's entry commits now
                    async with committed_db.transaction() as other:
                        await write(other, tenant_id, 1)
                return await original(statement, *args, **kwargs)

            session.execute = execute  # type: ignore[method-assign]
            report = await audit.verify_chain(session, tenant_id)
        assert appended
        assert report.broken is None
        assert report.entries == 2
