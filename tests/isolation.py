"""What the tenant-isolation sweep needs to call every /api/v1 route with tenant A's objects.

`tests/integration/test_tenant_isolation.py` walks the app's route table. For each path
parameter it asks OBJECT_FACTORIES for an object of tenant A; for each route with a body it
takes REQUEST_BODIES[(method, path)]. A new route whose parameter or body is missing here
fails the sweep with a message saying what to add — so no route escapes the check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth import service as auth
from hub.auth.models import Role, Scope
from hub.core.ids import TenantID
from hub.events.service import record_event
from tests.support import Member, make_member

# A factory returns an object id (or, for a path parameter that names no row, its value).
ObjectFactory = Callable[[AsyncSession, Member], Awaitable[UUID | str]]


async def _membership(session: AsyncSession, owner: Member) -> UUID:
    other = await make_member(
        session, owner.tenant, email=f"member-{uuid7_hex()}@a.example", role=Role.VIEWER
    )
    return other.membership.id


async def _token(session: AsyncSession, owner: Member) -> UUID:
    issued = await auth.issue_token(
        session,
        user=owner.user,
        tenant_id=owner.tenant_id,
        scopes=frozenset({Scope.COMPLAINTS_READ}),
        name="victim",
    )
    return issued.token.id


async def _event(session: AsyncSession, owner: Member) -> UUID:
    event = record_event(session, TenantID(owner.tenant.id), "test.private", {"n": 1})
    await session.flush()
    return event.id


async def _api_key(session: AsyncSession, owner: Member) -> UUID:
    from hub.keys import repository as keys_repository
    from hub.keys import service as keys_service
    from hub.keys.schemas import KeyCreate, TechnicalPoc

    if not await keys_repository.contracts_by_number(session, owner.tenant_id, ["H1234"]):
        await keys_service.add_contract(session, owner.principal, number="H1234")
    key = await keys_service.create_key(
        session,
        owner.principal,
        data=KeyCreate(
            environment="sandbox",
            key_id=f"ISO-{uuid7_hex()}",
            secret="isolation-secret",
            hpms_user_id="ISOUSER",
            technical_poc=TechnicalPoc("Pat Poc", "poc@a.example"),
            contracts=["H1234"],
            verify=False,
        ),
        verifier=None,
    )
    return key.id


async def _webhook_endpoint(session: AsyncSession, owner: Member) -> UUID:
    from tests.integration.webhooks.support import make_endpoint

    endpoint, _ = await make_endpoint(session, owner, url="https://receiver.example/hook")
    return endpoint.id


async def _webhook_message(session: AsyncSession, owner: Member) -> UUID:
    from tests.integration.webhooks.support import make_delivered_message

    return (await make_delivered_message(session, owner)).id


async def _complaint(session: AsyncSession, owner: Member) -> UUID:
    from datetime import date

    from tests.integration.complaints.support import make_complaint

    complaint = await make_complaint(session, owner.tenant_id, received=date(2020, 1, 1))
    return complaint.id


async def _resolution(session: AsyncSession, owner: Member) -> UUID:
    """A resolution whose upload is in doubt (what the settle route takes), of the complaint
    made last for `complaint_id` (a route names both), so the owner reaches it."""
    from datetime import date

    from sqlalchemy import select

    from hub.complaints.models import Complaint, Resolution, ResolutionState
    from hub.complaints.resolutions import SUMMARY_FIELD
    from hub.core import crypto
    from hub.core.db import utcnow
    from hub.core.ids import uuid7

    complaint = await session.scalar(
        select(Complaint)
        .where(Complaint.tenant_id == owner.tenant_id)
        .order_by(Complaint.id.desc())
        .limit(1)
    )
    if complaint is None:
        complaint = await session.get(Complaint, await _complaint(session, owner))
    assert complaint is not None
    complaint.resolution_state = ResolutionState.UPLOADING
    resolution = Resolution(
        id=uuid7(), tenant_id=owner.tenant_id, complaint_pk=complaint.id, contract="H1234",
        complaint_id=complaint.complaint_id, resolution_date=date(2020, 1, 2),
        state=ResolutionState.UPLOADING, idempotency_key=f"iso-{uuid7_hex()}",
        upload_batch=uuid7(), uploaded_at=utcnow(), in_doubt_since=utcnow(),
    )  # fmt: skip
    resolution.summary = await crypto.seal(
        session, "probe", tenant=owner.tenant_id, field=SUMMARY_FIELD, row=resolution.id
    )
    session.add(resolution)
    await session.flush()
    return resolution.id


async def _sync_run(session: AsyncSession, owner: Member) -> UUID:
    from datetime import date

    from hub.core.db import utcnow
    from hub.syncs.models import QuarantinedRow, RunOutcome, SyncRun

    run = SyncRun(
        tenant_id=owner.tenant_id, contract="H1234", trigger="manual",
        window_start=date(2020, 1, 1), window_end=date(2020, 1, 2), started_at=utcnow(),
        outcome=RunOutcome.SUCCEEDED,
    )  # fmt: skip
    session.add(run)
    await session.flush()
    session.add(
        QuarantinedRow(
            tenant_id=owner.tenant_id,
            sync_run_id=run.id,
            contract="H1234",
            file_name="H1234.csv",
            row_number=3,
            reason="RECEIVED_DATE is not a date",
        )
    )
    await session.flush()
    return run.id


async def _environment(session: AsyncSession, owner: Member) -> str:
    """Schedules are named by environment: tenant A has a sandbox key, tenant B none."""
    await _api_key(session, owner)
    return "sandbox"


async def _contract(session: AsyncSession, owner: Member) -> str:
    """A contract number of tenant A's (the one its keys here cover)."""
    from hub.keys import repository as keys_repository
    from hub.keys import service as keys_service

    if not await keys_repository.contracts_by_number(session, owner.tenant_id, ["H1234"]):
        await keys_service.add_contract(session, owner.principal, number="H1234")
    return "H1234"


