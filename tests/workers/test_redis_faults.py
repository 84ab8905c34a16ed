"""The worker's Redis connection lost while it claims a job: the job's slot is given back
and the job claimed on a later poll (arq's own worker stopped, its slot still counted).
The chaos tests (`tests/chaos/`) cut a real worker's connections; this one puts the fault
exactly where it hurts."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from arq import func

from hub.core.redis import arq_settings
from hub.settings import Settings
from workers.settings import HubWorker, create_worker


class _LostWhileWatching:
    """A pipeline whose WATCH meets a dropped connection (as redis-py reports it then)."""

    async def __aenter__(self) -> _LostWhileWatching:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def watch(self, *names: Any) -> None:
        raise redis.WatchError("A ConnectionError occurred on while watching one or more keys")


async def test_a_claim_cut_short_gives_the_slot_back_and_the_job_runs_later(
    redis: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = redis
    ran: list[str] = []

    async def noted(ctx: dict[str, Any], name: str) -> None:
        ran.append(name)

    worker = create_worker(
        settings, redis_pool=pool, burst=True, functions=[func(noted, name="noted")],
        cron_jobs=[], on_startup=None, max_jobs=2,
    )  # fmt: skip
    assert isinstance(worker, HubWorker)
    await pool.enqueue_job("noted", "first", _job_id="first")
    free = worker.sem._value
    healthy = pool.pipeline
    monkeypatch.setattr(pool, "pipeline", lambda **_: _LostWhileWatching())
    await worker.start_jobs([b"first"])  # the fault: no exception escapes the poll loop
    assert worker.job_counter == 0, "the slot is free again"
    assert worker.sem._value == free
    assert worker.tasks == {}
    monkeypatch.setattr(pool, "pipeline", healthy)
    await worker.main()  # burst: claims what is queued, runs it, ends
    assert ran == ["first"]


def test_commands_are_retried_on_a_new_connection_with_a_backoff() -> None:
    settings = arq_settings("redis://127.0.0.1:6379/0")
    assert settings.retry is not None
    assert set(settings.retry_on_error or []) == {redis.ConnectionError, redis.TimeoutError}
