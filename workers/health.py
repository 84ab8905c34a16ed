"""A worker's liveness: is the worker in this pod still writing its heartbeat in Redis?

arq writes a heartbeat key from its poll loop every `health_check_interval`, set to expire
just after the next one is due. By default that is one key shared by every worker
(`arq:queue:health-check`, hourly), which cannot tell one pod from another and which any
worker that stops deletes. `worker_options()` gives each worker a key of its own host (in
Kubernetes, the pod name) refreshed every minute; `python -m workers.health`, run in the
same pod, exits 0 while that key is there and 1, with one line saying why, when it is not.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import timedelta
from typing import Any

from arq.constants import default_queue_name, health_check_key_suffix

# Written at most this often from the poll loop, and kept this long plus a second. The poll
# loop can wait for a free job slot before it writes again, so a probe must allow minutes.
HEALTH_CHECK_INTERVAL = timedelta(seconds=60)


def health_check_key(host: str | None = None) -> str:
    """The heartbeat key of the worker on `host` (this host by default)."""
    return f"{default_queue_name}{health_check_key_suffix}:{host or socket.gethostname()}"


def worker_options(host: str | None = None) -> dict[str, Any]:
    """arq Worker options that make the heartbeat this host's own (for `create_worker`)."""
    return {
        "health_check_key": health_check_key(host),
        "health_check_interval": HEALTH_CHECK_INTERVAL,
    }


async def check(redis_url: str, key: str) -> str | None:
    """None while the heartbeat `key` is in Redis; otherwise why the worker is not live."""
    from redis.exceptions import RedisError

    from hub.core.redis import RedisUnavailable, connect, safe_url

    try:
        redis = await connect(redis_url)
    except RedisUnavailable as error:
        return str(error)
    try:
        beat = await redis.get(key)
    except (RedisError, OSError) as error:
        return f"cannot read {key} from Redis at {safe_url(redis_url)}: {error}"
    finally:
        await redis.aclose()
    if beat is None:
        return f"no heartbeat in {key}: the worker has not polled its queue lately"
    return None


def _redis_url() -> str:
    url = os.environ.get("HUB_REDIS_URL", "").strip()
    if url:
        return url
    # Only without HUB_REDIS_URL (the embedded Redis): the settings know where it is.
    from hub.settings import load_settings

    return load_settings().effective_redis_url


def main() -> int:
    key = health_check_key()
    problem = asyncio.run(check(_redis_url(), key))
    if problem is not None:
        print(f"worker not live: {problem}", file=sys.stderr)
        return 1
    print(f"worker live: {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
