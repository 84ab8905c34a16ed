"""Migrations run up, down to nothing, and up again on both databases; models match them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core.db import create_engine, migrate
from hub.models import metadata

PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")


@pytest.fixture
def scratch_postgres() -> Iterator[str]:
    """A database of its own on the test server, dropped afterwards."""
    if not PG_URL:
        pytest.skip("PostgreSQL round trip needs HUB_TEST_DATABASE_URL")
    base = make_url(PG_URL)
    name = f"{base.database}_migrations"
    admin_url = base.set(drivername="postgresql+asyncpg", database="postgres")

    import asyncio

    async def admin(statement: str) -> None:
        engine = create_engine(admin_url.render_as_string(hide_password=False))
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text(statement))
        await engine.dispose()

    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _tables(url: str) -> set[str]:
    import asyncio

    async def read() -> set[str]:
        engine = create_engine(url)
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
        await engine.dispose()
        return set(names) - {"alembic_version"}

    return asyncio.run(read())


def round_trip(url: str) -> None:
    expected = set(metadata.tables)
    migrate.upgrade(url)
    assert _tables(url) == expected
    migrate.downgrade(url, "base")
    assert _tables(url) == set()
    migrate.upgrade(url)
    assert _tables(url) == expected


class TestRoundTrip:
    def test_sqlite_upgrade_downgrade_upgrade(self, tmp_path: Path) -> None:
        round_trip(f"sqlite+aiosqlite:///{tmp_path / 'rt.db'}")

    def test_postgresql_upgrade_downgrade_upgrade(self, scratch_postgres: str) -> None:
        round_trip(scratch_postgres)

    def test_each_step_down_and_up_again(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'steps.db'}"
        migrate.upgrade(url)
        for _ in migrate.revisions():
            migrate.downgrade(url, "-1")
        assert _tables(url) == set()
        migrate.upgrade(url)
        assert _tables(url) == set(metadata.tables)


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


class TestModelsMatchMigrations:
    async def test_autogenerate_finds_no_difference(self, engine: AsyncEngine) -> None:
        # `engine` is the suite's database, built by running the migrations.
        async with engine.connect() as connection:
            differences = await connection.run_sync(_diff)
        assert differences == [], f"models and migrations disagree: {differences}"
