"""Benchmarks of the trust core (not a test; prints figures).

    .venv/bin/python -m tests.perf.bench_crypto [--fields 1000000] [--tenants 10000]
        [--database-url postgresql://…]   (default: a fresh SQLite file in a temp dir)

1. seal+open of N ~40-byte fields through the public API with a warm data-key cache, and
   raw AESGCM encrypt+decrypt of the same fields in the same run: ops/s and the ratio.
2. master-key rotation (`hub.tenants.keys.rotate_master_key`) of T tenants' keys: seconds;
   it works in keyset batches, never holding all rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert, text

from hub.audit.service import Actor
from hub.core import crypto
from hub.core.crypto import Crypto, LocalKeyRingProvider, MasterKeyRing
from hub.core.crypto.models import KeyPurpose, KeyState, TenantKey
from hub.core.crypto.service import _wrap_context
from hub.core.db import Database, migrate
from hub.core.ids import uuid7
from hub.settings import load_settings
from hub.tenants import keys
from hub.tenants.models import Tenant, TenantStatus

CHUNK = 50_000
FIELD = "complaints.beneficiary_name"
OLD, NEW = ("bench1", secrets.token_bytes(32)), ("bench2", secrets.token_bytes(32))


def ring(*entries: tuple[str, bytes]) -> Crypto:
    return Crypto(LocalKeyRingProvider(MasterKeyRing(list(entries))))


def fields(count: int) -> list[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz"
    return [f"{i:08d} " + "".join(secrets.choice(alphabet) for _ in range(31)) for i in
            range(count)]  # fmt: skip


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


async def timed_async(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def bench_sealing(database: Database, total: int) -> None:
    async with database.transaction() as session:
        tenant = Tenant(name="Bench", slug=f"bench-{uuid7().hex[:8]}")
        session.add(tenant)
        await session.flush()
        await crypto.ensure_tenant_key(session, tenant.id)
    raw_key = AESGCM(secrets.token_bytes(32))
    times = {"raw": 0.0, "raw_fixed_nonce": 0.0, "cipher": 0.0, "session": 0.0}
    done = 0
    async with database.transaction() as session:
        cipher = await crypto.cipher_for(session, tenant.id)  # warms the cache
        while done < total:
            size = min(CHUNK, total - done)
            values = fields(size)
            rows = [uuid7() for _ in range(size)]
            encoded = [v.encode() for v in values]
            aads = [b"\x01" + tenant.id.bytes + r.bytes + FIELD.encode() for r in rows]

            def raw() -> None:
                for data, aad in zip(encoded, aads, strict=True):
                    nonce = os.urandom(12)
                    raw_key.decrypt(nonce, raw_key.encrypt(nonce, data, aad), aad)

            def raw_fixed() -> None:
                nonce = b"\x00" * 12
                for data, aad in zip(encoded, aads, strict=True):
                    raw_key.decrypt(nonce, raw_key.encrypt(nonce, data, aad), aad)

            def hot() -> None:
                for value, row in zip(values, rows, strict=True):
                    sealed = cipher.seal(value, field=FIELD, row=row)
                    cipher.open(sealed, field=FIELD, row=row)

            async def through_session() -> None:
                tid = tenant.id
                for value, row in zip(values, rows, strict=True):
                    sealed = await crypto.seal(session, value, tenant=tid, field=FIELD, row=row)
                    await crypto.open(session, sealed, tenant=tid, field=FIELD, row=row)

            times["raw"] += timed(raw)
            times["raw_fixed_nonce"] += timed(raw_fixed)
            times["cipher"] += timed(hot)
            times["session"] += await timed_async(through_session)
            done += size
    rate = {name: total / seconds for name, seconds in times.items()}
    print(f"seal+open of {total:,} ~40-byte fields (warm data-key cache), ops/s = pairs/s:")
    print(f"  raw AESGCM encrypt+decrypt, os.urandom nonce : {rate['raw']:>12,.0f}")
    print(f"  raw AESGCM encrypt+decrypt, constant nonce   : {rate['raw_fixed_nonce']:>12,.0f}")
    print(f"  TenantCipher.seal + .open (cipher_for)       : {rate['cipher']:>12,.0f}"
          f"   ratio {rate['cipher'] / rate['raw']:.2f} (vs constant-nonce raw "
          f"{rate['cipher'] / rate['raw_fixed_nonce']:.2f})")  # fmt: skip
    print(f"  await crypto.seal + crypto.open (session)    : {rate['session']:>12,.0f}"
          f"   ratio {rate['session'] / rate['raw']:.2f} (vs constant-nonce raw "
          f"{rate['session'] / rate['raw_fixed_nonce']:.2f})")  # fmt: skip


async def seed_tenants(database: Database, count: int) -> None:
    """`count` tenants, each with a data key and an index key wrapped under OLD."""
    old = ring(OLD)
    batch = 1000
    for start in range(0, count, batch):
        tenant_rows: list[dict[str, Any]] = []
        key_rows: list[dict[str, Any]] = []
        for index in range(start, min(start + batch, count)):
            tenant_id: UUID = uuid7()
            tenant_rows.append({"id": tenant_id, "name": f"T{index}", "slug": f"rot-{index}",
                                "status": TenantStatus.ACTIVE})  # fmt: skip
            for purpose in (KeyPurpose.DATA, KeyPurpose.INDEX):
                wrapped = await old.provider.wrap(
                    secrets.token_bytes(32), context=_wrap_context(tenant_id, purpose, 1)
                )
                key_rows.append({"id": uuid7(), "tenant_id": tenant_id, "purpose": purpose,
                                 "version": 1, "state": KeyState.ACTIVE,
                                 "wrapped_key": wrapped.blob,
                                 "master_key_version": wrapped.master_version})  # fmt: skip
        async with database.transaction() as session:
            await session.execute(insert(Tenant), tenant_rows)
            await session.execute(insert(TenantKey), key_rows)


async def bench_rotation(database: Database, tenants: int, batch_size: int) -> None:
    started = time.perf_counter()
    await seed_tenants(database, tenants)
    print(f"seeded {tenants:,} tenants ({2 * tenants:,} keys) in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    rotating = Database(database.engine, crypto=ring(NEW, OLD))
    started = time.perf_counter()
    report = await keys.rotate_master_key(rotating, actor=Actor.system("bench"),
                                          batch_size=batch_size)  # fmt: skip
    seconds = time.perf_counter() - started
    print(f"master-key rotation: {report.rewrapped:,} keys of {tenants:,} tenants re-wrapped "
          f"in {seconds:.2f} s ({report.rewrapped / seconds:,.0f} keys/s, "
          f"{report.batches} batches of {batch_size})")  # fmt: skip
    async with database.transaction() as session:
        left = await session.scalar(
            text("SELECT count(*) FROM tenant_keys WHERE master_key_version <> :v"),
            {"v": NEW[0]},
        )
    print(f"  keys left under the old master key: {left}")


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    if args.database_url:
        url = load_settings(database_url=args.database_url).effective_database_url
    else:
        url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await migrate.upgrade_async(url)
    print(f"database: {url.split('@')[-1] if '@' in url else url}")
    database = Database.from_url(url, crypto=ring(OLD))
    try:
        if args.fields:
            await bench_sealing(database, args.fields)
        if args.tenants:
            await bench_rotation(database, args.tenants, args.batch_size)
    finally:
        await database.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {peak:,.0f} MiB")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--fields", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--database-url", default=os.environ.get("HUB_BENCH_DATABASE_URL"))
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
