"""Syncs from the CTM simulator into complaints: full cycle through a real arq worker,
idempotent re-syncs, updates, fault storms, a rotated key, and fairness of the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from arq import Retry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.complaints.models import Complaint, ComplaintChange
from hub.core.crypto import Crypto
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID
from hub.core.jobs import ArqQueue
from hub.core.redis import connect
from hub.ctm.client import CtmClient, CtmEnvironment, RetryPolicy
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.server import RunningSimulator, running_simulator
from hub.ctm.simulator.state import SimKey, SimState
from hub.events.models import Event
from hub.keys import service as keys
from hub.keys.models import ApiKey, KeyStatus
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.settings import Settings
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome, SyncCursor, SyncRun
from hub.syncs.slots import PER_KEY_CONCURRENCY, key_slot, slots_name
from tests.conftest import delete_all_rows
from tests.support import Member, make_member, make_tenant
from workers.settings import create_worker
from workers.syncs import MAX_JOB_TRIES, MAX_TRIES, sync_contract

FAST = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05, max_retry_after=0.05)


@dataclass
class Plan:
    db: Database
    sim: RunningSimulator
    clients: dict[CtmEnvironment, CtmClient]
    member: Member
    key: ApiKey
    sim_key: SimKey

    @property
    def tenant_id(self) -> TenantID:
        return self.member.tenant_id

    async def sync(self, contract: str = "H1234", attempt: int = 1) -> syncs.SyncResult:
        return await syncs.run_sync(
            self.db, self.clients, tenant_id=self.tenant_id, key_id=self.key.id,
            contract=contract, attempt=attempt,
        )  # fmt: skip

    async def count(self, model: Any, *where: Any) -> int:
        async with self.db.transaction() as session:
            return int(
                await session.scalar(select(func.count()).select_from(model).where(*where)) or 0
            )


async def onboard(
    db: Database, sim: RunningSimulator, slug: str, contracts: tuple[str, ...] = ("H1234", "S5678")
) -> tuple[Member, ApiKey, SimKey]:
    sim_key = sim.state.add_key(hpms_user=f"{slug.upper()}01", contracts=set(contracts))
    async with db.transaction() as session:
        member = await make_member(
            session, await make_tenant(session, slug), email=f"rp@{slug}.example"
        )
        for number in contracts:
            await keys.add_contract(session, member.principal, number=number)
        key = await keys.create_key(
            session, member.principal,
            data=KeyCreate(
                environment="sandbox", key_id=sim_key.key_id, secret=sim_key.secret,
                hpms_user_id=sim_key.hpms_user, technical_poc=TechnicalPoc("Pat", "pat@x.example"),
                contracts=list(contracts), verify=False,
            ),
            verifier=None,
        )  # fmt: skip
    return member, key, sim_key


@pytest.fixture
async def plan(engine: AsyncEngine, redis: Any, crypto: Crypto) -> AsyncIterator[Plan]:
    db = Database(engine, ArqQueue(redis), crypto=crypto)
    state = SimState(environment="sandbox", seed=7, history_days=20)
    state.contracts["H1234"] = ContractPlan(daily_min=2, daily_max=4)
    state.contracts["S5678"] = ContractPlan(daily_min=1, daily_max=2)
    async with running_simulator(state) as sim:
        client = CtmClient(CtmEnvironment.SANDBOX, base_url=sim.url, retry=FAST)
        try:
            member, key, sim_key = await onboard(db, sim, "acme")
            yield Plan(db, sim, {CtmEnvironment.SANDBOX: client}, member, key, sim_key)
        finally:
            await client.aclose()
            await delete_all_rows(engine)


async def events(db: Database, type_: str) -> list[Event]:
    async with db.transaction() as session:
        return list((await session.scalars(select(Event).where(Event.type == type_))).all())


async def run_worker(plan: Plan, redis: Any, settings: Settings) -> Any:
    """Run a burst worker on `redis` until its queue is empty; returns the worker. Without
    crons: the scheduler's tick (second 5 of each minute) would enqueue syncs of its own."""
    worker = create_worker(
        settings, subscriptions=[], database=plan.db, redis_pool=redis, burst=True,
        ctm_clients=plan.clients, poll_delay=0.05, cron_jobs=[],
    )  # fmt: skip
    try:
        await asyncio.wait_for(worker.async_run(), timeout=60)
    finally:
        await worker.close()
    return worker


