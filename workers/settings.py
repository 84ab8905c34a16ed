"""arq worker settings: the job functions, the crons, and start-up/shut-down of resources."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, timedelta
from typing import Any, cast

import httpx
import redis
import structlog
from arq import cron
from arq.cron import CronJob
from arq.typing import StartupShutdown, WorkerCoroutine
from arq.worker import Function, Worker, func

from hub.core import heap, jobs
from hub.core.crypto import Crypto
from hub.core.db import Database
from hub.core.redis import arq_settings
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.events.service import EventBus, Subscription
from hub.portal import recovery
from hub.settings import Settings
from hub.syncs import slots
from hub.syncs.service import SyncPolicy
from hub.webhooks import delivery as webhook_delivery
from workers import alerts as alert_jobs
from workers import events, health, keys, portal, resolutions, syncs, webhooks
from workers.context import WorkerContext

log = structlog.get_logger(__name__)

EVERY_30_SECONDS = {0, 30}
# The daily access probe (hub.syncs.probe), in the US night: CMS is quiet, plans asleep.
ACCESS_PROBE_HOUR_UTC = 7
# How long a cron tick's result is kept. arq's `unique` enqueues a tick under one job id on
# every replica, which is a no-op only while that job or its result is there: a replica
# reaching the tick later than this after another ran it (its loop held up) runs it again.
CRON_RESULT_KEPT = timedelta(hours=1)


def event_subscriptions() -> list[Subscription]:
    """The handlers each event type goes to. Domains add theirs here."""
    return [
        Subscription(
            "*",
            webhook_delivery.fan_out,
            "webhooks.fan_out",
            batch_handler=webhook_delivery.fan_out_many,
        )
    ]


def job(coroutine: Callable[..., Awaitable[Any]], name: str, **options: Any) -> Function:
    """Register a typed job function (taking a `WorkerContext`) under its dotted name."""
    return func(cast("WorkerCoroutine", coroutine), name=name, **options)


def functions() -> list[Function]:
    return [
        # No kept result: the sweeper must be able to enqueue the same job id again.
        job(events.dispatch_events, "events.dispatch_many", keep_result=0, max_tries=3),
        # No kept result: a "sync now" or a recheck right after a sync must be able to enqueue
        # the pair's job id again. A busy key's retries are counted apart from the real tries
        # (`syncs.MAX_TRIES`); the timeout is pinned so a slot's lease always outlasts a try.
        job(
            syncs.sync_contract,
            "syncs.sync_contract",
            keep_result=0,
            max_tries=syncs.MAX_JOB_TRIES,
            timeout=slots.JOB_TIMEOUT,
        ),
        # No kept result: a later doubt must be able to ask for a recheck again.
        job(syncs.recheck_contract, "syncs.recheck", keep_result=0, max_tries=3),
        # No kept result: a resolution written after a run must be able to enqueue again.
        job(
            resolutions.upload_resolutions,
            "resolutions.upload",
            keep_result=0,
            max_tries=resolutions.MAX_TRIES,
        ),
        job(
            events.dispatch_event,
            "events.dispatch",
            keep_result=0,
            max_tries=events.MAX_TRIES + 1,
        ),
        # No kept result: each wake-up has a job id of its own, but a deferred one (a retry
        # falling due) must be able to come again for the same second.
        job(
            webhooks.drain_endpoint,
            webhook_delivery.DRAIN,
            keep_result=0,
            max_tries=webhooks.MAX_JOB_TRIES,
        ),
        # One-message jobs still queued from before drains: each drains its endpoint.
        job(
            webhooks.deliver_message,
            webhook_delivery.DELIVER,
            keep_result=0,
            max_tries=webhooks.MAX_JOB_TRIES,
        ),
        job(
            alert_jobs.send_email,
            "alerts.send_email",
            keep_result=0,
            max_tries=alert_jobs.MAX_JOB_TRIES,
        ),
        job(
            alert_jobs.send_digest,
            "alerts.send_digest",
            keep_result=0,
            max_tries=alert_jobs.MAX_JOB_TRIES,
        ),
        # No kept result: asking again after the email went must be able to enqueue again.
        job(
            portal.send_password_reset,
            recovery.JOB,
            keep_result=0,
            max_tries=portal.MAX_JOB_TRIES,
        ),
    ]


def crons(*, run_at_startup: bool) -> list[CronJob]:
    def tick(coroutine: Callable[..., Awaitable[Any]], name: str, **when: Any) -> CronJob:
        # `unique`: with several worker replicas, each tick runs once.
        when.setdefault("run_at_startup", run_at_startup)
        return cron(
            cast("Any", coroutine),
            name=name,
            unique=True,
            keep_result=CRON_RESULT_KEPT.total_seconds(),
            **when,
        )

    every_5_minutes, every_10_minutes = set(range(0, 60, 5)), set(range(0, 60, 10))
    return [
        tick(events.sweep_outbox, "events.sweep", second=EVERY_30_SECONDS),
        tick(webhooks.sweep_messages, "webhooks.sweep", second=EVERY_30_SECONDS),
        tick(syncs.schedule_syncs, "syncs.schedule", second=5),
        tick(resolutions.schedule_uploads, "resolutions.schedule", second=35),
        tick(keys.retire_key_versions, "keys.retire_versions", minute=every_10_minutes, second=15),
        tick(
            keys.probe_lost_access, "keys.probe_access",
            hour=ACCESS_PROBE_HOUR_UTC, minute=20, second=25, run_at_startup=False,
        ),
        tick(alert_jobs.evaluate_alerts, "alerts.evaluate", minute=every_5_minutes, second=45),
        tick(
            alert_jobs.schedule_digests, "alerts.digest",
            hour=alert_jobs.DIGEST_HOUR_UTC, minute=0, second=50, run_at_startup=False,
        ),
    ]  # fmt: skip


def _on_startup(
    settings: Settings,
    subscriptions: Sequence[Subscription],
    database: Database | None,
    ctm_clients: Mapping[CtmEnvironment, CtmClient] | None = None,
    sync_policy: SyncPolicy | None = None,
    webhook_in_flight: int = webhooks.DEFAULT_IN_FLIGHT,
    webhook_lingering: int = 0,
    settle_heap: bool = False,
    max_jobs: int = 1,
) -> StartupShutdown:
    async def startup(ctx: dict[str, Any]) -> None:
        # A connection kept for every job slot: a burst of concurrent jobs beyond a smaller
        # pool would open (and on PostgreSQL fork a backend for) a connection per job.
        db = database or Database.from_url(settings.effective_database_url, pool_size=max_jobs)
        db.queue = db.queue or jobs.ArqQueue(ctx["redis"])
        if db.crypto is None:
            db.crypto = Crypto.from_settings(settings)
        ctx["settings"] = settings
        ctx["db"] = db
        ctx["http"] = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        ctx["bus"] = EventBus(subscriptions)
        webhooks.start(ctx, settings, in_flight=webhook_in_flight, lingering=webhook_lingering)
        alert_jobs.start(ctx, settings)
        ctx["ctm"] = ctm_clients or {
            environment: CtmClient.for_environment(settings, environment)
            for environment in CtmEnvironment
        }
        ctx["owns_ctm"] = ctm_clients is None
        ctx["sync_policy"] = sync_policy or SyncPolicy.from_settings(settings)
        ctx["owns_db"] = database is None
        if settle_heap:
            heap.settle()

    return startup


async def _on_shutdown(ctx: dict[str, Any]) -> None:
    if "http" in ctx:
        await ctx["http"].aclose()
    await webhooks.stop(ctx)
    if ctx.get("owns_ctm"):
        for client in ctx["ctm"].values():
            await client.aclose()
    if ctx.get("owns_db"):
        await ctx["db"].dispose()


def _on_sqlite(settings: Settings, database: Database | None) -> bool:
    if database is not None:
        return database.engine.dialect.name == "sqlite"
    return settings.effective_database_url.startswith("sqlite")


def create_worker(
    settings: Settings,
    *,
    subscriptions: Sequence[Subscription] | None = None,
    database: Database | None = None,
    redis_pool: Any = None,
    ctm_clients: Mapping[CtmEnvironment, CtmClient] | None = None,
    sync_policy: SyncPolicy | None = None,
    burst: bool = False,
    webhook_in_flight: int = webhooks.DEFAULT_IN_FLIGHT,
    **overrides: Any,
) -> Worker:
    """An arq Worker for the hub's jobs and crons (tests pass `burst=True`).

    `webhook_in_flight` bounds the webhook requests in flight at once in this worker, over
    every endpoint it drains (each endpoint's own `max_concurrency` holds as well)."""
    if subscriptions is None:
        subscriptions = event_subscriptions()
    options: dict[str, Any] = {
        "functions": functions(),
        "cron_jobs": crons(run_at_startup=not burst),
        "on_startup": None,  # below: it needs the final max_jobs
        "on_shutdown": _on_shutdown,
        "redis_settings": arq_settings(settings.effective_redis_url),
        "redis_pool": redis_pool,
        "burst": burst,
        "handle_signals": not burst,
        # The crons' hours are UTC (`DIGEST_HOUR_UTC`); arq reads them in the host's time zone
        # unless told.
        "timezone": UTC,
        # SQLite has one writer: the embedded default runs one job at a time rather than
        # have jobs queue on its write lock (and time out behind a long sync).
        "max_jobs": 1 if _on_sqlite(settings, database) else 20,
        "job_timeout": jobs.JOB_TIMEOUT_SECONDS,
        "poll_delay": 0.1,
        "keep_result": 60,
        # A heartbeat of this host's own, every minute: `python -m workers.health` (the
        # chart's worker liveness probe) reads it.
        **health.worker_options(),
    }
    options.update(overrides)
    if options["on_startup"] is None:
        # Up to half the job slots may hold a drain lingering for more messages (none with
        # one slot: it would hold up the very job that makes them).
        lingering = options["max_jobs"] // 2 if options["max_jobs"] > 1 else 0
        options["on_startup"] = _on_startup(
            settings,
            subscriptions,
            database,
            ctm_clients,
            sync_policy,
            webhook_in_flight,
            lingering,
            settle_heap=not burst,  # a serving worker; not a test's burst in a shared process
            max_jobs=options["max_jobs"],
        )
    return HubWorker(**options)


class HubWorker(Worker):
    """arq's Worker, surviving a lost Redis connection while it claims a job.

    Commands are retried on a new connection (`hub.core.redis.arq_settings`), except inside
    a WATCH: arq claims each job under one, and redis-py then raises `WatchError` rather
    than retry. arq lets that escape its poll loop (and stop the worker) with the job's
    slot still counted as taken. Here the slot is given back and the claim left to the
    next poll (the job is still queued: its claim never happened)."""

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        for job_id in job_ids:
            name = job_id.decode()
            before = self.tasks.get(name)
            try:
                await super().start_jobs([job_id])
            except (redis.WatchError, redis.ConnectionError, redis.TimeoutError) as error:
                if self.tasks.get(name) is before:  # counted and its semaphore taken: undo
                    self.job_counter -= 1
                    self.sem.release()
                log.warning("claiming a job: Redis connection lost", job=name, error=str(error))
                return


__all__ = ["WorkerContext", "create_worker", "event_subscriptions", "functions"]
