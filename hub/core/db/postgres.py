"""PostgreSQL's bulk paths, on the asyncpg connection under the session's transaction.

SQLAlchemy's executemany costs most of a bulk write in parameter processing; for the rows a
sync writes by the thousand, `COPY` (fresh rows) and `unnest` of typed arrays (upserts) do
the same work in one round trip. Both run inside the session's open transaction: they
commit or roll back with everything else it wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from hub.core import jsontext


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The session's asyncpg connection, its transaction begun."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return cast("asyncpg.Connection", raw.driver_connection)


def jsonb(value: Any) -> str:
    """A document as asyncpg's jsonb codec (as SQLAlchemy sets it up) takes it: text."""
    return jsontext.dumps(value)


async def copy_rows(
    session: AsyncSession, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """`COPY table (columns) FROM STDIN` (binary) of `rows`, in the session's transaction."""
    if rows:
        connection = await driver(session)
        await connection.copy_records_to_table(table, records=rows, columns=list(columns))
