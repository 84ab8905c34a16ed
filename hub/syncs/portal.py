"""The syncs pages of the portal: each environment's schedule (a tenant admin pauses,
resumes or changes its interval), "sync now", the recent runs and a run's quarantined
rows (row number and reason; their raw cells opened on request for complaints:read,
audited as the API's `phi.read`)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.reads import PhiView, record_phi_read
from hub.auth.models import Scope
from hub.core import crypto
from hub.core.db import Database
from hub.core.errors import Invalid
from hub.keys import repository as keys_repository
from hub.keys.service import normalise_contract, parse_environment
from hub.portal.web import go, page, principal_of, render
from hub.syncs import service
from hub.syncs.models import RunOutcome

OUTCOME_PILL = {
    RunOutcome.RUNNING.value: "warn",
    RunOutcome.SUCCEEDED.value: "ok",
    RunOutcome.FAILED.value: "bad",
    RunOutcome.BLOCKED.value: "bad",
}
# What the page says after an action (the `done` query value; nothing else is echoed).
DONE = {
    "schedule": "The schedule is saved.",
    "queued": "The sync is queued: the runs below show it once a worker picks it up.",
}
RUNS_SHOWN = 50
QUARANTINE_SHOWN = 500


class ScheduleForm(msgspec.Struct):
    interval_minutes: str = ""
    paused: str = ""  # "true" | "false" | "" (unchanged)


class SyncNowForm(msgspec.Struct):
    contract: str = ""


def _policy(request: Request[Any, Any, Any]) -> service.SyncPolicy:
    return service.SyncPolicy.from_settings(request.app.state.settings)


async def _syncs(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    *,
    done: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    principal = principal_of(request)
    schedules = await service.list_schedules(session, principal.tenant, policy=_policy(request))
    runs = await service.list_runs(session, principal.tenant, limit=RUNS_SHOWN)
    labels = {k.id: k.label for k in await keys_repository.list_keys(session, principal.tenant)}
    return await render(
        request, session, "syncs/list.html", title="Syncs", status_code=status_code,
        schedules=schedules, runs=runs, labels=labels, pills=OUTCOME_PILL,
        errors=errors or {}, flash=DONE.get(done) or None,
        is_admin=Scope.TENANT_ADMIN in principal.scopes,
        may_sync=Scope.COMPLAINTS_WRITE in principal.scopes,
    )  # fmt: skip


@get("/syncs", opt=page(Scope.COMPLAINTS_READ))
async def syncs_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    done: FromQuery[str] = "",
) -> Template:
    """Per environment the schedule and its pairs, then the recent runs."""
    return await _syncs(request, db_session, done=done)


def _interval(raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise Invalid("interval_minutes", "must be a whole number of minutes") from None


def _paused(raw: str) -> bool | None:
    return {"true": True, "false": False}.get(raw.strip().lower())


@post("/syncs/schedules/{environment:str}", opt=page(Scope.TENANT_ADMIN), status_code=200)
async def set_schedule(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    environment: FromPath[str],
    data: URLEncodedBody[ScheduleForm],
) -> Response[Any]:
    """Pause, resume or change the interval (the API's PUT, audited the same way)."""
    principal = principal_of(request)
    try:
        await service.change_schedule(
            db_session, principal, environment=parse_environment(environment),
            interval_minutes=_interval(data.interval_minutes), is_paused=_paused(data.paused),
            policy=_policy(request),
        )  # fmt: skip
    except Invalid as error:
        errors = {f"{environment}.{error.field}": error.detail.removeprefix(f"{error.field}: ")}
        return await _syncs(request, db_session, errors=errors, status_code=400)
    return go(request, "/portal/syncs?done=schedule")


@post("/syncs/run", opt=page(Scope.COMPLAINTS_WRITE), status_code=200)
async def sync_now(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[SyncNowForm],
) -> Response[Any]:
    """Queue every serving pair now (or one contract's), paused or not, as the API does."""
    principal = principal_of(request)
    try:
        contract = normalise_contract(data.contract, field="contract") if data.contract else None
    except Invalid as error:
        return await _syncs(
            request, db_session, errors={"contract": error.detail.removeprefix("contract: ")},
            status_code=400,
        )  # fmt: skip
    await service.request_sync(db_session, tenant_id=principal.tenant, contract=contract)
    return go(request, "/portal/syncs?done=queued")


@get("/syncs/runs/{run_id:uuid}", opt=page(Scope.COMPLAINTS_READ))
async def run_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    run_id: FromPath[UUID],
    cells: FromQuery[str] = "",
) -> Template:
    """One run's figures and its quarantined rows (row number, reason, file); with
    `cells=shown`, each row's raw cells as CMS sent them, for a member holding
    complaints:read (as the API), the read audited (`phi.read`) before the page leaves."""
    principal = principal_of(request)
    run = await service.get_run(db_session, principal.tenant, run_id)
    rows = await service.quarantine_of(db_session, principal.tenant, run_id, limit=QUARANTINE_SHOWN)
    may_see = Scope.COMPLAINTS_READ in principal.scopes
    raw: dict[UUID, list[str]] = {}
    if may_see and cells == "shown":
        cipher = await crypto.cipher_for(db_session, principal.tenant)
        for q in rows:
            if q.raw is not None:
                opened = cipher.open(q.raw, field=service.RAW_FIELD, row=q.id)
                raw[q.id] = [str(c) for c in json.loads(opened)]
        if raw:
            database: Database = request.app.state.db
            await record_phi_read(
                database, principal, PhiView.QUARANTINED_ROWS,
                target_type="sync_run", target_id=run_id, rows=len(raw),
            )  # fmt: skip
    return await render(
        request, db_session, "syncs/run.html", title=f"Sync of {run.contract}",
        run=run, rows=rows, pills=OUTCOME_PILL, shown=QUARANTINE_SHOWN,
        may_see=may_see, raw=raw, showing=cells == "shown",
    )  # fmt: skip


PAGES: list[Any] = [syncs_page, set_schedule, sync_now, run_page]
