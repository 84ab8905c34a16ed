"""For the API fuzz test: a seeded tenant whose objects the generated requests can reach, the
hub with CMS (the CTM simulator) in-process, how a generated case is sent, and the check that
every 4xx names what was wrong."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from http import HTTPStatus
from typing import Any

import httpx
import requests
import schemathesis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.conditions import endpoint_condition
from hub.alerts.service import raise_alert
from hub.app import create_app
from hub.auth import service as auth
from hub.auth.models import ROLE_SCOPES, Role
from hub.core.crypto import seal
from hub.core.db import Database, utcnow
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.simulator import SimState
from hub.ctm.simulator.app import create_simulator_app
from hub.events.models import Event
from hub.keys import service as keys
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.keys.verify import CtmVerifier
from hub.settings import Settings
from hub.syncs import service as syncs
from hub.syncs.models import QuarantinedRow, RunOutcome, SyncRun
from hub.webhooks import service as webhooks
from hub.webhooks.models import MessageStatus, WebhookMessage
from hub.webhooks.schemas import EndpointCreate
from tests.integration.complaints.support import make_complaint
from tests.support import Member, app_client, make_member, make_tenant


@dataclass
class World:
    """A tenant with an admin (the fuzzing caller, and its keys' responsible party) and one
    object of every kind the API has a path id for."""

    admin: Member
    viewer: Member  # reads; holds neither tenant:admin nor complaints:write
    path_ids: dict[str, str]  # path parameter name -> an id of the tenant's own object


async def seed_world(session: AsyncSession, settings: Settings) -> World:
    tenant = await make_tenant(session, "fuzz")
    admin = await make_member(session, tenant, email="admin@fuzz.example", role=Role.ADMIN)
    # Another member and token to read, revoke and remove: the admin's own stay usable.
    other = await make_member(session, tenant, email="case@fuzz.example", role=Role.CASEWORKER)
    viewer = await make_member(session, tenant, email="view@fuzz.example", role=Role.VIEWER)
    spare = await auth.issue_token(
        session, user=other.user, tenant_id=other.tenant_id,
        scopes=ROLE_SCOPES[Role.CASEWORKER], name="spare",
    )  # fmt: skip
    for number in ("H1234", "S5678"):
        await keys.add_contract(session, admin.principal, number=number)
    key = await keys.create_key(
        session, admin.principal,
        data=KeyCreate(
            environment="sandbox", key_id="FUZZ-KEY-1", secret="fuzz-secret",
            hpms_user_id="FUZZ01", technical_poc=TechnicalPoc("Pat", "pat@fuzz.example"),
            contracts=["H1234"], verify=False,
        ),
        verifier=None,
    )  # fmt: skip
    endpoint, _ = await webhooks.create_endpoint(
        session, admin.principal,
        data=EndpointCreate(url="https://receiver.example/hook", event_types=["*"]),
        rules=webhooks.UrlRules.from_settings(settings),
    )  # fmt: skip
    complaint = await make_complaint(session, admin.tenant_id, api_key_id=key.id)
    run = await _sync_run(session, admin, key.id)
    alert = await raise_alert(session, endpoint_condition(endpoint, "fuzzing"))
    assert alert is not None
    event = await session.scalar(
        select(Event).where(Event.tenant_id == admin.tenant_id).order_by(Event.id).limit(1)
    )
    assert event is not None
    message = WebhookMessage(
        tenant_id=admin.tenant_id, endpoint_id=endpoint.id, event_id=event.id,
        event_type=event.type, status=MessageStatus.FAILED, attempts=1,
    )  # fmt: skip
    session.add(message)
    await session.flush()
    ids = {
        "membership_id": other.membership.id, "token_id": spare.token.id, "event_id": event.id,
        "key_id": key.id, "endpoint_id": endpoint.id, "message_id": message.id,
        "alert_id": alert.id, "complaint_id": complaint.id, "run_id": run.id,
    }  # fmt: skip
    await session.commit()
    path_ids = {name: str(value) for name, value in ids.items()}
    return World(admin, viewer, path_ids | {"environment": "sandbox"})


async def _sync_run(session: AsyncSession, admin: Member, key_id: Any) -> SyncRun:
    run = SyncRun(
        tenant_id=admin.tenant_id, api_key_id=key_id, contract="H1234", trigger="schedule",
        window_start=date(2026, 1, 1), window_end=date(2026, 1, 31), started_at=utcnow(),
        outcome=RunOutcome.SUCCEEDED, rows_read=2, rows_new=1, rows_quarantined=1,
    )  # fmt: skip
    session.add(run)
    await session.flush()
    row = QuarantinedRow(
        tenant_id=admin.tenant_id, sync_run_id=run.id, contract="H1234",
        file_name="H1234_20260101.csv", row_number=2, reason="RECEIVED_DATE is not a date",
    )  # fmt: skip
    row.raw = await seal(
        session, json.dumps(["CTM-1", "H1234", "31/02/2026"]), tenant=admin.tenant_id,
        field=syncs.RAW_FIELD, row=row.id,
    )  # fmt: skip
    session.add(row)
    return run


@asynccontextmanager
async def hub_with_cms(
    settings: Settings, db: Database, redis: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The hub, verifying keys against the CTM simulator, and its CTM gateway passing calls
    on to it (the seeded key known there); both in this process and loop."""
    state = SimState(environment="sandbox")
    state.add_key(
        hpms_user="FUZZ01", contracts={"H1234"}, key_id="FUZZ-KEY-1", secret="fuzz-secret"
    )
    cms = httpx.ASGITransport(app=create_simulator_app(state))
    verifier = CtmVerifier(settings, transport=cms)
    gateway = CtmClient.for_environment(settings, CtmEnvironment.SANDBOX, transport=cms)
    try:
        async with app_client(
            create_app(
                settings,
                database=db,
                redis=redis,
                ctm_verifier=verifier,
                ctm_clients={CtmEnvironment.SANDBOX: gateway},
            )
        ) as client:
            yield client
    finally:
        await gateway.aclose()
        await verifier.aclose()


async def send(client: httpx.AsyncClient, case: schemathesis.Case) -> httpx.Response:
    """Send `case` exactly as schemathesis would (its own serialisation, through `requests`
    preparation), but through `client`, in this event loop: schemathesis's own ASGI client
    runs the app on a thread of its own, away from the loop the test's database connection
    belongs to."""
    prepared = requests.Request(**case.as_transport_kwargs(base_url=str(client.base_url))).prepare()
    assert prepared.method is not None
    assert prepared.url is not None
    headers = [
        (name.encode("latin-1"), value.encode("latin-1") if isinstance(value, str) else value)
        for name, value in prepared.headers.items()
        if name.lower() not in {"content-length", "transfer-encoding"}
    ]
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    return await client.request(prepared.method, prepared.url, headers=headers, content=body)


def clear_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """A 4xx is JSON in the hub's error shape, its status repeated, with a `detail` more
    specific than the status's name; a 400's `extra` names each field at fault as the caller
    sent it; a 401 says how to authenticate."""
    if not 400 <= response.status_code < 500:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), f"{response.status_code}: {content_type}"
    body = response.json()
    assert isinstance(body, dict), f"the error is not an object: {body!r}"
    assert set(body) <= {"status_code", "detail", "extra"}, f"not the error shape: {body!r}"
    assert body.get("status_code") == response.status_code, f"another status inside: {body!r}"
    detail = body.get("detail")
    assert isinstance(detail, str), f"no detail: {body!r}"
    assert detail.strip() not in GENERIC, f"the detail names nothing: {body!r}"
    if response.status_code == HTTPStatus.BAD_REQUEST and isinstance(body.get("extra"), list):
        names = _parameter_names(case)
        for problem in body["extra"]:
            assert problem.get("key"), f"a problem naming no field: {body!r}"
            assert problem.get("message"), f"a problem without a message: {body!r}"
            if problem.get("source") in names:
                assert problem["key"] in names[problem["source"]], f"not a sent name: {body!r}"
    if response.status_code == HTTPStatus.UNAUTHORIZED:
        challenge = response.headers.get("www-authenticate", [""])[0]
        assert challenge.startswith("Bearer"), "a 401 without a Bearer challenge"


GENERIC = {"", *(status.phrase for status in HTTPStatus)}


def _parameter_names(case: schemathesis.Case) -> dict[str, set[str]]:
    """Query and header parameter names the operation declares, by where they go."""
    names: dict[str, set[str]] = {"query": set(), "header": set()}
    for parameter in case.operation.definition.raw.get("parameters", []):
        if parameter.get("in") in names:
            names[parameter["in"]].add(parameter["name"])
    return names