async def _alert(session: AsyncSession, owner: Member) -> UUID:
    from hub.alerts.models import AlertKind, Severity, SubjectType
    from hub.alerts.service import Audience, Condition, raise_alert
    from hub.core.ids import uuid7

    alert = await raise_alert(
        session,
        Condition(
            tenant_id=owner.tenant_id,
            kind=AlertKind.CONTRACT_UNCOVERED,
            severity=Severity.WARNING,
            subject_type=SubjectType.CONTRACT,
            subject_id=uuid7(),
            subject_label="contract H1234",
            message="Contract H1234 has no active production key.",
            next_action="Register one.",
            audience=frozenset({Audience.TENANT_ADMIN}),
        ),
    )
    assert alert is not None
    return alert.id


def uuid7_hex() -> str:
    from hub.core.ids import uuid7

    return uuid7().hex[-12:]


# Path parameter name → how to make one of tenant A's objects for it.
OBJECT_FACTORIES: dict[str, ObjectFactory] = {
    "membership_id": _membership,
    "token_id": _token,
    "event_id": _event,
    "endpoint_id": _webhook_endpoint,
    "message_id": _webhook_message,
    "key_id": _api_key,
    "alert_id": _alert,
    "complaint_id": _complaint,
    "resolution_id": _resolution,
    "run_id": _sync_run,
    "environment": _environment,
    "contract": _contract,
}

# (method, path template) → a valid body, so a 404 is not masked by a 400.
REQUEST_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/webhooks/endpoints"): {
        "url": "https://receiver.example/hook",
        "event_types": ["complaint.*"],
    },
    ("PATCH", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}"): {"description": "probe"},
    ("POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/rotate-secret"): {},
    ("POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/recover"): {
        "since": "2020-01-01T00:00:00Z"
    },
    ("POST", "/api/v1/webhooks/endpoints/{endpoint_id:uuid}/test"): {},
    ("POST", "/api/v1/webhooks/messages/{message_id:uuid}/resend"): {},
    ("POST", "/api/v1/tokens"): {"name": "probe", "scopes": ["complaints:read"]},
    ("POST", "/api/v1/contracts"): {"number": "S9999"},
    ("POST", "/api/v1/complaints/search"): {"beneficiary": "1EG4-TE5-MK72"},
    ("POST", "/api/v1/keys"): {
        "environment": "sandbox",
        "key_id": "ISO-PROBE",
        "secret": "probe-secret",
        "hpms_user_id": "ISOUSER",
        "technical_poc": {"name": "Pat Poc", "email": "poc@a.example"},
        "contracts": ["H1234"],
        "verify": False,
    },
    ("POST", "/api/v1/keys/{key_id:uuid}/rotate"): {
        "key_id": "ISO-ROTATED",
        "secret": "rotated-secret",
        "verify": False,
    },
    ("POST", "/api/v1/keys/{key_id:uuid}/compromise"): {"reason": "probe"},
    ("POST", "/api/v1/keys/{key_id:uuid}/deactivate"): {},
    ("POST", "/api/v1/keys/{key_id:uuid}/suspend"): {},
    ("POST", "/api/v1/keys/{key_id:uuid}/resume"): {},
    ("POST", "/api/v1/keys/{key_id:uuid}/contracts/{contract:str}/restore"): {},
    ("PUT", "/api/v1/keys/{key_id:uuid}/contracts"): {"contracts": ["H1234"]},
    ("PUT", "/api/v1/keys/{key_id:uuid}/designees"): {"users": [], "tokens": []},
    ("POST", "/api/v1/alerts/{alert_id:uuid}/acknowledge"): {},
    ("PUT", "/api/v1/alerts/preferences"): {"email": "digest"},
    ("POST", "/api/v1/complaints/{complaint_id:uuid}/resolutions"): {
        "resolution_date": "2020-01-02",
        "summary": "Called the plan; the refill was approved.",
        "complainant_satisfied": "Y",
    },
    ("POST", "/api/v1/complaints/{complaint_id:uuid}/resolutions/{resolution_id:uuid}/settle"): {
        "outcome": "accepted"
    },
    ("PUT", "/api/v1/syncs/schedules/{environment:str}"): {"interval_minutes": 30},
    ("POST", "/api/v1/syncs/run"): {},
    ("POST", "/api/v1/keys/{key_id:uuid}/tokens"): {"name": "probe"},
    # Multipart in real use; tenant B is refused (404) before any body is read.
    ("POST", "/api/v1/gateway/{environment:str}/api/ctm/casework/upload"): {},
    ("POST", "/api/v1/gateway/{environment:str}/api/idm/OAuth/token"): {
        "keyId": "K",
        "keySecret": "hub_x",
    },
}

# Routes that take no bearer token: the credential is in the body (CMS's token call at the
# gateway). The sweep's bearer-token checks do not apply; their own tests cover tenancy.
OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {("POST", "/api/v1/gateway/{environment:str}/api/idm/OAuth/token")}
)
