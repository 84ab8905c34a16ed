"""Running the simulator: inside a test's event loop on a free loopback port, beside the
hub in `hub demo`, or alone as `hub ctm-sim`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn

from hub.ctm.simulator.app import create_simulator_app
from hub.ctm.simulator.state import SimState


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: whoever runs it owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class RunningSimulator:
    url: str
    state: SimState
    server: uvicorn.Server


def build_server(
    state: SimState, *, host: str, port: int, handle_signals: bool = False
) -> uvicorn.Server:
    """An uvicorn server for the simulator; without `handle_signals` its runner owns them."""
    config = uvicorn.Config(
        create_simulator_app(state), host=host, port=port, log_config=None,
        access_log=False, lifespan="off", timeout_graceful_shutdown=2,
    )  # fmt: skip
    return uvicorn.Server(config) if handle_signals else _Server(config)


def serve_standalone(state: SimState, listening: socket.socket) -> None:
    """`hub ctm-sim`: serve on a socket from `bind()` (so a busy port is the caller's
    OSError, not uvicorn's exit) until Ctrl-C or SIGTERM."""
    host, port = listening.getsockname()[:2]
    try:
        build_server(state, host=host, port=port, handle_signals=True).run(sockets=[listening])
    finally:
        listening.close()


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready socket; port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


@contextlib.asynccontextmanager
async def running_simulator(
    state: SimState | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator in the current event loop until the block ends."""
    state = state or SimState()
    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    server = build_server(state, host=bound_host, port=bound_port)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="ctm-sim")
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the CTM simulator stopped while starting")
            await asyncio.sleep(0.01)
        yield RunningSimulator(f"http://{bound_host}:{bound_port}", state, server)
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