class TestSyncContract:
    async def test_first_sync_imports_every_complaint_sealed(self, plan: Plan) -> None:
        result = await plan.sync()
        assert result.outcome is RunOutcome.SUCCEEDED
        expected = len(
            list(
                plan.sim.state.complaints(
                    "H1234", utcnow().date() - timedelta(days=90), utcnow().date()
                )
            )
        )
        assert expected > 10
        assert result.new == expected
        assert await plan.count(Complaint) == expected
        assert len(await events(plan.db, "complaint.created")) == expected
        async with plan.db.transaction() as session:
            complaint = await session.scalar(select(Complaint).limit(1))
            assert complaint is not None
            assert b"SIM" not in complaint.phi.token, "PHI is stored sealed"
            run = await session.get(SyncRun, result.run_id)
            assert run is not None
            assert (run.rows_read, run.rows_new, run.layout) == (expected, expected, "current")

    async def test_identical_second_sync_writes_nothing(self, plan: Plan) -> None:
        await plan.sync()
        async with plan.db.transaction() as session:
            before = {c.id: c.updated_at for c in await session.scalars(select(Complaint))}
        changes_before = await plan.count(ComplaintChange)
        again = await plan.sync()
        assert (again.new, again.changed) == (0, 0)
        assert again.unchanged > 0, "the overlapping window re-read complaints it already had"
        async with plan.db.transaction() as session:
            after = {c.id: c.updated_at for c in await session.scalars(select(Complaint))}
        assert after == before
        assert await plan.count(ComplaintChange) == changes_before
        assert len(await events(plan.db, "complaint.updated")) == 0

    async def test_one_changed_complaint_is_one_update_event(self, plan: Plan) -> None:
        await plan.sync()
        async with plan.db.transaction() as session:
            # A recent one: the next window re-reads the last two days (the overlap).
            target = await session.scalar(
                select(Complaint)
                .where(Complaint.contract == "H1234")
                .order_by(Complaint.received_date.desc())
                .limit(1)
            )
            assert target is not None
        plan.sim.state.resolutions[("H1234", target.complaint_id)] = {
            "CMS_COMMENTS": "Please call back."
        }
        result = await plan.sync()
        assert (result.new, result.changed) == (0, 1)
        [event] = await events(plan.db, "complaint.updated")
        assert event.payload["complaint_id"] == target.complaint_id
        assert event.payload["changed"] == ["phi"]
        assert "Please call back." not in str(event.payload)

    async def test_storms_of_429_and_500_still_end_complete(self, plan: Plan) -> None:
        plan.sim.state.faults.rate_429 = 0.3
        plan.sim.state.faults.rate_500 = 0.3
        plan.sim.state.faults.retry_after = 0
        outcome, attempt = None, 1
        while attempt <= 12:
            outcome = await plan.sync(attempt=attempt)
            if outcome.retry_in is None:
                break
            attempt += 1
        assert outcome is not None
        assert outcome.outcome is RunOutcome.SUCCEEDED
        plan.sim.state.faults.rate_429 = plan.sim.state.faults.rate_500 = 0.0
        expected = len(
            list(
                plan.sim.state.complaints(
                    "H1234", utcnow().date() - timedelta(days=90), utcnow().date()
                )
            )
        )
        assert await plan.count(Complaint, Complaint.contract == "H1234") == expected

    async def test_cut_download_imports_nothing_then_recovers(self, plan: Plan) -> None:
        plan.sim.state.faults.script.append(("download", "cut"))
        first = await plan.sync()
        assert first.outcome is RunOutcome.FAILED
        assert first.retry_in is not None
        assert await plan.count(Complaint) == 0, "nothing is imported from a truncated download"
        second = await plan.sync(attempt=2)
        assert second.outcome is RunOutcome.SUCCEEDED
        assert await plan.count(Complaint) == second.new > 0

    async def test_rotated_key_needs_replacement_and_others_carry_on(self, plan: Plan) -> None:
        other_member, other_key, _ = await onboard(plan.db, plan.sim, "beta", ("R0001",))
        plan.sim.state.contracts["R0001"] = ContractPlan(daily_min=1, daily_max=2)
        plan.sim.state.rotate(plan.sim_key.key_id)
        plan.sim.state.expire_tokens()
        result = await plan.sync()
        assert result.outcome is RunOutcome.BLOCKED
        assert result.retry_in is None
        async with plan.db.transaction() as session:
            key = await session.get(ApiKey, plan.key.id)
            assert key is not None
            assert key.status is KeyStatus.NEEDS_REPLACEMENT
        assert len(await events(plan.db, "key.invalid")) == 1
        assert len(await events(plan.db, "sync.failed")) == 1
        fine = await syncs.run_sync(
            plan.db,
            plan.clients,
            tenant_id=other_member.tenant_id,
            key_id=other_key.id,
            contract="R0001",
        )
        assert fine.outcome is RunOutcome.SUCCEEDED

    async def test_contract_refused_marks_access_lost_only_for_it(self, plan: Plan) -> None:
        plan.sim.state.get_key(plan.sim_key.key_id).contracts.discard("S5678")
        refused = await plan.sync("S5678")
        assert refused.outcome is RunOutcome.BLOCKED
        assert len(await events(plan.db, "key.access_lost")) == 1
        assert (await plan.sync("H1234")).outcome is RunOutcome.SUCCEEDED

    async def test_cursor_moves_and_the_next_window_overlaps(self, plan: Plan) -> None:
        await plan.sync()
        async with plan.db.transaction() as session:
            cursor = await session.scalar(select(SyncCursor))
            assert cursor is not None
            assert cursor.synced_through == utcnow().date()
            assert cursor.next_due_at is not None
        second = await plan.sync()
        async with plan.db.transaction() as session:
            run = await session.get(SyncRun, second.run_id)
            assert run is not None
            assert run.window_start == utcnow().date() - timedelta(days=2)


