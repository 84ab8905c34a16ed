"""/api/v1/syncs: schedules, "sync now", runs and their quarantined rows."""

from __future__ import annotations

import json
from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.reads import PhiView, record_phi_read
from hub.auth.guards import ANY_SCOPE, scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core import crypto
from hub.core.errors import documented
from hub.keys.service import normalise_contract, parse_environment
from hub.syncs import service
from hub.syncs.schemas import (
    PairView,
    QuarantineView,
    QueuedSync,
    RunView,
    SchedulePut,
    ScheduleView,
    SyncNow,
    SyncNowResult,
)

# Row numbers are 32-bit INTEGERs: a larger `after` is refused here, not sent to the database.
MAX_ROW_NUMBER = 2**31 - 1
# Run health holds no PHI: any token of the tenant may read it; a quarantined row's raw
# cells are opened only for complaints:read.
RUNS = scope(ANY_SCOPE)


def _policy(state: State) -> service.SyncPolicy:
    return service.SyncPolicy.from_settings(state.settings)


def _schedule_view(s: service.ScheduleState) -> ScheduleView:
    return ScheduleView(
        environment=s.environment.value, interval_minutes=s.interval_minutes,
        paused=s.is_paused, is_default=s.is_default, pairs=[PairView.of(c) for c, _ in s.cursors],
    )  # fmt: skip


class SyncController(Controller):
    path = "/syncs"
    tags = ["syncs"]

    @get("/schedules", opt=scope(Scope.COMPLAINTS_READ), responses=documented(401, 403))
    async def list_schedules(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
    ) -> list[ScheduleView]:
        """Per environment with keys: interval, pause, and each (key, contract) pair's cursor."""
        found = await service.list_schedules(db_session, principal.tenant, policy=_policy(state))
        return [_schedule_view(s) for s in found]

    @put(
        "/schedules/{environment:str}",
        opt=scope(Scope.TENANT_ADMIN),
        responses=documented(400, 401, 403, 404),
    )
    async def set_schedule(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        environment: FromPath[str],
        data: JSONBody[SchedulePut],
    ) -> ScheduleView:
        """Set the interval (minutes, 1 to 1440) or pause; 404 for an environment in which
        the tenant has no key."""
        view = await service.change_schedule(
            db_session, principal, environment=parse_environment(environment),
            interval_minutes=data.interval_minutes, is_paused=data.paused, policy=_policy(state),
        )  # fmt: skip
        return _schedule_view(view)

    @post(
        "/run",
        opt=scope(Scope.COMPLAINTS_WRITE),
        status_code=202,
        responses=documented(400, 401, 403, 404),
    )
    async def sync_now(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        data: JSONBody[SyncNow],
    ) -> SyncNowResult:
        """Queue a sync of every serving (key, contract) pair now, paused or not (or of one
        contract). A pair already queued is not queued twice: one whose queued sync waits
        (a retry) says until when (`next_try_at`); a pair whose sync is running
        (`running_since`) syncs again as soon as that one ends."""
        contract = normalise_contract(data.contract, field="contract") if data.contract else None
        requested = await service.request_sync(
            db_session, tenant_id=principal.tenant, contract=contract
        )
        queued = []
        for r in requested:
            p = r.pair
            job = service.sync_job(p.tenant_id, p.key_id, p.contract)
            waits = await service.waiting_until(state.redis, job)
            queued.append(
                QueuedSync(p.contract, p.key_id, p.environment.value, r.running_since, waits)
            )
        return SyncNowResult(queued)

    @get("/runs", opt=RUNS, responses=documented(400, 401, 403))
    async def list_runs(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        contract: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[RunView]:
        number = normalise_contract(contract, field="contract") if contract else None
        runs = await service.list_runs(db_session, principal.tenant, contract=number, limit=limit)
        return [RunView.of(r) for r in runs]

    @get("/runs/{run_id:uuid}", opt=RUNS, responses=documented(401, 403, 404))
    async def get_run(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        run_id: FromPath[UUID],
    ) -> RunView:
        return RunView.of(await service.get_run(db_session, principal.tenant, run_id))

    @get("/runs/{run_id:uuid}/quarantine", opt=RUNS, responses=documented(401, 403, 404))
    async def list_quarantine(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        run_id: FromPath[UUID],
        after: Annotated[int, QueryParameter(ge=0, le=MAX_ROW_NUMBER)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 500,
    ) -> list[QuarantineView]:
        """The run's refused rows by row number: row number, reason, file name; the raw
        cells too for a caller holding complaints:read (each such answer is audited,
        `phi.read`). Pass the last `row_number` seen as `after` to page."""
        rows = await service.quarantine_of(
            db_session, principal.tenant, run_id, after=after, limit=limit
        )
        may_see = principal.has_scope(Scope.COMPLAINTS_READ)
        cipher = await crypto.cipher_for(db_session, principal.tenant) if may_see else None
        views = []
        for q in rows:
            raw = None
            if cipher is not None and q.raw is not None:
                raw = [
                    str(c)
                    for c in json.loads(cipher.open(q.raw, field=service.RAW_FIELD, row=q.id))
                ]
            views.append(QuarantineView.of(q, raw))
        opened = sum(v.raw is not None for v in views)
        if opened:
            await record_phi_read(
                state.db, principal, PhiView.QUARANTINED_ROWS,
                target_type="sync_run", target_id=run_id, rows=opened,
            )  # fmt: skip
        return views
