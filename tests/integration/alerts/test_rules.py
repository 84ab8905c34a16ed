"""Every rule: its condition raises exactly one alert, a repeat check does not duplicate
it, and clearing the condition resolves it. Time-based rules run on a passed-in clock."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules
from hub.alerts.models import Alert, AlertEmail, AlertKind, AlertRecipient, AlertState, Severity
from hub.audit.service import Actor
from hub.auth import service as auth
from hub.auth.models import Role
from hub.complaints.models import ResolutionState
from hub.core.db import utcnow
from hub.keys import service as keys
from hub.keys.models import Environment
from hub.keys.schemas import KeyRotate
from hub.syncs.models import SyncCursor
from hub.tenants import service as tenants
from hub.webhooks import delivery
from hub.webhooks import service as webhooks
from hub.webhooks.schemas import EndpointUpdate
from tests.integration.alerts.support import (
    POC_EMAIL,
    SECRET_CANARY,
    Plan,
    alerts_of,
    at,
    events_of,
    make_complaint,
    make_key,
    make_plan,
    open_of,
)
from tests.integration.webhooks.support import make_endpoint, principal_of
from tests.integration.webhooks.support import rules as url_rules
from tests.support import make_member


async def recipients(session: AsyncSession, alert_id: object) -> dict[str, str]:
    rows = await session.scalars(select(AlertRecipient).where(AlertRecipient.alert_id == alert_id))
    return {r.email: r.reason for r in rows}


async def rotate(session: AsyncSession, plan: Plan, key_id: UUID) -> None:
    await keys.rotate_key(
        session, plan.rp.principal, key_id=key_id,
        data=KeyRotate(key_id=f"ROT-{key_id}"[:40], secret="reissued", verify=False),
        verifier=None,
    )  # fmt: skip


class TestRotationDue:
    async def test_raised_once_escalated_at_3_and_1_days_and_resolved_by_rotation(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        due = utcnow().date() + timedelta(days=30)
        key = await make_key(session, plan, rotation_on=due)
        assert await alerts_of(session, AlertKind.KEY_ROTATION_DUE) == []
        await rules.evaluate(session, now=at(due - timedelta(days=15)))
        assert await alerts_of(session, AlertKind.KEY_ROTATION_DUE) == []

        await rules.evaluate(session, now=at(due - timedelta(days=14)))
        [alert] = await alerts_of(session, AlertKind.KEY_ROTATION_DUE)
        assert (alert.stage, alert.severity, alert.state) == (1, Severity.INFO, AlertState.OPEN)
        assert "in 14 days" in alert.message
        assert "Rotate key" in alert.next_action
        assert await recipients(session, alert.id) == {
            plan.rp.user.email: "responsible_party",
            POC_EMAIL: "technical_poc",
        }
        emails = await session.scalar(select(func.count()).select_from(AlertEmail))
        assert emails == 2

        await rules.evaluate(session, now=at(due - timedelta(days=13)))
        assert len(await alerts_of(session, AlertKind.KEY_ROTATION_DUE)) == 1
        assert "in 13 days" in alert.message, "the text stays current, quietly"
        assert len(await events_of(session, "alert.raised")) == 1
        assert await session.scalar(select(func.count()).select_from(AlertEmail)) == 2

        for days, stage in ((3, 2), (1, 3)):
            await rules.evaluate(session, now=at(due - timedelta(days=days)))
            [again] = await alerts_of(session, AlertKind.KEY_ROTATION_DUE)
            assert again.id == alert.id, "escalation keeps the one open alert"
            assert (again.stage, again.severity) == (stage, Severity.WARNING)
        assert len(await events_of(session, "alert.escalated")) == 2
        assert await session.scalar(select(func.count()).select_from(AlertEmail)) == 6, (
            "each escalation re-notifies both recipients"
        )

        await rotate(session, plan, key.id)
        [done] = await alerts_of(session, AlertKind.KEY_ROTATION_DUE)
        assert done.state is AlertState.RESOLVED
        [resolved] = await events_of(session, "alert.resolved")
        assert resolved.payload["kind"] == "key.rotation_due"

    async def test_acknowledged_alert_reopens_when_it_escalates(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        due = utcnow().date() + timedelta(days=30)
        await make_key(session, plan, rotation_on=due)
        await rules.evaluate(session, now=at(due - timedelta(days=10)))
        [alert] = await alerts_of(session, AlertKind.KEY_ROTATION_DUE)
        alert.state = AlertState.ACKNOWLEDGED
        await rules.evaluate(session, now=at(due - timedelta(days=9)))
        assert alert.state is AlertState.ACKNOWLEDGED, "no new stage: stays acknowledged"
        await rules.evaluate(session, now=at(due - timedelta(days=2)))
        assert (alert.state, alert.stage) == (AlertState.OPEN, 2)


class TestKeyInvalid:
    async def test_refused_key_raises_one_critical_alert_until_rotated(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        for _ in range(2):
            await keys.mark_invalid(session, tenant_id=plan.tenant_id, key_id=key.id, reason="403")
        await rules.evaluate(session, now=utcnow())
        [alert] = await alerts_of(session, AlertKind.KEY_INVALID)
        assert alert.severity is Severity.CRITICAL
        assert await recipients(session, alert.id) == {
            plan.rp.user.email: "responsible_party",
            plan.admin.user.email: "tenant_admin",
        }
        assert await alerts_of(session, AlertKind.KEY_ORPHANED) == []
        await rotate(session, plan, key.id)
        assert alert.state is AlertState.RESOLVED

    async def test_an_active_replacement_resolves_it(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        await keys.mark_invalid(session, tenant_id=plan.tenant_id, key_id=key.id, reason="403")
        [alert] = await open_of(session, AlertKind.KEY_INVALID)
        await make_key(session, plan, replaces=key.id)
        assert alert.state is AlertState.RESOLVED
        await rules.evaluate(session, now=utcnow())
        assert await open_of(session, AlertKind.KEY_INVALID) == []


class TestKeyCompromised:
    async def test_open_until_the_rp_confirms_deactivation(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        for _ in range(2):
            await keys.report_compromise(
                session, tenant_id=plan.tenant_id, key_id=key.id,
                actor=Actor.of_principal(plan.caseworker.principal),
            )  # fmt: skip
        await rules.evaluate(session, now=utcnow())
        [alert] = await alerts_of(session, AlertKind.KEY_COMPROMISED)
        assert alert.severity is Severity.CRITICAL
        assert alert.next_action.startswith("Deactivate key KEY-")
        assert "HPMS API Key Management now" in alert.next_action
        assert await recipients(session, alert.id) == {
            plan.rp.user.email: "responsible_party",
            plan.admin.user.email: "tenant_admin",
            plan.operator.email: "vendor_operator",
        }
        await make_key(session, plan, replaces=key.id)
        await rules.evaluate(session, now=utcnow())
        assert alert.state is AlertState.OPEN, "a replacement is not the deactivation in HPMS"
        await keys.deactivate_key(session, plan.rp.principal, key_id=key.id)
        assert alert.state is AlertState.RESOLVED


class TestKeyAccessLost:
    async def test_one_alert_per_contract_for_the_rp_cleared_with_the_mapping(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        for _ in range(2):
            await keys.mark_access_lost(
                session, tenant_id=plan.tenant_id, key_id=key.id, contract="S5678", reason="403"
            )
        await rules.evaluate(session, now=utcnow())
        [alert] = await alerts_of(session, AlertKind.KEY_ACCESS_LOST)
        assert alert.details["contract"] == "S5678"
        assert "Request a new key for contract S5678" in alert.next_action
        assert await recipients(session, alert.id) == {plan.rp.user.email: "responsible_party"}
        await keys.set_contracts(session, plan.admin.principal, key_id=key.id, numbers=["H1234"])
        assert alert.state is AlertState.RESOLVED


class TestKeyOrphaned:
    async def test_rp_leaving_tells_admins_until_a_replacement_is_registered(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        await auth.remove_member(session, plan.admin.principal, membership_id=plan.rp.membership.id)
        await rules.evaluate(session, now=utcnow())
        [alert] = await alerts_of(session, AlertKind.KEY_ORPHANED)
        assert await recipients(session, alert.id) == {plan.admin.user.email: "tenant_admin"}
        assert await alerts_of(session, AlertKind.KEY_INVALID) == [], "not refused by CMS"
        await make_key(session, plan, replaces=key.id, by=plan.admin)
        assert alert.state is AlertState.RESOLVED

    async def test_the_leaving_rp_is_not_told_even_as_an_admin(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        other = await make_member(
            session, plan.admin.tenant, email="admin2@plan.example", role=Role.ADMIN
        )
        await make_key(session, plan, by=plan.admin)
        await auth.remove_member(session, other.principal, membership_id=plan.admin.membership.id)
        [alert] = await alerts_of(session, AlertKind.KEY_ORPHANED)
        assert await recipients(session, alert.id) == {other.user.email: "tenant_admin"}


class TestContractUncovered:
    async def test_each_contract_without_an_active_production_key(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        await make_key(session, plan, environment="sandbox")
        for _ in range(2):
            await rules.evaluate(session, now=utcnow())
        found = await open_of(session, AlertKind.CONTRACT_UNCOVERED)
        assert sorted(a.details["contract"] for a in found) == ["H1234", "S5678"]
        assert {email for a in found for email in await recipients(session, a.id)} == {
            plan.admin.user.email
        }
        await make_key(session, plan, contracts=("H1234",))
        [left] = await open_of(session, AlertKind.CONTRACT_UNCOVERED)
        assert left.details["contract"] == "S5678"

    async def test_suspending_the_serving_key_uncovers_and_resuming_covers(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        assert await open_of(session, AlertKind.CONTRACT_UNCOVERED) == []
        await keys.suspend_key(session, plan.rp.principal, key_id=key.id)
        assert len(await open_of(session, AlertKind.CONTRACT_UNCOVERED)) == 2
        await keys.resume_key(session, plan.rp.principal, key_id=key.id)
        assert await open_of(session, AlertKind.CONTRACT_UNCOVERED) == []


class TestSyncFailing:
    async def test_third_failure_in_a_row_raises_and_a_success_resolves(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        cursor = SyncCursor(tenant_id=plan.tenant_id, api_key_id=key.id, contract="H1234")
        session.add(cursor)
        for failures in (1, 2, 3, 4):
            cursor.consecutive_failures = failures
            await rules.on_sync_outcome(session, key=key, cursor=cursor, succeeded=False)
            await rules.evaluate(session, now=utcnow())
            assert len(await alerts_of(session, AlertKind.SYNC_FAILING)) == (failures >= 3)
        [alert] = await alerts_of(session, AlertKind.SYNC_FAILING)
        assert "failed 4 times in a row" in alert.message, "the cron keeps the count current"
        assert await recipients(session, alert.id) == {
            POC_EMAIL: "technical_poc",
            plan.admin.user.email: "tenant_admin",
        }
        cursor.consecutive_failures, cursor.last_success_at = 0, utcnow()
        await rules.on_sync_outcome(session, key=key, cursor=cursor, succeeded=True)
        assert alert.state is AlertState.RESOLVED

    async def test_no_success_for_two_intervals(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        start = utcnow()
        cursor = SyncCursor(
            tenant_id=plan.tenant_id, api_key_id=key.id, contract="S5678", last_success_at=start
        )
        session.add(cursor)
        await session.flush()
        await rules.evaluate(session, now=start + timedelta(minutes=29))
        assert await alerts_of(session, AlertKind.SYNC_FAILING) == []
        for minutes in (30, 45):
            await rules.evaluate(session, now=start + timedelta(minutes=minutes))
        [alert] = await alerts_of(session, AlertKind.SYNC_FAILING)
        assert "has not synced successfully" in alert.message
        cursor.last_success_at = start + timedelta(minutes=50)
        await rules.evaluate(session, now=start + timedelta(minutes=51))
        assert alert.state is AlertState.RESOLVED


class TestComplaintDeadlines:
    async def test_due_soon_then_overdue_then_resolved(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        due = date(2030, 3, 14)
        complaint = await make_complaint(session, plan.tenant_id, due=due)
        await rules.evaluate(session, now=at(due - timedelta(days=1), hour=23))
        assert await alerts_of(session, AlertKind.COMPLAINT_DUE_SOON) == []
        for hour in (1, 12):
            await rules.evaluate(session, now=at(due, hour=hour))
        [soon] = await alerts_of(session, AlertKind.COMPLAINT_DUE_SOON)
        assert soon.message == (
            "Complaint CTM-000123 of contract H1234 is due 2030-03-14 (end of day UTC) and is "
            "not resolved."
        )
        assert await recipients(session, soon.id) == {plan.caseworker.user.email: "caseworker"}
        for hour in (0, 5):
            await rules.evaluate(session, now=at(due + timedelta(days=1), hour=hour))
        assert soon.state is AlertState.RESOLVED
        [overdue] = await alerts_of(session, AlertKind.COMPLAINT_OVERDUE)
        assert "was due 2030-03-14" in overdue.message
        # Resolved here, past the deadline, but not yet at CMS (its key cannot upload, say):
        # CMS counts it late, so the alert stays, saying what is missing now.
        complaint.resolution_state = ResolutionState.QUEUED
        await rules.evaluate(session, now=at(due + timedelta(days=2)))
        assert overdue.state is AlertState.OPEN
        assert overdue.message.endswith("and its resolution has not reached CMS.")
        assert "not uploaded" in overdue.next_action
        complaint.resolution_state = ResolutionState.ACCEPTED
        await rules.evaluate(session, now=at(due + timedelta(days=2), hour=13))
        assert overdue.state is AlertState.RESOLVED
        assert overdue.resolved_reason == "the complaint was resolved"

    async def test_a_resolution_queued_before_the_deadline_raises_no_due_soon_alert(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        due = date(2030, 3, 14)
        for state in (ResolutionState.QUEUED, ResolutionState.UPLOADING):
            await make_complaint(
                session, plan.tenant_id, due=due, complaint_id=f"CTM-{state.value}", state=state
            )
        await rules.evaluate(session, now=at(due, hour=12))  # due soon, not yet late
        assert await alerts_of(session, AlertKind.COMPLAINT_DUE_SOON) == []
        await rules.evaluate(session, now=at(due + timedelta(days=1), hour=1))
        overdue = await alerts_of(session, AlertKind.COMPLAINT_OVERDUE)
        assert sorted(a.details["complaint_id"] for a in overdue) == [
            "CTM-queued",
            "CTM-uploading",
        ]

    async def test_rejected_resolution_is_still_unresolved(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        due = date(2030, 3, 14)
        await make_complaint(session, plan.tenant_id, due=due, state=ResolutionState.REJECTED)
        await make_complaint(
            session, plan.tenant_id, due=due, complaint_id="CTM-ACCEPTED",
            state=ResolutionState.ACCEPTED,
        )  # fmt: skip
        await rules.evaluate(session, now=at(due + timedelta(days=3)))
        [alert] = await alerts_of(session, AlertKind.COMPLAINT_OVERDUE)
        assert alert.details["complaint_id"] == "CTM-000123"

    async def test_a_sandbox_complaint_says_so(self, session: AsyncSession) -> None:
        """The same complaint ID may be in both environments: the alert says which."""
        plan = await make_plan(session)
        due = date(2030, 3, 14)
        await make_complaint(session, plan.tenant_id, due=due, environment=Environment.SANDBOX)
        await rules.evaluate(session, now=at(due + timedelta(days=1), hour=1))
        [alert] = await alerts_of(session, AlertKind.COMPLAINT_OVERDUE)
        assert alert.subject_label == "complaint CTM-000123 (H1234, sandbox)"
        assert alert.message.startswith("Complaint CTM-000123 of contract H1234 (sandbox) was due")
        assert alert.details["environment"] == "sandbox"


class TestWebhookEndpointDisabled:
    async def test_disabling_raises_and_reenabling_resolves(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        endpoint, _ = await make_endpoint(session, plan.admin, url="https://hooks.plan.example/x")
        now = utcnow()
        await delivery.disable_endpoint(session, endpoint, reason="failing since Monday", now=now)
        await rules.evaluate(session, now=now)
        [alert] = await alerts_of(session, AlertKind.WEBHOOK_ENDPOINT_DISABLED)
        assert "hooks.plan.example" in alert.message
        assert f"/api/v1/webhooks/endpoints/{endpoint.id}/recover" in alert.next_action
        assert await recipients(session, alert.id) == {plan.admin.user.email: "tenant_admin"}
        await webhooks.update_endpoint(
            session, principal_of(plan.admin), endpoint_id=endpoint.id,
            changes=EndpointUpdate(is_enabled=True), rules=url_rules(),
        )  # fmt: skip
        await rules.evaluate(session, now=now)
        assert alert.state is AlertState.RESOLVED
        assert alert.resolved_reason == "the endpoint was enabled again"


class TestEvents:
    async def test_raise_and_resolve_are_outbox_events_without_secrets(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
        )
        await keys.deactivate_key(session, plan.rp.principal, key_id=key.id)
        raised = [
            e for e in await events_of(session, "alert.raised")
            if e.payload["kind"] == "key.compromised"
        ]  # fmt: skip
        resolved = [
            e for e in await events_of(session, "alert.resolved")
            if e.payload["kind"] == "key.compromised"
        ]  # fmt: skip
        assert len(raised) == len(resolved) == 1
        assert raised[0].tenant_id == plan.tenant_id
        assert raised[0].payload["subject"] == {
            "type": "key", "id": str(key.id), "label": raised[0].payload["subject"]["label"],
        }  # fmt: skip
        assert resolved[0].payload["state"] == "resolved"
        assert SECRET_CANARY not in repr([e.payload for e in raised + resolved])


class TestOffboardedTenant:
    async def test_its_alerts_resolve_and_no_new_ones_are_raised(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        await rules.evaluate(session, now=utcnow())
        assert len(await open_of(session, AlertKind.CONTRACT_UNCOVERED)) == 2
        await make_complaint(session, plan.tenant_id, due=date(2030, 1, 1))
        await tenants.offboard_tenant(session, tenant=plan.admin.tenant, operator=plan.operator)
        await rules.evaluate(session, now=at(date(2030, 1, 5)))
        assert await alerts_of(session, AlertKind.COMPLAINT_OVERDUE) == []
        assert await open_of(session, AlertKind.CONTRACT_UNCOVERED) == []


class TestOneOpenAlertPerCondition:
    async def test_the_database_refuses_a_second_open_alert_for_a_condition(
        self, session: AsyncSession
    ) -> None:
        await make_plan(session)
        await rules.evaluate(session, now=utcnow())
        first = (await open_of(session, AlertKind.CONTRACT_UNCOVERED))[0]
        twin = Alert(
            tenant_id=first.tenant_id, kind=first.kind, severity=first.severity,
            dedupe_key=first.dedupe_key, subject_type=first.subject_type,
            subject_id=first.subject_id, subject_label="twin", message="m", next_action="n",
            details={}, raised_at=utcnow(),
        )  # fmt: skip
        with pytest.raises(IntegrityError):
            async with session.begin_nested():
                session.add(twin)
                await session.flush()
        first.state, first.resolved_at = AlertState.RESOLVED, utcnow()
        await session.flush()
        await rules.evaluate(session, now=utcnow())
        again = await open_of(session, AlertKind.CONTRACT_UNCOVERED)
        assert len(again) == 2
        assert first.id not in {a.id for a in again}, "a new alert once the first resolved"
