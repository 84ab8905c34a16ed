"""A fresh-eyes review of the sync scheduling: fairness within a tenant over many ticks, and
the crons' ticks across worker replicas and time zones."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from hub.core.db import utcnow
from hub.syncs import service as syncs
from hub.syncs.models import SyncCursor
from tests.workers import test_syncs
from tests.workers.test_syncs import Plan, onboard

plan = test_syncs.plan  # the fixture


async def synced(plan: Plan, pairs: list[syncs.Pair], *, due_at: datetime) -> None:
    """What the sync of each pair leaves: its cursor due again at `due_at`."""
    async with plan.db.transaction() as session:
        for pair in pairs:
            cursor = await session.scalar(
                select(SyncCursor).where(
                    SyncCursor.api_key_id == pair.key_id, SyncCursor.contract == pair.contract
                )
            )
            if cursor is None:
                cursor = SyncCursor(
                    tenant_id=pair.tenant_id, api_key_id=pair.key_id, contract=pair.contract
                )
                session.add(cursor)
            cursor.last_attempt_at, cursor.next_due_at = due_at - timedelta(minutes=1), due_at


class TestFairnessWithinATenant:
    async def test_a_tenant_over_its_cap_has_every_contract_synced_in_turn(
        self, plan: Plan
    ) -> None:
        """A tenant with more due pairs than its per-tick cap: each tick took its first
        pairs by contract number, so the pairs synced at the last tick, due again first,
        were taken again and again, and its last contracts were never synced at all."""
        many = tuple(f"H{n:04d}" for n in range(2000, 2007))
        member, _, _ = await onboard(plan.db, plan.sim, "busy", many)
        policy = syncs.SyncPolicy(per_tenant_per_tick=5)
        start, taken = utcnow(), set()
        for tick in range(4):
            now = start + timedelta(minutes=tick)
            async with plan.db.transaction() as session:
                due = await syncs.due_pairs(session, now=now, policy=policy)
            await synced(plan, due, due_at=now + timedelta(minutes=1))
            taken |= {p.contract for p in due if p.tenant_id == member.tenant_id}
        assert taken == set(many), f"never synced: {sorted(set(many) - taken)}"
