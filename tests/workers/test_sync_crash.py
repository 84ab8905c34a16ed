"""A worker killed with SIGKILL in the middle of a sync loses nothing and doubles nothing:
after a restart every complaint is present exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.complaints.models import Complaint
from hub.core.crypto import Crypto
from hub.core.db import Database, utcnow
from hub.core.jobs import ArqQueue
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.server import running_simulator
from hub.ctm.simulator.state import SimState
from hub.settings import Settings
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome, SyncRun
from tests.conftest import TEST_MASTER_KEYS, delete_all_rows
from tests.workers.test_syncs import onboard

pytestmark = pytest.mark.slow


def worker_env(settings: Settings, sim_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATABASE_URL=settings.effective_database_url,
        HUB_REDIS_URL=settings.effective_redis_url,
        HUB_MASTER_KEYS=TEST_MASTER_KEYS,
        HUB_CTM_SANDBOX_URL=sim_url,
        HUB_DATA_DIR=str(settings.resolved_data_dir),
        HUB_LOG_LEVEL="WARNING",
    )
    return env


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.transaction(read_only=True) as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


class TestWorkerKilledMidSync:
    async def test_restart_leaves_every_complaint_exactly_once(
        self, engine: AsyncEngine, redis: Any, crypto: Crypto, settings: Settings, redis_url: str
    ) -> None:
        db = Database(engine, ArqQueue(redis), crypto=crypto)
        state = SimState(environment="sandbox", seed=11, history_days=90)
        # A slow link (a pause after every 32 KiB chunk): the download, and so the import
        # transaction, lasts seconds, and the kill lands inside it.
        state.contracts["H1234"] = ContractPlan(daily_min=20, daily_max=20, summary_chars=1000)
        state.faults.chunk_delay_ms = 100
        try:
            async with running_simulator(state) as sim:
                member, key, _ = await onboard(db, sim, "crash", ("H1234",))
                today = utcnow().date()
                window = syncs.SyncPolicy().first_window
                expected = {
                    c.complaint_id for c in state.complaints("H1234", today - window, today)
                }
                async with db.transaction() as session:  # "sync now", as the API does it
                    await syncs.request_sync(session, tenant_id=member.tenant_id, contract="H1234")

                worker = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
                    [sys.executable, "-m", "hub.cli", "worker"],
                    env=worker_env(settings, sim.url),
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                try:
                    deadline = time.monotonic() + 60
                    while await count(db, SyncRun, SyncRun.outcome == RunOutcome.RUNNING) == 0:
                        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
                        assert time.monotonic() < deadline, "the worker never started the sync"
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.5)  # well into the download
                finally:
                    worker.send_signal(signal.SIGKILL)
                    worker.wait()
                assert await count(db, Complaint) == 0, (
                    "the kill landed after the import committed: make the download bigger"
                )

                state.faults.chunk_delay_ms = 0
                # arq frees a dead worker's job after its timeout; free it now instead.
                await redis.delete(f"arq:in-progress:sync:{key.id}:H1234")
                restarted = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
                    [sys.executable, "-m", "hub.cli", "worker"],
                    env=worker_env(settings, sim.url),
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                try:
                    deadline = time.monotonic() + 120
                    while await count(db, SyncRun, SyncRun.outcome == RunOutcome.SUCCEEDED) == 0:
                        assert restarted.poll() is None, (
                            restarted.stderr.read() if restarted.stderr else ""
                        )
                        assert time.monotonic() < deadline, "the restarted worker did not finish"
                        await asyncio.sleep(0.2)
                finally:
                    restarted.send_signal(signal.SIGTERM)
                    # Off the loop: the simulator it may still be talking to runs in it.
                    await asyncio.to_thread(restarted.wait, 30)
            async with db.transaction() as session:
                found = select(Complaint.complaint_id).where(Complaint.contract == "H1234")
                ids = list(await session.scalars(found))
            assert len(ids) == len(set(ids)), "no complaint twice"
            assert set(ids) == expected, "every complaint present"
            assert await count(db, SyncRun, SyncRun.outcome == RunOutcome.SUCCEEDED) == 1
        finally:
            await delete_all_rows(engine)
