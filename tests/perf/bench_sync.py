"""Benchmark of the sync pipeline into PostgreSQL (printed, not asserted).

    .venv/bin/python -m tests.perf.bench_sync [--contracts 20] [--rows 5000]
        [--rss-rows 1000000] [--rss-bad-rows 200000]

Needs PostgreSQL: HUB_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1/postgres;
a scratch database `ctmhub_bench` is created and dropped on that server).

1. First sync of `--contracts` x `--rows` complaints, served from memory through the real
   CTM client (token exchange, streamed download), parsed, PHI sealed, upserted with their
   events: complaints/s, and the ratio to a floor measured in the same run — plain
   `csv.reader` over the same bytes plus asyncpg `COPY` of the same rows into a bare table.
   Target >= 0.33.
2. Re-sync of the same unchanged data: seconds, the speed-up over the first sync (target
   >= 5x), and the rows the database wrote to `complaints` (target 0, read from
   pg_stat_user_tables).
3. Peak RSS of a worker process syncing one contract whose download has `--rss-rows` rows
   (target < 300 MB), measured in a child process; and of one whose `--rss-bad-rows` rows
   are all quarantined (each stored, sealed, as it is found).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from hub.core import heap
from hub.core.crypto import Crypto, LocalKeyRingProvider, MasterKeyRing
from hub.core.db import Database, create_engine, migrate
from hub.ctm import modeled
from hub.ctm.client import CtmClient, CtmEnvironment, RetryPolicy
from hub.ctm.csvstream import RecordWriter
from hub.ctm.layouts import Layout

BENCH_DB = "ctmhub_bench"


def _templates(count: int = 300) -> list[list[str]]:
    from hub.ctm.simulator.data import ContractPlan, complaints_received, make_complaint, row

    today = date.today()
    plan = ContractPlan(daily_min=5, daily_max=5)
    found: list[list[str]] = []
    day = today - timedelta(days=20)
    while len(found) < count:
        for number, rng in complaints_received(3, "H0001", day, plan):
            found.append(
                row(make_complaint("H0001", number, day, rng, today, plan), Layout.CURRENT)
            )
        day += timedelta(days=1)
    return found[:count]


def csv_file(
    contract: str, rows: int, templates: list[list[str]], row_contract: str | None = None
) -> Iterator[bytes]:
    """A current-layout download of `rows` complaints for `contract`, in 64 KiB chunks
    (each row naming `row_contract` instead, when given)."""
    from hub.ctm.simulator.data import header

    writer = RecordWriter()
    chunk = [writer.encode(header(Layout.CURRENT))]
    size = len(chunk[0])
    today = date.today().strftime("%m/%d/%Y")
    for n in range(rows):
        cells = list(templates[n % len(templates)])
        cells[0] = f"{contract[1:]}{n:09d}"
        cells[1] = row_contract or contract
        cells[4] = today  # RECEIVED_DATE: inside the first sync's window
        line = writer.encode(cells)
        chunk.append(line)
        size += len(line)
        if size >= 64 * 1024:
            yield b"".join(chunk)
            chunk, size = [], 0
    yield b"".join(chunk)


def fake_cms(
    files: dict[str, bytes | int | tuple[int, str]], templates: list[list[str]]
) -> httpx.MockTransport:
    """CMS from memory: a token for any key, and each contract's file (bytes, or a row
    count to stream without holding the file, optionally with the contract its rows name)."""

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == modeled.TOKEN_PATH:
            return httpx.Response(200, json={"accessToken": "bench-token", "expires": 1800})
        contract = request.url.params[modeled.DOWNLOAD_CONTRACT_PARAM]
        body = files[contract]

        async def stream() -> Any:
            if isinstance(body, int | tuple):
                count, named = (body, None) if isinstance(body, int) else body
                for piece in csv_file(contract, count, templates, named):
                    yield piece
            else:
                for start in range(0, len(body), 64 * 1024):
                    yield body[start : start + 64 * 1024]

        return httpx.Response(200, headers={"Content-Type": "text/csv"}, content=stream())

    return httpx.MockTransport(handler)


async def _scratch(admin_url: str) -> str:
    connection = await asyncpg.connect(admin_url)
    await connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    await connection.execute(f"CREATE DATABASE {BENCH_DB}")
    await connection.close()
    return str(make_url(admin_url).set(database=BENCH_DB))


async def _drop(admin_url: str) -> None:
    connection = await asyncpg.connect(admin_url)
    await connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    await connection.close()


async def floor(url: str, files: dict[str, bytes]) -> float:
    """csv.reader + COPY of the same rows into a bare table: rows/s."""
    connection = await asyncpg.connect(url)
    await connection.execute("DROP TABLE IF EXISTS floor_rows")
    width = len(next(csv.reader(io.StringIO(next(iter(files.values())).decode("utf-8-sig")))))
    columns = ", ".join(f"c{i} text" for i in range(width))
    await connection.execute(f"CREATE TABLE floor_rows ({columns})")
    started, count = time.perf_counter(), 0
    for body in files.values():
        reader = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
        next(reader)
        rows = [tuple(r) for r in reader]
        count += len(rows)
        await connection.copy_records_to_table("floor_rows", records=rows)
    elapsed = time.perf_counter() - started
    await connection.close()
    return count / elapsed


async def onboard(db: Database, contracts: list[str], slug: str = "bench") -> tuple[Any, Any]:
    from hub.keys import service as keys
    from hub.keys.schemas import KeyCreate, TechnicalPoc
    from tests.support import make_member, make_tenant

    async with db.transaction() as session:
        member = await make_member(
            session, await make_tenant(session, slug), email=f"rp@{slug}.example"
        )
        for number in contracts:
            await keys.add_contract(session, member.principal, number=number)
        key = await keys.create_key(
            session, member.principal,
            data=KeyCreate(
                environment="sandbox", key_id=f"{slug.upper()}-KEY", secret="bench-secret",
                hpms_user_id="BENCH01", technical_poc=TechnicalPoc("Pat", "pat@bench.example"),
                contracts=contracts, verify=False,
            ),
            verifier=None,
        )  # fmt: skip
    return member, key


def _database(url: str) -> Database:
    ring = MasterKeyRing.parse("v1:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=")
    return Database(create_engine(url), crypto=Crypto(LocalKeyRingProvider(ring)))


async def _writes(db: Database) -> int:
    """Rows inserted, updated or deleted in `complaints` so far. Backends report their
    counts lazily: close the pool's connections (a backend reports as it exits) and give
    the statistics a moment, so the figure includes every write made until now."""
    await db.engine.dispose()
    await asyncio.sleep(1.0)
    async with db.engine.connect() as connection:
        await connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = (
            await connection.execute(
                text(
                    "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                    "WHERE relname = 'complaints'"
                )
            )
        ).one()
    return int(row[0])


async def sync_all(
    db: Database, client: CtmClient, member: Any, key: Any, contracts: list[str]
) -> tuple[float, int]:
    from hub.syncs import service as syncs

    started, cpu, total = time.perf_counter(), time.process_time(), 0
    database_cpu = backends_cpu()
    for contract in contracts:
        result = await syncs.run_sync(
            db,
            {CtmEnvironment.SANDBOX: client},
            tenant_id=member.tenant_id,
            key_id=key.id,
            contract=contract,
        )
        if result.outcome.value != "succeeded":
            raise SystemExit(f"sync of {contract} failed: {result.error}")
        total += result.new + result.changed + result.unchanged
    elapsed = time.perf_counter() - started
    hub_cpu, database_cpu = time.process_time() - cpu, backends_cpu() - database_cpu
    print(
        f"  (hub process CPU {hub_cpu:.1f} s, PostgreSQL backends {database_cpu:.1f} s, "
        f"of {elapsed:.1f} s: {hub_cpu / total * 1e6:.1f} + {database_cpu / total * 1e6:.1f} "
        f"us per complaint)"
    )
    return elapsed, total


def backends_cpu() -> float:
    """User + system CPU used so far by the live PostgreSQL backends serving the scratch
    database (Linux; other databases' backends on the same server are left out)."""
    total = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if BENCH_DB.encode() not in (proc / "cmdline").read_bytes():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def main_async(args: argparse.Namespace) -> None:
    admin_url = os.environ.get("HUB_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/postgres")
    url = await _scratch(admin_url)
    sa_url = str(make_url(url).set(drivername="postgresql+asyncpg"))
    try:
        await asyncio.to_thread(migrate.upgrade, sa_url)
        templates = _templates()
        contracts = [f"H{2000 + n:04d}" for n in range(args.contracts)]
        files = {c: b"".join(csv_file(c, args.rows, templates)) for c in contracts}
        total_rows = args.contracts * args.rows
        print(f"data: {args.contracts} contracts x {args.rows} rows = {total_rows} complaints, "
              f"{sum(len(f) for f in files.values()) / 1e6:.1f} MB of CSV")  # fmt: skip
        floor_rate = await floor(url, dict(files))
        print(f"floor (csv.reader + asyncpg COPY into a bare table): {floor_rate:,.0f} rows/s")

        db = _database(sa_url)
        member, key = await onboard(db, contracts)
        heap.settle()  # as a worker does once started (workers/settings.py)
        client = CtmClient(
            CtmEnvironment.SANDBOX, base_url="http://cms.bench",
            transport=fake_cms(dict(files), templates),
            retry=RetryPolicy(attempts=1),
        )  # fmt: skip
        elapsed, synced = await sync_all(db, client, member, key, contracts)
        rate = synced / elapsed
        print(f"first sync: {synced} complaints in {elapsed:.1f} s = {rate:,.0f} complaints/s; "
              f"ratio to floor {rate / floor_rate:.2f} (target >= 0.33)")  # fmt: skip

        async with db.transaction() as session:
            await session.execute(text("UPDATE sync_cursors SET synced_through = NULL"))
        writes_before = await _writes(db)
        async with db.transaction() as session:  # a worker's pool is warm: so is this one
            await session.execute(text("SELECT 1"))
        again, resynced = await sync_all(db, client, member, key, contracts)
        written = await _writes(db) - writes_before
        print(f"re-sync of unchanged data: {resynced} complaints in {again:.1f} s; "
              f"{elapsed / again:.1f}x faster than the first sync (target >= 5x); "
              f"rows written to complaints: {written} (target 0)")  # fmt: skip
        await client.aclose()
        await db.dispose()
        if args.rss_rows:
            peak = rss_child(sa_url, args.rss_rows)
            print(
                f"worker peak RSS syncing a {args.rss_rows:,}-row download: "
                f"{peak:.0f} MB (target < 300 MB)"
            )
        if args.rss_bad_rows:
            peak = rss_child(sa_url, args.rss_bad_rows, bad=True)
            print(
                f"worker peak RSS syncing a {args.rss_bad_rows:,}-row download whose every "
                f"row is quarantined: {peak:.0f} MB"
            )
    finally:
        await _drop(admin_url)


def rss_child(url: str, rows: int, *, bad: bool = False) -> float:
    done = subprocess.run(
        [sys.executable, "-m", "tests.perf.bench_sync",
         "--child-rss", str(rows), "--child-url", url, *(["--child-bad"] if bad else [])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the RSS child failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


async def child_rss(url: str, rows: int, bad: bool) -> None:
    """One sync of a `rows`-row download of contract H9000; with `bad`, every row names a
    contract the key does not cover, so every row is quarantined (stored as it goes)."""
    db = _database(url)
    async with db.transaction() as session:
        await session.execute(text("DELETE FROM complaints"))
        await session.execute(text("DELETE FROM events"))
    member, key = await onboard(db, ["H9000"], slug=f"rss{os.getpid()}")
    client = CtmClient(
        CtmEnvironment.SANDBOX, base_url="http://cms.bench",
        transport=fake_cms({"H9000": (rows, "H9999") if bad else rows}, _templates()),
        retry=RetryPolicy(attempts=1),
    )  # fmt: skip
    from hub.syncs import service as syncs

    heap.settle()
    result = await syncs.run_sync(
        db, {CtmEnvironment.SANDBOX: client}, tenant_id=member.tenant_id, key_id=key.id,
        contract="H9000",
    )  # fmt: skip
    if result.outcome.value != "succeeded":
        raise SystemExit(f"sync failed: {result.error}")
    if (result.quarantined if bad else result.new) != rows:
        raise SystemExit(f"sync saw {result.new} new and {result.quarantined} quarantined rows")
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that across
    exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contracts", type=int, default=20)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rss-rows", type=int, default=1_000_000)
    parser.add_argument("--rss-bad-rows", type=int, default=200_000)
    parser.add_argument("--child-rss", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child-bad", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss:
        asyncio.run(child_rss(args.child_url, args.child_rss, args.child_bad))
    else:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
