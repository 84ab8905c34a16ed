"""A CTM simulator in the test's event loop, a key on it, and a client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest

from hub.ctm.client import CtmClient, CtmCredentials, CtmEnvironment, StaticSecret
from hub.ctm.parser import ComplaintRecord, ParseSummary
from hub.ctm.simulator import ContractPlan, RunningSimulator, SimKey, SimState, running_simulator

TODAY = date(2025, 3, 3)
WINDOW = (date(2025, 2, 1), TODAY)
PRODUCTION_URL = "https://hpms.example.test"


@dataclass
class Sleeps:
    """An injected sleep: records the delays the client asked for and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
async def sim_server() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(SimState()) as running:
        yield running


@pytest.fixture
def sim(sim_server: RunningSimulator) -> RunningSimulator:
    """The session's simulator with a fresh state for this test."""
    state = SimState(seed=11, start_day=TODAY, history_days=30)
    state.contracts["H1234"] = ContractPlan(daily_min=1, daily_max=3)
    sim_server.state.replace_with(state)
    return sim_server


@pytest.fixture
def key(sim: RunningSimulator) -> SimKey:
    return sim.state.add_key(
        hpms_user="RP01", contracts={"H1234", "S5678"}, key_id="key-1", secret="secret-1"
    )


def credentials_for(
    key: SimKey, *, version: str = "v1", environment: CtmEnvironment = CtmEnvironment.SANDBOX
) -> CtmCredentials:
    return CtmCredentials(
        environment=environment,
        key_id=key.key_id,
        hpms_user_id=key.hpms_user,
        version_id=version,
        secret=StaticSecret(key.secret),
        contracts=frozenset(key.contracts),
    )


@pytest.fixture
def creds(key: SimKey) -> CtmCredentials:
    return credentials_for(key)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(sim: RunningSimulator, sleeps: Sleeps, clock: Clock) -> AsyncIterator[CtmClient]:
    async with CtmClient(
        CtmEnvironment.SANDBOX,
        base_url=sim.url,
        other_environment_url=PRODUCTION_URL,
        sleep=sleeps,
        clock=clock,
        jitter=lambda: 1.0,
    ) as ctm:
        yield ctm


async def download_all(
    client: CtmClient,
    creds: CtmCredentials,
    contract: str = "H1234",
    window: tuple[date, date] = WINDOW,
    **options: Any,
) -> tuple[list[ComplaintRecord], ParseSummary]:
    download = client.download_complaints(creds, contract, *window, **options)
    records = [record async for batch in download for record in batch]
    return records, download.summary


def routes(sim: RunningSimulator) -> list[tuple[str, int]]:
    return [(entry.route, entry.status) for entry in sim.state.requests]
