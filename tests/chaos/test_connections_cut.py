"""A running worker whose connections to Redis or PostgreSQL are cut (a server restart, a
failover, a network fault) keeps working once they can be made again: the sync that was
cut fails with its reason and runs again, nothing is lost or doubled, and the worker
serves the next job without a restart. Each test runs a real worker process whose
connections go through a fault proxy on loopback (`proxy.py`), and stops by itself."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.complaints.models import Complaint
from hub.core.crypto import Crypto
from hub.core.db import Database, utcnow
from hub.core.jobs import ArqQueue
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.server import RunningSimulator, running_simulator
from hub.ctm.simulator.state import SimState
from hub.keys.models import Environment
from hub.settings import Settings
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome, SyncRun
from tests.chaos.proxy import FaultProxy, running_proxy
from tests.conftest import delete_all_rows
from tests.support import Member
from tests.workers.test_sync_crash import count, worker_env
from tests.workers.test_syncs import onboard

pytestmark = pytest.mark.slow

CONTRACTS = ("H1234", "S5678")


@asynccontextmanager
async def running_worker(env: dict[str, str]) -> AsyncIterator[subprocess.Popen[str]]:
    """A `hub worker` process; its stderr goes to a file (a pipe nobody reads would fill
    with the faults' log lines and stop the worker), readable as `worker.stderr`."""
    with tempfile.TemporaryFile("w+") as log:
        worker = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
            [sys.executable, "-m", "hub.cli", "worker"],
            env={**env, "HUB_WORKER_SHUTDOWN_GRACE_SECONDS": "5"},
            stdout=subprocess.DEVNULL, stderr=log, text=True,
        )  # fmt: skip
        worker.stderr = _Reader(log)  # type: ignore[assignment]
        try:
            yield worker
        finally:
            worker.send_signal(signal.SIGTERM)
            # Waited for without blocking this loop: the proxy and the simulator the worker
            # talks to while it stops run in it.
            try:
                await asyncio.to_thread(worker.wait, 30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


class _Reader:
    """What the worker wrote to its log file so far (`read()`, as a pipe's would)."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def read(self) -> str:
        self._log.seek(0)
        return str(self._log.read())


async def until(
    check: Callable[[], Awaitable[bool]], worker: subprocess.Popen[str], what: str, within: float
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if worker.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.returncode}) while {what}:\n"
                                 + (worker.stderr.read() if worker.stderr else ""))  # fmt: skip
        assert time.monotonic() < deadline, f"not within {within:.0f} s: {what}"
        await asyncio.sleep(0.1)


async def sync_now(db: Database, tenant_id: Any, contract: str) -> None:
    async with db.transaction() as session:  # as the API's "sync now" does it
        await syncs.request_sync(session, tenant_id=tenant_id, contract=contract)


async def runs(db: Database, contract: str, outcome: RunOutcome) -> int:
    return await count(db, SyncRun, SyncRun.contract == contract, SyncRun.outcome == outcome)


async def until_a_run(
    db: Database, contract: str, outcome: RunOutcome, worker: subprocess.Popen[str], what: str
) -> None:
    """Until `contract` has a run with `outcome` (within a minute)."""

    async def found() -> bool:
        return await runs(db, contract, outcome) >= 1

    await until(found, worker, what, within=60)


async def complaint_ids(db: Database, contract: str) -> list[str]:
    async with db.transaction(read_only=True) as session:
        found = select(Complaint.complaint_id).where(Complaint.contract == contract)
        return list(await session.scalars(found))


@pytest.fixture
async def world(
    engine: AsyncEngine, redis: Any, crypto: Crypto
) -> AsyncIterator[tuple[Database, RunningSimulator, SimState]]:
    db = Database(engine, ArqQueue(redis), crypto=crypto)
    state = SimState(environment="sandbox", seed=23, history_days=60)
    for contract in CONTRACTS:
        state.contracts[contract] = ContractPlan(daily_min=8, daily_max=8, summary_chars=600)
    try:
        async with running_simulator(state) as sim:
            yield db, sim, state
    finally:
        await delete_all_rows(engine)


async def paused(db: Database, tenant_id: Any) -> None:
    """No scheduled sync: each test says which sync runs when ("sync now" runs anyway)."""
    async with db.transaction() as session:
        await syncs.set_schedule(
            session, tenant_id, environment=Environment.SANDBOX, is_paused=True,
            policy=syncs.SyncPolicy(),
        )  # fmt: skip


def expected(state: SimState, contract: str) -> set[str]:
    today = utcnow().date()
    start = today - syncs.SyncPolicy().first_window
    return {c.complaint_id for c in state.complaints(contract, start, today)}


@dataclass
class Serving:
    member: Member
    proxy: FaultProxy
    worker: subprocess.Popen[str]


@asynccontextmanager
async def serving_through_a_redis_proxy(
    world: tuple[Database, RunningSimulator, SimState], settings: Settings, slug: str
) -> AsyncIterator[Serving]:
    """A worker whose Redis connections go through a fault proxy, once it has run a sync
    (H1234; scheduled syncs paused)."""
    db, sim, _ = world
    member, _, _ = await onboard(db, sim, slug, CONTRACTS)
    await paused(db, member.tenant_id)
    async with running_proxy(settings.effective_redis_url) as proxy:
        env = worker_env(settings, sim.url)
        env["HUB_REDIS_URL"] = proxy.url_for(settings.effective_redis_url)
        async with running_worker(env) as worker:
            await sync_now(db, member.tenant_id, "H1234")

            await until_a_run(db, "H1234", RunOutcome.SUCCEEDED, worker, "the first sync ran")
            yield Serving(member, proxy, worker)


class TestRedisCut:
    async def test_the_worker_serves_the_next_job_after_its_redis_connections_are_cut(
        self, world: tuple[Database, RunningSimulator, SimState], settings: Settings
    ) -> None:
        db, _, state = world
        async with serving_through_a_redis_proxy(world, settings, "redis-cut") as serving:
            proxy, worker = serving.proxy, serving.worker
            assert proxy.live >= 1
            assert proxy.cut() >= 2  # the worker's Redis connections, reset
            await asyncio.sleep(1.0)  # the worker polls into the cut meanwhile
            assert await runs(db, "S5678", RunOutcome.SUCCEEDED) == 0
            await sync_now(db, serving.member.tenant_id, "S5678")

            await until_a_run(
                db, "S5678", RunOutcome.SUCCEEDED, worker, "a sync asked for after the cut ran"
            )
            assert proxy.accepted > 1, "the worker connected again"
            assert worker.poll() is None
        for contract in CONTRACTS:
            ids = await complaint_ids(db, contract)
            assert len(ids) == len(set(ids))
            assert set(ids) == expected(state, contract)

    async def test_a_worker_whose_redis_stays_away_exits_non_zero_saying_why(
        self, world: tuple[Database, RunningSimulator, SimState], settings: Settings
    ) -> None:
        """Past the retries (a few seconds), the worker ends with exit code 1 and one line
        naming the cause, so that its supervisor (Kubernetes, systemd) starts it again."""
        async with serving_through_a_redis_proxy(world, settings, "redis-gone") as serving:
            worker = serving.worker
            await serving.proxy.stop()  # Redis gone: every new connection is refused
            deadline = time.monotonic() + 60
            while worker.poll() is None:
                assert time.monotonic() < deadline, "the worker never gave up"
                await asyncio.sleep(0.2)
            errors = worker.stderr.read() if worker.stderr else ""
        last = errors.strip().splitlines()[-1] if errors.strip() else ""
        assert worker.returncode == 1, (worker.returncode, last)
        assert last.startswith("error: the worker stopped: ConnectionError"), last


class TestDatabaseCut:
    async def test_a_sync_cut_from_its_database_fails_then_retries_losing_nothing(
        self, world: tuple[Database, RunningSimulator, SimState], settings: Settings
    ) -> None:
        if not settings.effective_database_url.startswith("postgresql"):
            pytest.skip("the embedded SQLite file has no connection to cut")
        db, sim, state = world
        member, _, _ = await onboard(db, sim, "db-cut", CONTRACTS)
        await paused(db, member.tenant_id)
        # A slow link: the download, and so the import transaction, lasts seconds.
        state.faults.chunk_delay_ms = 150
        async with running_proxy(settings.effective_database_url) as proxy:
            env = worker_env(settings, sim.url)
            env["HUB_DATABASE_URL"] = proxy.url_for(settings.effective_database_url)
            async with running_worker(env) as worker:
                await sync_now(db, member.tenant_id, "H1234")

                await until_a_run(db, "H1234", RunOutcome.RUNNING, worker, "the sync started")
                await asyncio.sleep(1.0)  # well into the download
                assert proxy.cut() >= 2, "the worker's database connections, reset"
                assert await complaint_ids(db, "H1234") == [], "cut before the import committed"

                await until_a_run(
                    db, "H1234", RunOutcome.FAILED, worker, "the cut sync was recorded failed"
                )
                async with db.transaction(read_only=True) as session:
                    run = await session.scalar(
                        select(SyncRun).where(
                            SyncRun.contract == "H1234", SyncRun.outcome == RunOutcome.FAILED
                        )
                    )
                assert run is not None
                assert run.error is not None
                assert "database connection was lost" in run.error, run.error
                state.faults.chunk_delay_ms = 0
                # No "sync now" for H1234: a lost connection is retried, as CMS's faults are.
                await sync_now(db, member.tenant_id, "S5678")

                async def both_done() -> bool:
                    return all([await runs(db, c, RunOutcome.SUCCEEDED) >= 1 for c in CONTRACTS])

                await until(both_done, worker, "both contracts synced after the cut", 90)
                assert worker.poll() is None, "the same worker, no restart"
        for contract in CONTRACTS:
            ids = await complaint_ids(db, contract)
            assert len(ids) == len(set(ids)), "no complaint twice"
            assert set(ids) == expected(state, contract), "every complaint present"
