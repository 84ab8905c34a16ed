"""Build a simulator state from a seed file (JSON) or the admin API's bodies, checking
every field and naming the one that is wrong."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, cast

from hub.ctm import layouts
from hub.ctm.layouts import Layout
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.state import (
    Environment,
    FaultKind,
    Faults,
    Route,
    SimKey,
    SimState,
    SimulatorError,
)

ENVIRONMENTS = ("sandbox", "production")
ROUTES = ("token", "download", "upload")
FAULT_KINDS = (
    "429", "500", "502", "503", "504", "cut", "html", "html_as_csv", "json", "hang", "403",
    "lost_answer", "400", "422",
)  # fmt: skip


def mapping(value: Any, name: str, fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """`value` as an object; with `fields`, one holding no other field (a misspelt one would
    otherwise be ignored, and the simulator run without what was asked)."""
    if not isinstance(value, dict):
        raise SimulatorError(f"{name}: must be an object")
    if fields is not None and (unknown := sorted(set(value) - set(fields))):
        raise SimulatorError(f"{name}: unknown field {unknown[0]!r} (known: {', '.join(fields)})")
    return value


FAULT_FIELDS = (
    "latency_ms", "rate_429", "retry_after", "rate_500", "rate_cut", "token_dies_after",
    "hang_seconds", "chunk_delay_ms", "script",
)  # fmt: skip
SETTING_FIELDS = ("file_version", "token_lifetime", "scope")
KEY_FIELDS = ("hpms_user", "contracts", "environment", "key_id", "secret")
SEED_FIELDS = (
    "seed", "environment", "start_day", "history_days", "tick_seconds", "contracts", "keys",
    "faults", *SETTING_FIELDS,
)  # fmt: skip


def _number(body: dict[str, Any], name: str, default: float, *, low: float = 0.0) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise SimulatorError(f"{name}: must be a number >= {low:g}")
    return float(value)


def _rate(body: dict[str, Any], name: str) -> float:
    value = _number(body, name, 0.0)
    if value > 1:
        raise SimulatorError(f"{name}: must be between 0 and 1")
    return value


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value.strip():
        raise SimulatorError(f"{name}: must be a non-empty string")
    return value


def environment(value: Any, name: str = "environment") -> Environment:
    if value not in ENVIRONMENTS:
        raise SimulatorError(f"{name}: must be 'sandbox' or 'production'")
    return cast("Environment", value)


def contracts(value: Any, name: str = "contracts") -> set[str]:
    if not isinstance(value, list) or not value:
        raise SimulatorError(f"{name}: must be a non-empty list of contract numbers")
    for item in value:
        if not isinstance(item, str) or not layouts.is_contract_number(item):
            raise SimulatorError(f"{name}: {item!r} is not a contract number (e.g. H1234)")
    return set(value)


def faults(body: Any) -> Faults:
    body = mapping(body, "faults", FAULT_FIELDS)
    script: list[tuple[Route | None, FaultKind]] = []
    for position, item in enumerate(body.get("script", [])):
        item = mapping(item, f"faults.script[{position}]", ("route", "fault"))
        route, kind = item.get("route"), item.get("fault")
        if route is not None and route not in ROUTES:
            raise SimulatorError(f"faults.script[{position}].route: one of {', '.join(ROUTES)}")
        if kind not in FAULT_KINDS:
            raise SimulatorError(
                f"faults.script[{position}].fault: one of {', '.join(FAULT_KINDS)}"
            )
        script.append((cast("Route | None", route), cast("FaultKind", kind)))
    dies = body.get("token_dies_after")
    return Faults(
        latency_ms=int(_number(body, "latency_ms", 0)),
        rate_429=_rate(body, "rate_429"),
        retry_after=int(_number(body, "retry_after", 1)),
        rate_500=_rate(body, "rate_500"),
        rate_cut=_rate(body, "rate_cut"),
        token_dies_after=None if dies is None else _number(body, "token_dies_after", 0),
        hang_seconds=_number(body, "hang_seconds", 30.0),
        chunk_delay_ms=int(_number(body, "chunk_delay_ms", 0)),
        script=script,
    )


def contract_plan(body: Any, name: str) -> ContractPlan:
    body = mapping(body, name, ("daily_min", "daily_max", "summary_chars"))
    low = int(_number(body, "daily_min", 0))
    high = int(_number(body, "daily_max", 3))
    if high < low or high > 999:
        raise SimulatorError(f"{name}.daily_max: must be between daily_min and 999")
    chars = body.get("summary_chars")
    summary_chars = None if chars is None else int(_number(body, "summary_chars", 0, low=1))
    return ContractPlan(daily_min=low, daily_max=high, summary_chars=summary_chars)


def apply_settings(state: SimState, body: Any) -> None:
    body = mapping(body, "settings", SETTING_FIELDS)
    if "file_version" in body:
        if body["file_version"] not in (Layout.CURRENT.value, Layout.LEGACY.value):
            raise SimulatorError("file_version: must be 'current' or 'legacy'")
        state.file_version = Layout(body["file_version"])
    if "token_lifetime" in body:
        state.token_lifetime = int(_number(body, "token_lifetime", 1800, low=1))
    if "scope" in body:
        state.scope = _text(body, "scope")


def add_key(state: SimState, body: Any, name: str = "key") -> SimKey:
    body = mapping(body, name, KEY_FIELDS)
    return state.add_key(
        hpms_user=_text(body, "hpms_user"),
        contracts=contracts(body.get("contracts"), f"{name}.contracts"),
        environment=environment(body.get("environment", state.environment)),
        key_id=_text(body, "key_id") if "key_id" in body else None,
        secret=_text(body, "secret") if "secret" in body else None,
    )


def state_from_config(config: Any) -> SimState:
    config = mapping(config, "seed file", SEED_FIELDS)
    start = config.get("start_day")
    try:
        start_day = date.fromisoformat(start) if start is not None else date.today()
    except (TypeError, ValueError):
        raise SimulatorError("start_day: must be a date like 2025-03-03") from None
    tick = config.get("tick_seconds")
    state = SimState(
        seed=int(_number(config, "seed", 1)),
        environment=environment(config.get("environment", "sandbox")),
        start_day=start_day,
        history_days=int(_number(config, "history_days", 30)),
        tick_seconds=None if tick is None else _number(config, "tick_seconds", 0, low=1),
    )
    apply_settings(
        state, {k: v for k, v in config.items() if k in ("file_version", "token_lifetime", "scope")}
    )
    for contract, plan in mapping(config.get("contracts", {}), "contracts").items():
        if not layouts.is_contract_number(contract):
            raise SimulatorError(f"contracts: {contract!r} is not a contract number")
        state.contracts[contract] = contract_plan(plan, f"contracts.{contract}")
    keys = config.get("keys", [])
    if not isinstance(keys, list):
        raise SimulatorError("keys: must be a list")
    for position, key in enumerate(keys):
        add_key(state, key, f"keys[{position}]")
    if "faults" in config:
        state.faults = faults(config["faults"])
    return state


def load_seed_file(path: Path) -> SimState:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SimulatorError(f"seed file {path}: {error.strerror}") from None
    except ValueError as error:
        raise SimulatorError(f"seed file {path}: not JSON ({error})") from None
    try:
        return state_from_config(config)
    except SimulatorError as error:
        raise SimulatorError(f"seed file {path}: {error}") from None
