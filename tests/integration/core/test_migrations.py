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


def _insert(connection: Any, table: str, **given: Any) -> None:
    """A row of `table` as the schema stands: `given`, and a plain value of its type for
    every other column that must have one (SQLite, checks and foreign keys off)."""
    from sqlalchemy import Boolean, Date, DateTime, Integer, LargeBinary, String

    filled = dict(given)
    for column in inspect(connection).get_columns(table):
        name, kind = column["name"], column["type"]
        if name in filled or column["nullable"]:
            continue
        if isinstance(kind, Boolean):
            filled[name] = False
        elif isinstance(kind, Integer):
            filled[name] = 0
        elif isinstance(kind, DateTime):
            filled[name] = "2026-01-01 00:00:00.000000"
        elif isinstance(kind, Date):
            filled[name] = "2026-01-01"
        elif isinstance(kind, LargeBinary):
            filled[name] = b"\x00"
        elif isinstance(kind, String):
            filled[name] = "{}" if "JSON" in str(kind).upper() else "x"
        else:
            filled[name] = "{}"
    columns = ", ".join(filled)
    values = ", ".join(f":{name}" for name in filled)
    statement = f"INSERT INTO {table} ({columns}) VALUES ({values})"  # noqa: S608 - a test's names
    connection.execute(text(statement), filled)


class TestComplaintEnvironment:
    def test_each_complaint_takes_its_keys_environment(self, tmp_path: Path) -> None:
        """0010: complaints of a sandbox key are sandbox's, of a production key production's;
        one whose key is gone is production's. Down again, a sandbox twin of a production
        complaint goes."""
        import sqlite3

        path = tmp_path / "env.db"
        url = f"sqlite+aiosqlite:///{path}"
        migrate.upgrade(url, "0009")
        from sqlalchemy import create_engine as create_sync_engine

        engine = create_sync_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            connection.execute(text("PRAGMA foreign_keys = OFF"))
            connection.execute(text("PRAGMA ignore_check_constraints = ON"))
            _insert(connection, "tenants", id="t1")
            _insert(connection, "api_keys", id="sand", tenant_id="t1", environment="sandbox")
            _insert(connection, "api_keys", id="prod", tenant_id="t1", environment="production")
            for ident, key, complaint in (
                ("c1", "sand", "A"), ("c2", "prod", "B"), ("c3", None, "C"),
            ):  # fmt: skip
                _insert(
                    connection, "complaints", id=ident, tenant_id="t1", api_key_id=key,
                    contract="H1234", complaint_id=complaint, due_basis="assignment",
                    resolution_state="none",
                )  # fmt: skip
        engine.dispose()
        migrate.upgrade(url)
        with sqlite3.connect(path) as connection:
            found = connection.execute(
                "SELECT id, environment FROM complaints ORDER BY id"
            ).fetchall()
            assert found == [("c1", "sandbox"), ("c2", "production"), ("c3", "production")]
            # The same complaint in both environments: two rows now.
            connection.execute(
                "INSERT INTO complaints SELECT * FROM complaints WHERE id = 'c2'".replace(
                    "SELECT *", "SELECT " + ", ".join(
                        "'c4'" if c == "id" else "'sandbox'" if c == "environment" else c
                        for (_, c, *_) in connection.execute("PRAGMA table_info(complaints)")
                    )
                )
            )  # fmt: skip
        migrate.downgrade(url, "0009")
        with sqlite3.connect(path) as connection:
            left = connection.execute("SELECT id FROM complaints ORDER BY id").fetchall()
        assert left == [("c1",), ("c2",), ("c3",)], "the sandbox twin went, the rest stayed"
