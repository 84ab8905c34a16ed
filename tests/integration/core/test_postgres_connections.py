"""PostgreSQL connections: the pool hands out none the server has closed (without a ping),
and the bare asyncpg connection a bulk path uses is inside the session's transaction."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from hub.core.db import Database, create_engine, postgres


async def test_a_connection_the_server_closed_is_replaced_at_checkout(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's pool (SQLite has no server to close a connection)")
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            first = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with engine.connect() as connection:  # the same pooled connection again
            again = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again == first

        killer = create_engine(database_url)
        async with killer.connect() as connection:
            stopped = await connection.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": first}
            )
            assert stopped.scalar_one() is True
        await killer.dispose()
        await asyncio.sleep(0.2)  # the closed socket reaches the idle pooled connection

        async with engine.connect() as connection:
            replaced = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert replaced != first
    finally:
        await engine.dispose()


async def test_a_statement_on_the_bare_connection_first_is_inside_the_transaction(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's bare asyncpg connection")
    database = Database(create_engine(database_url, pool_size=1))
    try:
        async with database.transaction() as session:
            connection = await postgres.driver(session)
            await connection.execute("CREATE TABLE IF NOT EXISTS bare_first (n int)")
            await connection.execute("TRUNCATE bare_first")

        with pytest.raises(RuntimeError):
            async with database.transaction() as session:
                connection = await postgres.driver(session)  # before any other statement
                assert connection.is_in_transaction()
                await connection.execute("INSERT INTO bare_first VALUES (1)")
                raise RuntimeError("roll it back")
        async with database.transaction() as session:
            connection = await postgres.driver(session)
            await connection.execute("INSERT INTO bare_first VALUES (2)")
        async with database.transaction() as session:
            found = (await session.execute(text("SELECT n FROM bare_first"))).scalars().all()
            await session.execute(text("DROP TABLE bare_first"))
        assert found == [2]
    finally:
        await database.dispose()
