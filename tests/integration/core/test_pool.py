"""The PostgreSQL pool hands out no connection the server has closed, without a ping."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from hub.core.db import create_engine


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
