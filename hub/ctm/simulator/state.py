"""The simulator's memory: keys, tokens, contracts, faults, uploads, and its clock."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from hub.ctm import modeled
from hub.ctm.layouts import Layout
from hub.ctm.simulator.data import Complaint, ContractPlan, complaints_received, make_complaint

Environment = Literal["sandbox", "production"]
Route = Literal["token", "download", "upload"]
FaultKind = Literal[
    "429", "500", "502", "503", "504", "cut", "html", "html_as_csv", "json", "hang", "403",
    "lost_answer", "400", "422",
]  # fmt: skip
UPDATE_WINDOW_DAYS = 8


class SimulatorError(ValueError):
    """A bad admin request or seed file; the message names the field."""


@dataclass
class SimKey:
    key_id: str
    secret: str = field(repr=False)
    hpms_user: str
    environment: Environment
    contracts: set[str]
    status: Literal["active", "rotated", "deactivated"] = "active"

    def public(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "hpms_user": self.hpms_user,
            "environment": self.environment,
            "contracts": sorted(self.contracts),
            "status": self.status,
        }


@dataclass
class SimToken:
    key_id: str
    dies_at: float  # monotonic; may be earlier than the stated expiry (fault injection)


@dataclass
class Faults:
    """Per-run fault injection. Rates are probabilities per request, drawn from the seed."""

    latency_ms: int = 0
    rate_429: float = 0.0
    retry_after: int = 1
    rate_500: float = 0.0
    rate_cut: float = 0.0  # downloads cut mid-body
    token_dies_after: float | None = None  # seconds a token really lives, whatever it says
    # How long a "hang" fault keeps the caller waiting; and a "lost_answer" one, which takes
    # an upload (CMS has it) and only then hangs, as if the answer were lost on the way.
    hang_seconds: float = 30.0
    chunk_delay_ms: int = 0  # a slow link: this pause after every chunk of a download
    script: list[tuple[Route | None, FaultKind]] = field(default_factory=list)

    def scripted(self, route: Route) -> FaultKind | None:
        """The next one-shot fault aimed at this route (or at any route), consumed."""
        for index, (target, kind) in enumerate(self.script):
            if target is None or target == route:
                del self.script[index]
                return kind
        return None


@dataclass
class RequestLog:
    route: Route
    key_id: str | None
    status: int
    contract: str | None = None
    had_cookie: bool = False  # did the data call carry the token call's session cookie


@dataclass
class Upload:
    key_id: str
    accepted: list[str]
    rejected: list[dict[str, Any]]
    rows: list[dict[str, str]] = field(repr=False)


def _positive(value: float, name: str) -> float:
    if value < 0:
        raise SimulatorError(f"{name}: must not be negative")
    return value


@dataclass
class SimState:
    seed: int = 1
    environment: Environment = "sandbox"
    start_day: date = field(default_factory=date.today)
    history_days: int = 30
    token_lifetime: int = 1800
    scope: str = modeled.DEFAULT_SCOPE
    file_version: Layout = Layout.CURRENT
    tick_seconds: float | None = None  # advance one simulated day every N seconds
    keys: dict[str, SimKey] = field(default_factory=dict)
    contracts: dict[str, ContractPlan] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    uploads: list[Upload] = field(default_factory=list)
    requests: list[RequestLog] = field(default_factory=list)
    resolutions: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    _tokens: dict[str, SimToken] = field(default_factory=dict)
    _days_advanced: int = 0
    _started: float = field(default_factory=time.monotonic)
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def replace_with(self, other: SimState) -> None:
        """Become `other` in place: a running simulator serves this object, so tests can
        give each test a fresh state without restarting the server."""
        self.__dict__.update(other.__dict__)

    def reseed(self, seed: int) -> None:
        """Another seed: other complaints, other fault draws."""
        self.seed = seed
        self._rng.seed(seed)

    # Clock ------------------------------------------------------------------------------

    def today(self) -> date:
        ticks = 0
        if self.tick_seconds:
            ticks = int((self.clock() - self._started) // self.tick_seconds)
        return self.start_day + timedelta(days=self._days_advanced + ticks)

    def advance(self, days: int = 1) -> date:
        self._days_advanced += int(_positive(days, "days"))
        return self.today()

    # Keys -------------------------------------------------------------------------------

    def add_key(
        self,
        *,
        hpms_user: str,
        contracts: set[str],
        environment: Environment | None = None,
        key_id: str | None = None,
        secret: str | None = None,
    ) -> SimKey:
        key = SimKey(
            key_id=key_id or f"sim-{secrets.token_hex(6)}",
            secret=secret or secrets.token_urlsafe(24),
            hpms_user=hpms_user,
            environment=environment or self.environment,
            contracts=set(contracts),
        )
        if key.key_id in self.keys:
            raise SimulatorError(f"key_id: {key.key_id} is already registered")
        self.keys[key.key_id] = key
        for contract in contracts:
            self.contracts.setdefault(contract, ContractPlan())
        return key

    def get_key(self, key_id: str) -> SimKey:
        key = self.keys.get(key_id)
        if key is None:
            raise SimulatorError(f"key_id: no key {key_id}")
        return key

    def rotate(self, key_id: str) -> SimKey:
        """CMS reissues the key: a new ID and secret, same user and contracts."""
        old = self.get_key(key_id)
        old.status = "rotated"
        self._drop_tokens(key_id)
        return self.add_key(
            hpms_user=old.hpms_user, contracts=old.contracts, environment=old.environment
        )

    def deactivate(self, key_id: str) -> SimKey:
        key = self.get_key(key_id)
        key.status = "deactivated"
        self._drop_tokens(key_id)
        return key

    # Tokens -----------------------------------------------------------------------------

    def issue_token(self, key: SimKey) -> str:
        token = secrets.token_urlsafe(32)
        life = float(self.token_lifetime)
        if self.faults.token_dies_after is not None:
            life = min(life, self.faults.token_dies_after)
        self._tokens[token] = SimToken(key.key_id, self.clock() + life)
        return token

    def key_for_token(self, token: str) -> SimKey | None:
        held = self._tokens.get(token)
        if held is None or held.dies_at <= self.clock():
            return None
        key = self.keys.get(held.key_id)
        return key if key is not None and key.status == "active" else None

    def expire_tokens(self) -> None:
        self._tokens.clear()

    def _drop_tokens(self, key_id: str) -> None:
        for token in [t for t, held in self._tokens.items() if held.key_id == key_id]:
            del self._tokens[token]

    # Faults -----------------------------------------------------------------------------

    def draw_fault(self, route: Route) -> FaultKind | None:
        scripted = self.faults.scripted(route)
        if scripted is not None:
            return scripted
        roll = self._rng.random()
        if roll < self.faults.rate_429:
            return "429"
        if roll < self.faults.rate_429 + self.faults.rate_500:
            return "500"
        if route == "download" and self._rng.random() < self.faults.rate_cut:
            return "cut"
        return None

    # Complaints -------------------------------------------------------------------------

    def complaints(self, contract: str, start: date, end: date) -> Iterator[Complaint]:
        """Complaints of the contract received or changed between start and end, inclusive."""
        plan = self.contracts.get(contract, ContractPlan())
        today = self.today()
        first = max(
            start - timedelta(days=UPDATE_WINDOW_DAYS), today - timedelta(days=self.history_days)
        )
        day = first
        while day <= min(end, today):
            for number, rng in complaints_received(self.seed, contract, day, plan):
                complaint = make_complaint(contract, number, day, rng, today, plan)
                changed = (
                    complaint.updated if complaint.updated and complaint.updated <= today else None
                )
                if start <= day <= end or (changed is not None and start <= changed <= end):
                    yield self._with_resolution(complaint)
            day += timedelta(days=1)

    def _with_resolution(self, complaint: Complaint) -> Complaint:
        resolution = self.resolutions.get((complaint.contract_id, complaint.complaint_id))
        if resolution is None:
            return complaint
        cells = complaint.cells | resolution
        return Complaint(
            complaint.complaint_id,
            complaint.contract_id,
            complaint.received,
            complaint.updated,
            cells,
        )
