"""The typed worker context: what `on_startup` builds and every job receives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import httpx

from hub.core.db import Database
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.events.service import EventBus
from hub.settings import Settings
from hub.syncs.service import SyncPolicy


class WorkerContext(TypedDict):
    # Set by arq itself.
    redis: Any
    job_id: str
    job_try: int
    # Set by on_startup.
    settings: Settings
    db: Database
    http: httpx.AsyncClient
    bus: EventBus
    ctm: Mapping[CtmEnvironment, CtmClient]
    sync_policy: SyncPolicy