class TestScheduler:
    async def test_due_pairs_are_fair_across_tenants(self, plan: Plan) -> None:
        many = tuple(f"H{n:04d}" for n in range(2000, 2012))
        await onboard(plan.db, plan.sim, "busy", many)
        policy = syncs.SyncPolicy(per_tenant_per_tick=5)
        async with plan.db.transaction() as session:
            due = await syncs.due_pairs(session, now=utcnow(), policy=policy)
        tenants = [p.tenant_id for p in due]
        assert tenants.count(plan.tenant_id) == 2  # acme's two contracts
        assert len(due) == 2 + 5, "the busy tenant is capped per tick"
        assert due[0].tenant_id != due[1].tenant_id, "tenants take turns"

    async def test_paused_schedule_and_synced_pairs_are_not_due(self, plan: Plan) -> None:
        await plan.sync("H1234")
        async with plan.db.transaction() as session:
            due = await syncs.due_pairs(session, now=utcnow(), policy=syncs.SyncPolicy())
        assert [p.contract for p in due] == ["S5678"]

    async def test_full_cycle_through_a_real_worker(
        self, plan: Plan, settings: Settings, redis_url: str
    ) -> None:
        async with plan.db.transaction() as session:
            assert await syncs.schedule_due(session, policy=syncs.SyncPolicy()) == 2
        pool = await connect(redis_url)
        worker = create_worker(
            settings, subscriptions=[], database=plan.db, redis_pool=pool, burst=True,
            ctm_clients=plan.clients, poll_delay=0.05, max_burst_jobs=50,
        )  # fmt: skip
        try:
            await asyncio.wait_for(worker.async_run(), timeout=60)
        finally:
            await worker.close()
        assert await plan.count(SyncRun, SyncRun.outcome == RunOutcome.SUCCEEDED) == 2
        assert await plan.count(Complaint, Complaint.contract == "S5678") > 0
        assert await plan.count(Event, Event.type == "sync.completed") == 2
        assert await plan.count(Event, Event.dispatched_at.is_(None)) == 0, (
            "the events were dispatched"
        )


