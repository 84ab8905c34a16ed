"""A fresh-eyes review of alerts: who may acknowledge an alert (and that it is audited),
and who is still emailed about an alert after leaving the tenant."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import email, repository, rules, service
from hub.alerts.conditions import coverage_conditions
from hub.alerts.email import SmtpMailer
from hub.alerts.models import AlertKind, EmailMode, EmailStatus, Severity
from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth import service as auth
from hub.auth.models import Role
from hub.core import jobs
from hub.core.db import Database, utcnow
from hub.events.models import Event
from hub.events.service import dispatch_job
from hub.keys import service as keys
from hub.keys.schemas import KeyRotate
from tests.integration.alerts.support import (
    POC_EMAIL,
    PUBLIC_URL,
    Sink,
    alerts_of,
    at,
    make_complaint,
    make_key,
    make_plan,
    open_of,
    owed,
    send_all,
)
from tests.support import RecordingQueue, make_member


class TestAcknowledgeIsForThoseAccountable:
    async def test_a_viewer_the_alert_is_not_for_cannot_acknowledge_a_critical_alert(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        viewer = await make_member(
            session, plan.admin.tenant, email="reader@plan.example", role=Role.VIEWER
        )
        key = await make_key(session, plan, environment="sandbox", key_id="KEY-ACK-1")
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
        )
        await session.commit()
        [alert] = (
            await client.get(
                "/api/v1/alerts", params={"kind": "key.compromised"}, headers=viewer.headers
            )
        ).json()
        refused = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=viewer.headers
        )
        assert refused.status_code == 403, refused.text
        for someone in (plan.caseworker,):  # a member it is not for, even one who may write
            also = await client.post(
                f"/api/v1/alerts/{alert['id']}/acknowledge", headers=someone.headers
            )
            assert also.status_code == 403, also.text
        still = await client.get("/api/v1/alerts/summary", headers=viewer.headers)
        assert still.json()["acknowledged"] == 0

        # The responsible party (a viewer here) is who the alert is for: they may.
        acked = await client.post(
            f"/api/v1/alerts/{alert['id']}/acknowledge", headers=plan.rp.headers
        )
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledged_by"] == str(plan.rp.user.id)

    async def test_a_viewer_may_not_acknowledge_what_is_not_theirs_but_an_admin_may(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        viewer = await make_member(
            session, plan.admin.tenant, email="reader@plan.example", role=Role.VIEWER
        )
        await rules.evaluate(session, now=utcnow())  # both contracts uncovered (warning)
        await session.commit()
        alerts = (await client.get("/api/v1/alerts", headers=viewer.headers)).json()
        first = alerts[0]["id"]
        refused = await client.post(f"/api/v1/alerts/{first}/acknowledge", headers=viewer.headers)
        assert refused.status_code == 403, refused.text
        acked = await client.post(f"/api/v1/alerts/{first}/acknowledge", headers=plan.admin.headers)
        assert acked.status_code == 200, acked.text

    async def test_an_acknowledgement_is_audited_once(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan, environment="sandbox", key_id="KEY-ACK-2")
        await keys.mark_invalid(session, tenant_id=plan.tenant_id, key_id=key.id, reason="403")
        await session.commit()
        [alert] = (
            await client.get("/api/v1/alerts", params={"kind": "key.invalid"},
                             headers=plan.admin.headers)
        ).json()  # fmt: skip
        for _ in range(2):
            acked = await client.post(
                f"/api/v1/alerts/{alert['id']}/acknowledge", headers=plan.admin.headers
            )
            assert acked.status_code == 200, acked.text
        entries = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "alert.acknowledged", AuditEntry.target_id == alert["id"]
                )
            )
        ).all()
        assert len(entries) == 1, "acknowledging is a state change: audited, once"
        [entry] = entries
        assert entry.actor_id == plan.admin.user.id
        assert entry.tenant_id == plan.tenant_id
        assert entry.details["kind"] == "key.invalid"
        assert entry.details["severity"] == "critical"
        assert timedelta(0) <= utcnow() - entry.occurred_at < timedelta(minutes=5)


class TestEmailOnlyReachesPeopleStillThere:
    """An email is owed when an alert is raised and sent later (a queue, retries, the
    next day's digest): by then its recipient may have left the tenant or been
    deactivated, and must not read the tenant's alerts any more."""

    async def test_a_removed_member_gets_no_pending_email(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        due = date(2030, 5, 2)
        await make_complaint(session, plan.tenant_id, due=due)
        await rules.evaluate(session, now=at(due + timedelta(days=1)))  # overdue: caseworker
        assert plan.caseworker.user.email in {r.email for r in await owed(session)}
        await auth.remove_member(
            session, plan.admin.principal, membership_id=plan.caseworker.membership.id
        )
        await send_all(session, mailer, pending_only=True)
        assert received.to(plan.caseworker.user.email) == []
        assert received.to(plan.admin.user.email), "the others are still told"
        [row] = [r for r in await owed(session) if r.email == plan.caseworker.user.email]
        assert row.status is EmailStatus.SKIPPED, "settled, so no sweep sends it later"

    async def test_a_deactivated_user_gets_no_pending_email(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        key = await make_key(session, plan, environment="sandbox", key_id="KEY-GONE-1")
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
        )
        plan.operator.is_active = False  # the vendor deactivated the operator's account
        await session.flush()
        await send_all(session, mailer, pending_only=True)
        assert received.to(plan.operator.email) == []
        assert received.to(plan.rp.user.email)
        assert received.to(plan.admin.user.email)

    async def test_a_removed_member_is_left_out_of_the_digest(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        second = await make_member(
            session, plan.admin.tenant, email="admin2@plan.example", role=Role.ADMIN
        )
        await service.set_email_mode(session, second.user.id, EmailMode.DIGEST)
        await rules.evaluate(session, now=utcnow())  # H1234 and S5678 uncovered: admins
        assert len([r for r in await owed(session) if r.email == second.user.email]) == 2
        await auth.remove_member(session, plan.admin.principal, membership_id=second.membership.id)
        cutoff = utcnow() + timedelta(seconds=1)
        await email.schedule_digests(session, now=cutoff)
        await email.send_digest(
            session, second.user.email, cutoff=cutoff, mailer=mailer, public_url=PUBLIC_URL
        )
        assert received.to(second.user.email) == [], "a digest of a tenant they left"
        assert await email.schedule_digests(session, now=cutoff) == 0, "nothing left owed"

    async def test_an_escalation_does_not_tell_a_deactivated_recipient(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        due = utcnow().date() + timedelta(days=30)
        await make_key(session, plan, rotation_on=due)
        await rules.evaluate(session, now=at(due - timedelta(days=10)))
        [alert] = await alerts_of(session, AlertKind.KEY_ROTATION_DUE)
        plan.rp.user.is_active = False
        await session.flush()
        await rules.evaluate(session, now=at(due - timedelta(days=2)))
        assert alert.stage == 2
        stage_2 = {r.email for r in await owed(session) if r.stage == 2}
        assert stage_2 == {POC_EMAIL}


class TestALostRaceKeepsTheTransactionsJobs:
    async def test_jobs_enqueued_before_a_raise_that_lost_the_race_are_still_sent(
        self, db: Database, queue: RecordingQueue, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two transactions raise the same condition at once (the cron and a key change
        both find a contract uncovered): the unique index lets one in, the other's insert
        fails in a savepoint. The loser's transaction goes on and commits: the jobs it had
        enqueued before (a compromised key's critical emails, its events' dispatch) must
        still be sent, not left for the sweepers minutes later."""
        async with db.transaction() as session:
            plan = await make_plan(session)
        async with db.transaction() as session:
            [first, _] = await coverage_conditions(session, plan.tenant_id)
            assert await service.raise_alert(session, first) is not None  # the winner's
        queue.sent.clear()
        async with db.transaction() as session:
            key = await make_key(session, plan, environment="sandbox", key_id="KEY-RACE-1")
            await keys.report_compromise(
                session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
            )
            [compromised] = await alerts_of(session, AlertKind.KEY_COMPROMISED)
            before = {job.job_id for job in jobs.pending_jobs(session)}
            # This transaction looked before the winner committed: it saw nothing open.
            monkeypatch.setattr(repository, "find_open", _nothing_open)
            [uncovered, _] = await coverage_conditions(session, plan.tenant_id)
            assert await service.raise_alert(session, uncovered) is None
            monkeypatch.undo()
            emails = [r.id for r in await owed(session) if r.alert_id == compromised.id]
        [raised] = [e for e in await _events(db) if e.type == "alert.raised"][-1:]
        assert len(emails) == 3
        owed_jobs = {service.send_email_job(i).job_id for i in emails}
        assert owed_jobs | {dispatch_job(raised.id).job_id} <= before
        sent = {job.job_id for job in queue.sent}
        assert before <= sent, "critical emails and the alert.raised dispatch were dropped"


async def _nothing_open(*args: object) -> None:
    return None


async def _events(db: Database) -> list[Event]:
    async with db.transaction() as session:
        return list((await session.scalars(select(Event).order_by(Event.id))).all())


class TestRotationDueAfterAnEarlyNextDate:
    async def test_a_rotation_whose_next_date_is_near_still_escalates_in_time(
        self, session: AsyncSession
    ) -> None:
        """Rotated late, with CMS's next date only 10 days off: the open alert is about the
        new date now. It must go back to its first stage, or the new date's escalations
        (3 days, 1 day) never come: they were no higher than the old, overdue stage."""
        plan = await make_plan(session)
        today = utcnow().date()
        key = await make_key(session, plan, rotation_on=today - timedelta(days=1))
        await rules.evaluate(session, now=utcnow())
        [alert] = await alerts_of(session, AlertKind.KEY_ROTATION_DUE)
        assert (alert.stage, alert.severity) == (3, Severity.WARNING)
        next_due = today + timedelta(days=10)
        await keys.rotate_key(
            session, plan.rp.principal, key_id=key.id,
            data=KeyRotate(key_id="KEY-ROT-NEAR", secret="reissued", verify=False,
                           expected_rotation_on=next_due),
            verifier=None,
        )  # fmt: skip
        [alert] = await open_of(session, AlertKind.KEY_ROTATION_DUE)
        assert next_due.isoformat() in alert.message
        assert (alert.stage, alert.severity) == (1, Severity.INFO), "the new date's first stage"
        stage_1 = len(await owed(session))

        await rules.evaluate(session, now=at(next_due - timedelta(days=3)))
        assert (alert.stage, alert.severity) == (2, Severity.WARNING)
        assert len(await owed(session)) > stage_1, "the RP is reminded 3 days before"
