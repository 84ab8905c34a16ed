"""Running the hub's processes: the API server and a worker, alone or together in one loop.

`hub demo` runs both (and the embedded Redis) in one process: Ctrl-C or SIGTERM stops the
server and the worker, then Redis, and the process exits with nothing left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import redis
import structlog
import uvicorn
from sqlalchemy.exc import DBAPIError, OperationalError

from hub.core.db import Database, migrate
from hub.settings import Settings, SettingsError

log = structlog.get_logger(__name__)


class StartupError(RuntimeError):
    """The hub cannot start; the message is one line naming what to fix."""


class ServiceStopped(RuntimeError):
    """A service of a running hub (the API, the worker) stopped without being asked: the
    message names which and why, in one line."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runner owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def check_database(settings: Settings) -> None:
    """Connect once, check the schema is at the code's migration head, and that the master
    key ring unwraps the tenant keys stored."""
    from sqlalchemy import text

    database = Database.from_url(settings.effective_database_url)
    try:
        try:
            async with database.engine.connect() as connection:
                try:
                    version = await connection.scalar(
                        text("SELECT version_num FROM alembic_version")
                    )
                except (OperationalError, DBAPIError) as error:
                    if "alembic_version" not in str(error):
                        raise
                    version = None
        except (OSError, OperationalError, DBAPIError) as error:
            reason = str(getattr(error, "orig", error)).splitlines()[0][:200]
            raise StartupError(
                f"HUB_DATABASE_URL: cannot connect to the database ({reason})"
            ) from None
        heads = migrate.current_heads()
        if version not in heads:
            raise StartupError(
                f"database schema is at {version or 'nothing'}, this code expects {heads[0]}: "
                "run `hub db upgrade`"
            )
        await _check_master_keys(database, settings)
    finally:
        await database.dispose()


async def _check_master_keys(database: Database, settings: Settings) -> None:
    """The master key ring must unwrap the tenant keys stored. A wrong key (or a lost
    `master.key` that the embedded mode replaced with a new one) would otherwise start a
    ready-looking hub whose every secret, sync and webhook fails."""
    from hub.auth import mfa
    from hub.core.crypto import Crypto, CryptoError
    from hub.core.crypto.service import check_master_keys as check_ring

    database.crypto = Crypto.from_settings(settings)
    try:
        async with database.transaction(read_only=True) as session:
            await check_ring(session)
            await mfa.check_ring(session)
    except CryptoError as error:
        raise StartupError(f"HUB_MASTER_KEYS: {error}") from None


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def serve_together(
    settings: Settings,
    *,
    host: str,
    port: int,
    api: bool = True,
    worker: bool = True,
    on_ready: Callable[[], Awaitable[None]] | None = None,
    ctm_simulator: tuple[uvicorn.Server, socket.socket] | None = None,
) -> None:
    """Run the API server and/or a worker (and, in the demo, the CTM simulator) until a
    signal arrives or one of them fails."""
    from hub.app import create_app
    from workers.settings import create_worker

    stop = asyncio.Event()
    _install_stop(stop)
    tasks: dict[str, asyncio.Task[Any]] = {}
    server: _Server | None = None
    arq_worker = None
    if api:
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, log_config=None, access_log=False,
            lifespan="on", timeout_graceful_shutdown=10,
        )  # fmt: skip
        server = _Server(config)
        tasks["api"] = asyncio.create_task(server.serve(), name="api")
    if worker:
        arq_worker = create_worker(settings, handle_signals=False)
        tasks["worker"] = asyncio.create_task(arq_worker.async_run(), name="worker")
    if ctm_simulator is not None:
        simulator, listening = ctm_simulator
        tasks["ctm-sim"] = asyncio.create_task(simulator.serve([listening]), name="ctm-sim")
    announcer = asyncio.create_task(_when_started(server, on_ready)) if on_ready else None
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([stopper, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
    stopped: list[str] = []
    for task in done - {stopper}:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("a service stopped", service=task.get_name(), exc_info=error)
            stopped.append(f"the {task.get_name()} stopped: {_one_line(error)}")
        else:
            log.error("a service stopped", service=task.get_name())
            stopped.append(f"the {task.get_name()} stopped")
    log.info("shutting down")
    if announcer is not None:
        announcer.cancel()
    if server is not None:
        server.should_exit = True
    if ctm_simulator is not None:
        ctm_simulator[0].should_exit = True
    if arq_worker is not None:
        await finish_jobs(arq_worker, stop, grace=settings.worker_shutdown_grace_seconds)
        # arq cancels the jobs still running (they are idempotent and run again later);
        # the cancellation it re-raises is the shutdown we asked for, not a failure.
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await arq_worker.close()  # it removes its health key: Redis may be gone
            except (redis.RedisError, OSError) as error:
                log.warning("closing the worker: Redis unreachable", error=_one_line(error))
    stopper.cancel()
    if "worker" in tasks:
        tasks["worker"].cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)
    if stopped:
        # Not asked to stop: the process ends non-zero, so a supervisor starts it again.
        raise ServiceStopped("; ".join(stopped))


def _one_line(error: BaseException) -> str:
    text = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def finish_jobs(worker: Any, stop: asyncio.Event, *, grace: float) -> None:
    """Stop taking jobs and give those running up to `grace` seconds to finish (a sync
    part-way through a large download would otherwise start over on another worker). A
    second signal (`stop` set again) cuts the wait short; what is still running then is
    cancelled by the caller, to run again elsewhere."""
    worker.allow_pick_jobs = False
    running = [task for task in worker.tasks.values() if not task.done()]
    if not running or grace <= 0:
        return
    log.info("waiting for running jobs to finish", jobs=len(running), seconds=grace)
    stop.clear()
    again = asyncio.create_task(stop.wait(), name="second-signal")
    finished = asyncio.ensure_future(asyncio.wait(running))
    try:
        await asyncio.wait([finished, again], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
    finally:
        again.cancel()
        finished.cancel()
    left = sum(not task.done() for task in running)
    if left:
        log.warning("cancelling jobs still running", jobs=left)


async def _when_started(server: _Server | None, on_ready: Callable[[], Awaitable[None]]) -> None:
    while server is not None and not server.started:  # noqa: ASYNC110 - uvicorn offers a flag only
        await asyncio.sleep(0.05)
    await on_ready()


__all__ = ["SettingsError", "StartupError", "check_database", "serve_together"]
