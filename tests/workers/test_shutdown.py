"""A worker told to stop takes no new job and lets those running finish, within a grace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from arq import Worker, func

from hub.core.redis import connect
from hub.runtime import finish_jobs


@dataclass
class Jobs:
    started: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    running: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Running:
    worker: Worker
    pool: Any
    jobs: Jobs


@pytest.fixture
async def running(redis_url: str) -> AsyncIterator[Running]:
    jobs = Jobs()
    pool = await connect(redis_url)
    await pool.flushdb()

    async def slow(ctx: dict[str, Any], name: str, seconds: float) -> None:
        jobs.started.append(name)
        jobs.running.set()
        await asyncio.sleep(seconds)
        jobs.finished.append(name)

    worker = Worker(
        functions=[func(slow, name="slow")],
        redis_pool=pool,
        handle_signals=False,
        poll_delay=0.05,
        max_jobs=5,
    )
    task = asyncio.create_task(worker.async_run())
    try:
        yield Running(worker, pool, jobs)
    finally:
        await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.aclose()


async def start(running: Running, name: str, seconds: float) -> None:
    running.jobs.running.clear()
    await running.pool.enqueue_job("slow", name, seconds)
    await asyncio.wait_for(running.jobs.running.wait(), timeout=10)


# arq's own close() calls a redis-py method that warns it is deprecated.
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
class TestFinishJobs:
    async def test_a_running_job_finishes_and_no_new_one_starts(self, running: Running) -> None:
        await start(running, "first", 1.0)
        await finish_jobs(running.worker, asyncio.Event(), grace=20)
        await running.pool.enqueue_job("slow", "second", 0.0)
        await asyncio.sleep(0.5)  # ten polls: a worker still taking jobs would start it
        assert running.jobs.finished == ["first"]
        assert running.jobs.started == ["first"]
        assert await running.pool.zcard("arq:queue") == 1  # left for another worker

    async def test_the_wait_ends_at_the_grace(self, running: Running) -> None:
        await start(running, "long", 30.0)
        began = time.monotonic()
        await finish_jobs(running.worker, asyncio.Event(), grace=0.5)
        assert 0.4 < time.monotonic() - began < 5
        assert running.jobs.finished == []  # the caller's close() cancels it

    async def test_a_second_signal_cuts_the_wait_short(self, running: Running) -> None:
        await start(running, "long", 30.0)
        stop = asyncio.Event()
        stop.set()  # the first signal, which began the shutdown
        asyncio.get_running_loop().call_later(0.3, stop.set)  # and a second one
        began = time.monotonic()
        await finish_jobs(running.worker, stop, grace=20)
        assert time.monotonic() - began < 5
        assert running.jobs.finished == []

    async def test_nothing_running_returns_at_once(self, running: Running) -> None:
        began = time.monotonic()
        await finish_jobs(running.worker, asyncio.Event(), grace=20)
        assert time.monotonic() - began < 1
        assert running.worker.allow_pick_jobs is False
