"""The worker liveness check against a real arq Worker and Redis: the key arq writes under
`workers.health.worker_options()` is the key `python -m workers.health` reads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from arq.worker import Worker

from hub.core.redis import arq_settings
from hub.settings import Settings
from workers import health
from workers.settings import create_worker

# arq's Worker.close calls redis-py's deprecated close(); not ours to change.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")


async def noop(ctx: dict[str, object]) -> None:
    return None


def burst_worker(redis_url: str, host: str) -> Worker:
    return Worker(
        functions=[noop],
        redis_settings=arq_settings(redis_url),
        # A queue of its own: a burst worker must not take other tests' jobs.
        queue_name="hub-test:worker-health",
        burst=True,
        handle_signals=False,
        poll_delay=0.01,
        **health.worker_options(host),
    )


class TestHeartbeat:
    async def test_a_polling_worker_is_live(self, redis_url: str) -> None:
        worker = burst_worker(redis_url, "pod-live")
        try:
            await worker.main()
            assert await health.check(redis_url, health.health_check_key("pod-live")) is None
        finally:
            await worker.close()

    async def test_a_stopped_worker_is_not(self, redis_url: str) -> None:
        worker = burst_worker(redis_url, "pod-stopped")
        await worker.main()
        await worker.close()  # arq deletes its heartbeat on the way out
        problem = await health.check(redis_url, health.health_check_key("pod-stopped"))
        assert problem is not None
        assert "no heartbeat" in problem

    async def test_another_pods_heartbeat_does_not_count(self, redis_url: str) -> None:
        worker = burst_worker(redis_url, "pod-a")
        try:
            await worker.main()
            assert await health.check(redis_url, health.health_check_key("pod-b")) is not None
        finally:
            await worker.close()

    async def test_unreachable_redis_is_not_live(self) -> None:
        problem = await health.check("redis://127.0.0.1:1/0", health.health_check_key("x"))
        assert problem is not None
        assert "cannot reach Redis" in problem

    def test_the_heartbeat_outlives_its_interval_only_briefly(self) -> None:
        options = health.worker_options("pod")
        assert options["health_check_interval"] == health.HEALTH_CHECK_INTERVAL
        assert health.HEALTH_CHECK_INTERVAL.total_seconds() <= 120

    def test_the_hubs_worker_beats_under_its_hosts_key(self) -> None:
        """`hub worker` writes the key the probe in the same pod reads, every minute."""
        settings = Settings(database_url="postgresql://hub@db/hub", redis_url="redis://redis")
        worker = create_worker(settings, burst=True)
        assert worker.health_check_key == health.health_check_key()
        assert worker.health_check_interval == health.HEALTH_CHECK_INTERVAL.total_seconds()


class TestCommand:
    @pytest.mark.slow
    def test_module_exits_1_naming_the_problem(self) -> None:
        env = {**os.environ, "HUB_REDIS_URL": "redis://127.0.0.1:1/0"}
        done = subprocess.run(
            [sys.executable, "-m", "workers.health"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert "worker not live: cannot reach Redis" in done.stderr
