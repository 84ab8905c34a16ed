"""A sync that never finishes is a failure like any other: cut short by its job's time
limit, or abandoned by a worker that died, its run says so and its cursor counts it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hub.core.db import utcnow
from hub.core.ids import uuid7
from hub.events.models import Event
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome, SyncCursor, SyncRun
from tests.workers import test_syncs
from tests.workers.test_syncs import Plan

plan = test_syncs.plan  # the fixture


async def cursor_of(plan: Plan) -> SyncCursor:
    async with plan.db.transaction() as session:
        found = await session.scalar(
            select(SyncCursor).where(
                SyncCursor.api_key_id == plan.key.id, SyncCursor.contract == "H1234"
            )
        )
    assert found is not None
    return found


async def test_a_sync_cut_short_by_its_time_limit_is_a_recorded_failure(plan: Plan) -> None:
    plan.sim.state.faults.hang_seconds = 5
    plan.sim.state.faults.script.append(("download", "hang"))
    # What arq does when a job outlives its timeout: cancel it, and wait for it to end.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(plan.sync(), timeout=0.5)
    async with plan.db.transaction() as session:
        [run] = (await session.scalars(select(SyncRun))).all()
        failed = (await session.scalars(select(Event).where(Event.type == "sync.failed"))).all()
    assert (run.outcome, run.error) == (RunOutcome.FAILED, syncs.CANCELLED)
    assert run.finished_at is not None
    cursor = await cursor_of(plan)
    assert (cursor.consecutive_failures, cursor.last_error) == (1, syncs.CANCELLED)
    assert len(failed) == 1
    assert failed[0].payload["error"] == syncs.CANCELLED
    assert (await plan.sync()).outcome is RunOutcome.SUCCEEDED, "the next one goes on"


async def test_a_sync_cut_short_after_its_import_committed_stays_succeeded(
    plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while it sends the jobs its commit queued (the import is in): the run is
    not turned into a failure after the fact."""
    queue = plan.db.queue
    assert queue is not None
    committed, send = asyncio.Event(), queue.send

    async def slow_send(job: Any) -> bool:
        committed.set()
        await asyncio.sleep(30)
        return await send(job)

    monkeypatch.setattr(queue, "send", slow_send)
    sync = asyncio.create_task(plan.sync())
    await asyncio.wait_for(committed.wait(), timeout=30)
    sync.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sync
    async with plan.db.transaction() as session:
        [run] = (await session.scalars(select(SyncRun))).all()
    assert (run.outcome, run.error) == (RunOutcome.SUCCEEDED, None)
    assert (await cursor_of(plan)).consecutive_failures == 0


async def test_a_run_whose_worker_died_is_closed_by_the_scheduler(plan: Plan) -> None:
    assert (await plan.sync()).outcome is RunOutcome.SUCCEEDED
    now = utcnow()
    async with plan.db.transaction() as session:
        done = await session.scalar(select(SyncRun))
        assert done is not None
        cursor = await session.scalar(select(SyncCursor))
        assert cursor is not None
        cursor.last_success_at = now - timedelta(hours=2)  # no success since it began
        for started in (now - timedelta(hours=1), now):  # a dead worker's; one running
            session.add(
                SyncRun(
                    id=uuid7(), tenant_id=plan.tenant_id, api_key_id=plan.key.id,
                    contract="H1234", trigger="schedule", window_start=done.window_start,
                    window_end=done.window_end, started_at=started,
                ),
            )  # fmt: skip
    async with plan.db.transaction() as session:
        await syncs.schedule_due(session, now=now, policy=syncs.SyncPolicy())
    async with plan.db.transaction() as session:
        runs = (await session.scalars(select(SyncRun).order_by(SyncRun.started_at))).all()
    assert [(r.outcome, r.error) for r in runs] == [
        (RunOutcome.FAILED, syncs.ABANDONED),
        (RunOutcome.SUCCEEDED, None),
        (RunOutcome.RUNNING, None),
    ]
    assert runs[0].finished_at is not None
    cursor = await cursor_of(plan)
    assert (cursor.consecutive_failures, cursor.last_error) == (1, syncs.ABANDONED)
    async with plan.db.transaction() as session:
        [failed] = (await session.scalars(select(Event).where(Event.type == "sync.failed"))).all()
    assert failed.payload["run"] == str(runs[0].id)
    assert (failed.payload["error"], failed.payload["will_retry"]) == (syncs.ABANDONED, False)
