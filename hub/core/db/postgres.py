"""PostgreSQL's bulk paths, on the asyncpg connection under the session's transaction.

SQLAlchemy's executemany costs most of a bulk write in parameter processing; for the rows a
sync writes by the thousand, `unnest` of typed arrays does the same work in one statement
(see `hub.complaints.bulk`). It runs inside the session's open transaction: it commits or
rolls back with everything else the session wrote.
"""

from __future__ import annotations

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