class TestSyncJobIds:
    async def test_sync_now_right_after_a_scheduled_sync_runs(
        self, plan: Plan, redis: Any, settings: Settings
    ) -> None:
        async with plan.db.transaction() as session:
            await syncs.request_sync(session, tenant_id=plan.tenant_id, contract="H1234")
        await run_worker(plan, redis, settings)
        assert await plan.count(SyncRun) == 1
        plan.sim.state.advance(1)
        async with plan.db.transaction() as session:
            await syncs.request_sync(session, tenant_id=plan.tenant_id, contract="H1234")
        await run_worker(plan, redis, settings)
        assert await plan.count(SyncRun) == 2, "the requested sync never ran"

    async def test_sync_now_while_the_pairs_sync_runs_syncs_again_when_it_ends(
        self, plan: Plan, redis: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        begin, asked = syncs._begin, []

        async def begin_then_ask(*args: Any, **kwargs: Any) -> Any:
            started = await begin(*args, **kwargs)
            if not asked:  # "sync now" once the run has begun: it may miss what it wants
                async with plan.db.transaction() as session:
                    asked.extend(
                        await syncs.request_sync(
                            session, tenant_id=plan.tenant_id, contract="H1234"
                        )
                    )
            return started

        monkeypatch.setattr(syncs, "_begin", begin_then_ask)
        assert (await try_job(plan, job_ctx(plan, redis))).startswith("new=")
        async with plan.db.transaction() as session:
            runs = (await session.scalars(select(SyncRun).order_by(SyncRun.started_at))).all()
            cursor = await session.scalar(select(SyncCursor).where(SyncCursor.contract == "H1234"))
        assert [(r.trigger, r.outcome) for r in runs] == [
            ("schedule", RunOutcome.SUCCEEDED),
            ("manual", RunOutcome.SUCCEEDED),
        ], "the sync asked for during the first ran right after it"
        [requested] = asked
        assert requested.running_since == runs[0].started_at
        assert cursor is not None
        assert cursor.next_due_at is not None
        assert cursor.next_due_at > utcnow() + timedelta(minutes=5), "then back on schedule"

    async def test_sync_now_before_the_run_begins_is_that_run(self, plan: Plan, redis: Any) -> None:
        async with plan.db.transaction() as session:
            [requested] = await syncs.request_sync(
                session, tenant_id=plan.tenant_id, contract="H1234"
            )
        assert requested.running_since is None
        await try_job(plan, job_ctx(plan, redis))
        assert await plan.count(SyncRun) == 1

    async def test_sync_now_during_a_failed_run_leaves_the_pair_due(
        self, plan: Plan, redis: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        begin = syncs._begin

        async def begin_then_ask(*args: Any, **kwargs: Any) -> Any:
            started = await begin(*args, **kwargs)
            async with plan.db.transaction() as session:
                await syncs.request_sync(session, tenant_id=plan.tenant_id, contract="H1234")
            return started

        monkeypatch.setattr(syncs, "_begin", begin_then_ask)
        plan.sim.state.faults.script.append(("download", "html_as_csv"))
        result = await plan.sync()
        assert result.outcome is RunOutcome.FAILED
        assert not result.again
        async with plan.db.transaction() as session:
            cursor = await session.scalar(select(SyncCursor).where(SyncCursor.contract == "H1234"))
            assert cursor is not None
            assert cursor.next_due_at is not None
            assert cursor.next_due_at <= utcnow(), "due at once: the schedule's next tick"
            due = await syncs.due_pairs(session, now=utcnow(), policy=syncs.SyncPolicy())
        assert ("H1234", plan.key.id) in {(p.contract, p.key_id) for p in due}


@contextlib.asynccontextmanager
async def dead_holders(redis: Any, key_id: str, lease: timedelta) -> AsyncIterator[None]:
    """Every slot of the key taken by workers that then died: never given back."""
    held = [key_slot(redis, key_id, lease=lease) for _ in range(PER_KEY_CONCURRENCY)]
    assert [await slot.__aenter__() for slot in held] == [True] * PER_KEY_CONCURRENCY
    try:
        yield
    finally:  # only to close the generators; the holders are long expired by now
        for slot in held:
            await slot.__aexit__(None, None, None)


def job_ctx(plan: Plan, redis: Any, job_try: int = 1) -> Any:
    """What arq hands the job for the pair (key, H1234) at try `job_try`."""
    return {
        "redis": redis, "db": plan.db, "ctm": plan.clients, "sync_policy": None,
        "job_id": f"sync:{plan.key.id}:H1234", "job_try": job_try,
    }  # fmt: skip


async def try_job(plan: Plan, ctx: Any) -> str:
    """One try of the job, as arq runs it: the next one counts one more."""
    try:
        return await sync_contract(ctx, str(plan.tenant_id), str(plan.key.id), "H1234")
    finally:
        ctx["job_try"] += 1


class TestKeySlots:
    """At most `PER_KEY_CONCURRENCY` syncs use one key at once, over every worker."""

    async def test_a_key_has_so_many_slots_and_a_released_one_is_free_again(
        self, redis: Any
    ) -> None:
        async with contextlib.AsyncExitStack() as held:
            taken = [
                await held.enter_async_context(key_slot(redis, "key-a"))
                for _ in range(PER_KEY_CONCURRENCY)
            ]
            assert taken == [True] * PER_KEY_CONCURRENCY
            async with key_slot(redis, "key-a") as one_more:
                assert one_more is False
            async with key_slot(redis, "key-b") as other_key:
                assert other_key is True, "another key has slots of its own"
        async with key_slot(redis, "key-a") as again:
            assert again is True, "every slot was given back"
        assert await redis.exists(slots_name("key-a")) == 0, "no holder is left behind"

    async def test_a_sync_without_a_slot_comes_back_later_untried(
        self, plan: Plan, redis: Any
    ) -> None:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(PER_KEY_CONCURRENCY):
                await held.enter_async_context(key_slot(redis, str(plan.key.id)))
            with pytest.raises(Retry):
                await try_job(plan, job_ctx(plan, redis))
        assert await plan.count(SyncRun) == 0, "no run was started without a slot"

    async def test_each_holder_keeps_its_own_deadline(self, redis: Any) -> None:
        async with contextlib.AsyncExitStack() as held:
            short = await held.enter_async_context(
                key_slot(redis, "key-a", lease=timedelta(seconds=1))
            )
            long = await held.enter_async_context(key_slot(redis, "key-a"))
            assert (short, long) == (True, True)
            await asyncio.sleep(1.2)
            async with key_slot(redis, "key-a") as freed:
                assert freed is True, "the short lease ended; the long one did not shorten it"
                async with key_slot(redis, "key-a") as one_more:
                    assert one_more is False, "the long lease still holds its slot"
            # The short holder's late release gives back only its own (expired) slot.
        assert await redis.exists(slots_name("key-a")) == 0

    async def test_a_dead_workers_slots_expire_even_while_other_syncs_knock(
        self, plan: Plan, redis: Any
    ) -> None:
        ctx, knocks = job_ctx(plan, redis), 0
        async with dead_holders(redis, str(plan.key.id), lease=timedelta(seconds=1)):
            # A sync knocks every 0.1 s: were a knock to lengthen the holders' lives, their
            # 1 s leases would never end.
            while await plan.count(SyncRun) == 0:
                assert knocks < 100, "the dead workers' slots never freed themselves"
                with contextlib.suppress(Retry):
                    await try_job(plan, ctx)
                knocks += 1
                await asyncio.sleep(0.1)
            assert knocks >= 5, "the key was busy until the dead holders' leases ended"
            assert await redis.exists(slots_name(str(plan.key.id))) == 0, "expired ones dropped"


class TestBusyKey:
    """A sync that finds its key busy comes back later without spending a real try."""

    async def test_a_sync_waiting_for_a_busy_key_is_not_dropped(
        self, plan: Plan, redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("workers.syncs.BUSY_RETRY", timedelta(seconds=0.02))
        job = syncs.sync_job(plan.tenant_id, plan.key.id, "H1234")
        async with dead_holders(redis, str(plan.key.id), lease=timedelta(seconds=2)):
            await redis.enqueue_job(job.function, *job.args, _job_id=job.job_id)
            worker = await run_worker(plan, redis, settings)
        assert worker.jobs_retried > MAX_TRIES, "the key stayed busy for more tries than that"
        assert worker.jobs_failed == 0
        assert await plan.count(SyncRun, SyncRun.outcome == RunOutcome.SUCCEEDED) == 1
        assert await redis.exists(f"hub:sync-busy:{job.job_id}") == 0, "the job cleared its count"

    async def test_busy_tries_leave_the_real_tries_and_their_backoff_alone(
        self, plan: Plan, redis: Any
    ) -> None:
        ctx = job_ctx(plan, redis)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(PER_KEY_CONCURRENCY):
                await held.enter_async_context(key_slot(redis, str(plan.key.id)))
            for _ in range(MAX_TRIES + 2):
                with pytest.raises(Retry):
                    await try_job(plan, ctx)
        plan.sim.state.faults.script.append(("download", "cut"))
        with pytest.raises(Retry) as retry:
            await try_job(plan, ctx)
        assert retry.value.defer_score == 10_000, "backed off as a first try: 5 s x 2"
        assert (await try_job(plan, ctx)).startswith("new="), "the second real try ran"
        assert await plan.count(SyncRun) == 2

    async def test_a_record_left_by_an_earlier_job_with_the_id_counts_for_nothing(
        self, plan: Plan, redis: Any
    ) -> None:
        ctx = job_ctx(plan, redis)
        await redis.set(f"hub:sync-busy:{ctx['job_id']}", "9:8")
        plan.sim.state.faults.script.extend([("download", "cut"), ("download", "cut")])
        for backoff in (10_000, 20_000):
            with pytest.raises(Retry) as retry:
                await try_job(plan, ctx)
            assert retry.value.defer_score == backoff

    async def test_a_sync_busy_too_long_ends_for_the_schedule_to_enqueue_again(
        self, plan: Plan, redis: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("workers.syncs.MAX_BUSY_TRIES", 3)
        ctx = job_ctx(plan, redis)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(PER_KEY_CONCURRENCY):
                await held.enter_async_context(key_slot(redis, str(plan.key.id)))
            for _ in range(3):
                with pytest.raises(Retry):
                    await try_job(plan, ctx)
            assert await try_job(plan, ctx) == "key busy"
        assert await plan.count(SyncRun) == 0
        assert await redis.exists(f"hub:sync-busy:{ctx['job_id']}") == 0

    async def test_a_sync_now_busy_that_long_waits_on_a_minute_at_a_time(
        self, plan: Plan, redis: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # No schedule enqueues a "sync now" again (its tenant may have paused syncs).
        monkeypatch.setattr("workers.syncs.MAX_BUSY_TRIES", 3)
        monkeypatch.setattr("workers.syncs.MAX_SLOW_BUSY_TRIES", 2)
        ctx = job_ctx(plan, redis)

        async def manual_try() -> str:
            try:
                return await sync_contract(
                    ctx, str(plan.tenant_id), str(plan.key.id), "H1234", "manual"
                )
            finally:
                ctx["job_try"] += 1

        async with contextlib.AsyncExitStack() as held:
            for _ in range(PER_KEY_CONCURRENCY):
                await held.enter_async_context(key_slot(redis, str(plan.key.id)))
            waits = []
            for _ in range(5):
                with pytest.raises(Retry) as retry:
                    await manual_try()
                waits.append(retry.value.defer_score)
            assert waits == [3_000, 3_000, 3_000, 60_000, 60_000]
            assert await manual_try() == "key busy"
        assert await plan.count(SyncRun) == 0
        assert MAX_JOB_TRIES > MAX_TRIES + 300 + 120, "arq allows every wait"

    async def test_a_sync_whose_worker_died_every_try_is_given_up(
        self, plan: Plan, redis: Any
    ) -> None:
        ctx = job_ctx(plan, redis, job_try=MAX_TRIES + 1)
        assert await try_job(plan, ctx) == "gave up"
        assert await plan.count(SyncRun) == 0
