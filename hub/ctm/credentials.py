"""A CTM key as the client sees it: its environment, ids, and where its secret comes from."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class CtmEnvironment(enum.StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"

    @property
    def other(self) -> CtmEnvironment:
        is_sandbox = self is CtmEnvironment.SANDBOX
        return CtmEnvironment.PRODUCTION if is_sandbox else CtmEnvironment.SANDBOX


class SecretSource(Protocol):
    """Where a key's secret comes from; opened only inside the token call."""

    def reveal(self) -> str: ...


class StaticSecret:
    """A secret already in memory (tests, the simulator, the demo). Its repr is '***'."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "StaticSecret('***')"


@dataclass(frozen=True)
class CtmCredentials:
    """One version of one key. `version_id` changes when the key is rotated (tokens are
    cached per version); `contracts` is what the key covers, when known."""

    environment: CtmEnvironment
    key_id: str
    hpms_user_id: str
    version_id: str
    secret: SecretSource = field(repr=False)
    contracts: frozenset[str] | None = None
