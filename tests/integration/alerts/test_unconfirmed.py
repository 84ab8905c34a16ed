"""`resolution.unconfirmed`: an upload whose outcome no download could tell is left to a
person; the alert tells them, and resolves once the resolution is settled."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules
from hub.alerts.models import AlertKind, AlertState, Severity, SubjectType
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.resolutions import SUMMARY_FIELD
from hub.core import crypto
from hub.core.ids import TenantID
from tests.integration.alerts.support import (
    PHI_CANARY,
    alerts_of,
    at,
    events_of,
    make_complaint,
    make_plan,
)

DUE = date(2030, 3, 14)


async def in_doubt(
    session: AsyncSession, complaint: Complaint, *, unconfirmed: bool = True
) -> Resolution:
    """A resolution whose upload's answer was lost, given up on after three downloads."""
    tenant_id = TenantID(complaint.tenant_id)
    cipher = await crypto.cipher_for(session, tenant_id)
    began = at(DUE - timedelta(days=5))
    resolution = Resolution(
        tenant_id=tenant_id, complaint_pk=complaint.id, contract=complaint.contract,
        complaint_id=complaint.complaint_id, resolution_date=DUE - timedelta(days=5),
        state=ResolutionState.UPLOADING, idempotency_key=f"k-{complaint.complaint_id}",
        in_doubt_since=began, doubt_misses=3 if unconfirmed else 1,
        unconfirmed_at=began + timedelta(days=2) if unconfirmed else None,
    )  # fmt: skip
    resolution.summary = cipher.seal(
        f"{PHI_CANARY} resolved", field=SUMMARY_FIELD, row=resolution.id
    )
    session.add(resolution)
    complaint.resolution_state = ResolutionState.UPLOADING
    await session.flush()
    return resolution


class TestUnconfirmed:
    async def test_raised_for_a_person_and_resolved_once_settled(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        complaint = await make_complaint(session, plan.tenant_id, due=DUE)
        resolution = await in_doubt(session, complaint)
        now = at(DUE - timedelta(days=3))
        await rules.evaluate(session, now=now)
        await rules.evaluate(session, now=now + timedelta(hours=1))  # one alert, not two
        (alert,) = await alerts_of(session, AlertKind.RESOLUTION_UNCONFIRMED)
        assert (alert.state, alert.severity) == (AlertState.OPEN, Severity.WARNING)
        assert (alert.subject_type, alert.subject_id) == (SubjectType.COMPLAINT, complaint.id)
        assert alert.details["resolution_id"] == str(resolution.id)
        assert "CTM-000123" in alert.message
        assert "3 downloads" in alert.message
        settle = f"/api/v1/complaints/{complaint.id}/resolutions/{resolution.id}/settle"
        assert settle in alert.next_action
        for text in (alert.message, alert.next_action, str(alert.details)):
            assert PHI_CANARY not in text
        raised = await events_of(session, "alert.raised")
        kinds = [e.payload["kind"] for e in raised]
        assert kinds.count("resolution.unconfirmed") == 1  # the plan's contract is uncovered too

        resolution.state, resolution.unconfirmed_at = ResolutionState.ACCEPTED, None
        resolution.in_doubt_since = None
        complaint.resolution_state = ResolutionState.ACCEPTED
        await session.flush()
        await rules.evaluate(session, now=now + timedelta(hours=2))
        assert alert.state is AlertState.RESOLVED
        assert alert.resolved_reason == "the resolution was settled"

    async def test_not_raised_while_downloads_may_still_tell(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        complaint = await make_complaint(session, plan.tenant_id, due=DUE)
        await in_doubt(session, complaint, unconfirmed=False)
        await rules.evaluate(session, now=at(DUE - timedelta(days=3)))
        assert await alerts_of(session, AlertKind.RESOLUTION_UNCONFIRMED) == []
