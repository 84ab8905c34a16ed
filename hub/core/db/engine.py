"""Engines and the unit of work: one session per request or job, committed on success."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import structlog
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from hub.core import jobs

if TYPE_CHECKING:
    from hub.core.crypto.cache import Crypto

log = structlog.get_logger(__name__)
T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 15_000
READ_ONLY_OPTION = "hub_read_only"
# Where each session carries the process's `Crypto` (hub.core.crypto reads it from here).
CRYPTO_INFO_KEY = "hub.crypto"


def _tune_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and `BEGIN IMMEDIATE` for every transaction that
    may write.

    Taking the write lock at BEGIN (not at the first write) means two writers queue on the
    busy timeout instead of one failing with SQLITE_BUSY when it upgrades a read snapshot;
    it also serialises the per-tenant audit chain on SQLite for free. Read-only
    transactions (`Database.transaction(read_only=True)`, GET requests) begin deferred: in
    WAL mode they read a snapshot and never wait for a writer, such as a long sync.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """Never hand out a pooled PostgreSQL connection the server has closed.

    asyncpg notices a closed socket while the connection sits in the pool (a restarted or
    failed-over server, an idle timeout), so asking it costs nothing; SQLAlchemy's
    `pool_pre_ping` would instead spend three round trips (BEGIN, a query, ROLLBACK) on
    every checkout. A connection that dies without a word (a network partition) fails its
    first statement, and SQLAlchemy then discards the whole pool's connections of that
    generation.
    """

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _on_checkout(_: Any, record: ConnectionPoolEntry, __: Any) -> None:
        driver = record.driver_connection
        if driver is not None and driver.is_closed():
            raise exc.DisconnectionError("the server closed this pooled connection")


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An engine; on PostgreSQL a pool keeping `pool_size` connections open, and as many
    again opened for a burst (closed once returned)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo)
        _tune_sqlite(engine)
        return engine
    engine = create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800
    )
    _drop_closed_connections(engine)
    return engine


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def lost_connection(error: BaseException) -> bool:
    """Whether `error` is a database connection lost under a statement (a restart, a
    failover, a network fault), through SQLAlchemy or on the driver's own connection (the
    bulk paths use it directly), rather than a statement that failed."""
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated)
    if isinstance(error, asyncpg.ConnectionDoesNotExistError):
        return True
    return isinstance(error, asyncpg.InterfaceError) and "connection is closed" in str(error)


class Database:
    """The engine, its session factory, where committed jobs go, and the crypto every
    session carries (so services can seal and open with only a session)."""

    def __init__(
        self,
        engine: AsyncEngine,
        queue: jobs.JobQueue | None = None,
        *,
        bind: AsyncConnection | None = None,
        crypto: Crypto | None = None,
    ) -> None:
        self.engine = engine
        # Tests bind sessions to one connection whose outer transaction they roll back; a
        # commit in the code under test then releases a savepoint instead.
        self.sessions = (
            async_sessionmaker(engine, expire_on_commit=False)
            if bind is None
            else async_sessionmaker(
                bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
        )
        self.queue = queue
        self.crypto = crypto
        jobs.install_session_hooks()

    @property
    def crypto(self) -> Crypto | None:
        return self._crypto

    @crypto.setter
    def crypto(self, crypto: Crypto | None) -> None:
        self._crypto = crypto
        self.sessions.configure(info={CRYPTO_INFO_KEY: crypto} if crypto is not None else {})

    @classmethod
    def from_url(
        cls,
        url: str,
        queue: jobs.JobQueue | None = None,
        *,
        crypto: Crypto | None = None,
        pool_size: int = 10,
    ) -> Database:
        return cls(create_engine(url, pool_size=pool_size), queue, crypto=crypto)

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: commit on success, roll back on any error.

        Jobs enqueued in it are sent only once the commit has succeeded. `read_only` lets
        it run beside a writer on SQLite (it must not write).
        """
        async with self.sessions() as session:
            try:
                if read_only:
                    await session.connection(execution_options={READ_ONLY_OPTION: True})
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        await jobs.send_committed(session, self.queue)

    async def again_if_disconnected(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` (which opens its own transactions); if it meets a connection the
        server closed (a restart, a failover) that the pool had not noticed, run it once
        more, on a new connection (the pool drops that generation). The failed try's
        transaction rolled back, so nothing of it was written; only a connection lost in
        the very moment of a commit leaves it unknown whether that one was."""
        try:
            return await work()
        except Exception as error:
            if not lost_connection(error):
                raise
            log.warning("database connection lost; once more on a new one")
            return await work()

    async def ping(self) -> None:
        """One `SELECT 1`, once more on a new connection if the first met a closed one (so a
        readiness check does not report a database that is back as unreachable)."""

        async def select_one() -> None:
            async with self.transaction(read_only=True) as session:
                await session.execute(text("SELECT 1"))

        await self.again_if_disconnected(select_one)

    async def dispose(self) -> None:
        await self.engine.dispose()
