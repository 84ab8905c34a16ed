"""PostgreSQL's bulk paths, on the asyncpg connection under the session's transaction.

SQLAlchemy's executemany costs most of a bulk write in parameter processing; for the rows a
sync writes by the thousand, `COPY` and one statement do the same work in two round trips
(see `hub.complaints.bulk`). They run inside the session's open transaction: they commit
or roll back with everything else the session wrote.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

import asyncpg
from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The session's asyncpg connection, its transaction begun.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs
    itself; a statement sent on the bare connection before that would run outside any
    transaction (committed at once, never rolled back). So the adapter's transaction is
    started here when it has not been yet."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    adapted: Any = raw.dbapi_connection  # SQLAlchemy's AsyncAdapt_asyncpg_connection
    if adapted._transaction is None:
        await adapted._start_transaction()
    return cast("asyncpg.Connection", raw.driver_connection)


def among(session: AsyncSession, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL as `column = ANY($1)` with the values in one array
    parameter. SQLAlchemy expands `IN` into a parameter per value and processes each one on
    every execution, which costs more than the statement itself for the hundreds of ids a
    batch names."""
    if is_postgres(session):
        return cast(
            "ColumnElement[bool]",
            column == any_(bindparam(None, list(values), type_=ARRAY(column.type))),
        )
    return cast("ColumnElement[bool]", column.in_(values))
