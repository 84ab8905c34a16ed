"""Alert email through a real SMTP server in-process: who receives what, preferences,
critical alerts through "off", the daily digest, STARTTLS with a login, retries, and a
canary check that no secret and no PHI is ever in a message."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import email, rules, service
from hub.alerts.email import SmtpConfig, SmtpMailer, SmtpUrlError
from hub.alerts.models import (
    Alert,
    AlertKind,
    AlertState,
    EmailMode,
    EmailStatus,
    Severity,
    SubjectType,
)
from hub.audit.service import Actor
from hub.core import jobs
from hub.core.db import utcnow
from hub.core.ids import uuid7
from hub.keys import service as keys
from hub.settings import SettingsError, load_settings
from tests.integration.alerts.support import (
    PHI_CANARY,
    POC_EMAIL,
    PUBLIC_URL,
    SECRET_CANARY,
    Plan,
    Sink,
    alerts_of,
    at,
    free_port,
    make_complaint,
    make_key,
    make_plan,
    open_of,
    owed,
    send_all,
    smtp_sink,
)


async def compromise(session: AsyncSession, plan: Plan) -> None:
    key = await make_key(session, plan, key_id="KEY-COMPROMISED-1", environment="sandbox")
    await keys.report_compromise(
        session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
    )


class TestImmediate:
    async def test_critical_alert_reaches_rp_admins_and_operators_with_both_bodies(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        await compromise(session, plan)
        outcomes = await send_all(session, mailer)
        assert {o.status for o in outcomes} == {EmailStatus.SENT}
        addresses = sorted(r for m in received.received for r in m.recipients)
        assert addresses == sorted([plan.rp.user.email, plan.admin.user.email, plan.operator.email])
        message = received.to(plan.rp.user.email)[0]
        assert message.subject.startswith("[CTM Hub] CRITICAL: key.compromised")
        assert message.message["From"] == "CTM Hub <alerts@hub.example>"
        text, html = message.part("plain"), message.part("html")
        assert "Deactivate key KEY-COMPROMISED-1 in HPMS API Key Management now" in text
        assert "Tenant: Plan" in text
        assert "<strong>Next:</strong> Deactivate key KEY-COMPROMISED-1" in html
        # Straight to the page where it is acknowledged, not the hub's root.
        assert f'href="{PUBLIC_URL}/portal/alerts"' in html
        assert f"({PUBLIC_URL}/portal/alerts)" in text
        assert f'href="{PUBLIC_URL}"' not in html
        assert all(row.status is EmailStatus.SENT for row in await owed(session))

    async def test_a_job_that_runs_twice_sends_once(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        await compromise(session, plan)
        await send_all(session, mailer)
        again = await send_all(session, mailer)
        assert {o.status for o in again} == {None}
        assert len(received.received) == 3

    async def test_technical_poc_without_an_account_is_emailed_by_address(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        due = utcnow().date() + timedelta(days=20)
        await make_key(session, plan, rotation_on=due)
        await rules.evaluate(session, now=at(due - timedelta(days=5)))
        await send_all(session, mailer)
        assert sorted(r for m in received.received for r in m.recipients) == sorted(
            [POC_EMAIL, plan.rp.user.email]
        )
        assert "due for rotation" in received.to(POC_EMAIL)[0].part("plain")


class TestPreferences:
    async def test_an_alert_over_before_its_email_is_told_only_if_critical(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        key = await make_key(session, plan, environment="sandbox")
        await keys.mark_access_lost(
            session, tenant_id=plan.tenant_id, key_id=key.id, contract="S5678", reason="403"
        )
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
        )
        await keys.deactivate_key(session, plan.rp.principal, key_id=key.id)
        assert await open_of(session, AlertKind.KEY_ACCESS_LOST) == []
        assert await open_of(session, AlertKind.KEY_COMPROMISED) == []
        await send_all(session, mailer)
        subjects = [m.subject for m in received.to(plan.rp.user.email)]
        assert any("key.compromised" in s for s in subjects), "a critical one is still told"
        assert not any("key.access_lost" in s for s in subjects), "a warning over is noise"
        skipped = [r for r in await owed(session) if r.status is EmailStatus.SKIPPED]
        assert skipped
        assert {r.last_error for r in skipped} == {email.RESOLVED_FIRST}

    async def test_off_silences_non_critical_but_not_critical(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        await service.set_email_mode(session, plan.rp.user.id, EmailMode.OFF)
        key = await make_key(session, plan, environment="sandbox")
        await keys.mark_access_lost(
            session, tenant_id=plan.tenant_id, key_id=key.id, contract="S5678", reason="403"
        )
        assert len(await alerts_of(session, AlertKind.KEY_ACCESS_LOST)) == 1
        assert await owed(session) == [], "the RP turned non-critical email off"
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
        )
        await send_all(session, mailer)
        assert received.to(plan.rp.user.email), "a critical alert ignores off"

    async def test_digest_gathers_a_days_non_critical_alerts_into_one_email(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        await service.set_email_mode(session, plan.admin.user.id, EmailMode.DIGEST)
        day = utcnow().date()
        await make_key(session, plan, environment="sandbox", contracts=("H1234",))
        await rules.evaluate(session, now=at(day))  # H1234 and S5678 uncovered
        key = await make_key(session, plan, key_id="KEY-CRIT-9", environment="sandbox")
        await keys.mark_invalid(session, tenant_id=plan.tenant_id, key_id=key.id, reason="403")
        await send_all(session, mailer)
        [critical] = received.to(plan.admin.user.email)
        assert "key.invalid" in critical.subject, "a critical alert is not held for the digest"

        cutoff = utcnow() + timedelta(seconds=1)
        assert await email.schedule_digests(session, now=cutoff) == 1
        outcome = await email.send_digest(
            session, plan.admin.user.email, cutoff=cutoff, mailer=mailer, public_url=PUBLIC_URL
        )
        assert outcome.status is EmailStatus.SENT
        digests = [m for m in received.to(plan.admin.user.email) if "digest" in m.subject]
        assert len(digests) == 1
        text = digests[0].part("plain")
        assert "contract H1234" in text
        assert "contract S5678" in text
        assert "key.invalid" not in text
        assert "2 alert(s)" in digests[0].subject
        assert f'href="{PUBLIC_URL}/portal/alerts"' in digests[0].part("html")
        assert f"({PUBLIC_URL}/portal/alerts)" in text
        assert await email.schedule_digests(session, now=cutoff) == 0, "nothing owed twice"

    async def test_a_digest_whose_job_redis_lost_goes_out_at_the_next_sweep(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        await service.set_email_mode(session, plan.admin.user.id, EmailMode.DIGEST)
        day = utcnow().date()
        await make_key(session, plan, environment="sandbox", contracts=("H1234",))
        await rules.evaluate(session, now=at(day))  # uncovered contracts: digest emails owed
        owed_at = datetime.combine(day - timedelta(days=1), time(9), tzinfo=UTC)
        for row in await owed(session):
            row.created_at = owed_at  # before yesterday's 13:00 digest, whose job was lost
        await session.flush()

        def digests_queued() -> list[tuple[Any, ...]]:
            return [
                j.args for j in jobs.pending_jobs(session) if j.function == "alerts.send_digest"
            ]

        too_soon = datetime.combine(day - timedelta(days=1), time(13, 5), tzinfo=UTC)
        await email.sweep(session, older_than=timedelta(minutes=10), now=too_soon, digest_hour=13)
        assert digests_queued() == [], "the digest job may still be on its way"
        later = datetime.combine(day - timedelta(days=1), time(13, 30), tzinfo=UTC)
        await email.sweep(session, older_than=timedelta(minutes=10), now=later, digest_hour=13)
        cutoff = datetime.combine(day - timedelta(days=1), time(13), tzinfo=UTC)
        assert digests_queued() == [(plan.admin.user.email, cutoff.isoformat())]
        assert email.digest_job(plan.admin.user.email, cutoff).job_id == (
            email.digest_job(plan.admin.user.email, later).job_id
        ), "the cron's own job for that day has the same id: a queued one is not doubled"

    async def test_preference_defaults_to_immediate(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        assert await service.email_mode_of(session, plan.rp.user.id) is EmailMode.IMMEDIATE


class TestNoSecretNoPhi:
    async def test_canaries_never_reach_a_message(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        due = date(2030, 5, 2)
        await make_complaint(session, plan.tenant_id, due=due)
        await rules.evaluate(session, now=at(due + timedelta(days=1)))
        await compromise(session, plan)
        await send_all(session, mailer)
        complaint_mail = received.to(plan.caseworker.user.email)
        assert len(complaint_mail) == 1
        text = complaint_mail[0].part("plain")
        assert "CTM-000123" in text
        assert "H1234" in text
        assert "2030-05-02" in text
        everything = "\n".join(m.raw for m in received.received)
        kinds = sorted(m.subject.split(": ")[1].split(",")[0] for m in received.received)
        assert kinds == ["complaint.overdue"] + ["contract.uncovered"] * 2 + ["key.compromised"] * 3
        assert SECRET_CANARY not in everything
        assert PHI_CANARY not in everything


class TestTransport:
    async def test_starttls_and_login(self, session: AsyncSession, tmp_path: Path) -> None:
        with smtp_sink(tls_dir=tmp_path) as (received, url):
            config = SmtpConfig.parse(url, sender="alerts@hub.example")
            assert (config.starttls, config.username, config.verify_tls) == (True, "hub", False)
            assert "smtp-pass" not in repr(config)
            plan = await make_plan(session)
            await compromise(session, plan)
            outcomes = await send_all(session, SmtpMailer(config))
        assert {o.status for o in outcomes} == {EmailStatus.SENT}
        assert received.logins == ["hub"] * 3
        assert len(received.received) == 3

    async def test_unreachable_server_retries_then_gives_up(self, session: AsyncSession) -> None:
        dead = SmtpMailer(SmtpConfig(host="127.0.0.1", port=free_port(), sender="a@b.example"))
        plan = await make_plan(session)
        await compromise(session, plan)
        [row, *_] = [r for r in await owed(session) if r.email == plan.rp.user.email]
        first = await email.send_alert_email(session, row.id, mailer=dead, public_url=PUBLIC_URL)
        assert first.status is EmailStatus.PENDING
        assert first.retry_in == timedelta(seconds=30)
        assert (row.attempts, row.last_error) == (1, "ConnectionRefusedError")
        for _ in range(email.MAX_ATTEMPTS - 1):
            last = await email.send_alert_email(session, row.id, mailer=dead, public_url=PUBLIC_URL)
        assert last.status is EmailStatus.FAILED
        assert last.retry_in is None

    async def test_an_email_that_cannot_be_made_fails_at_once_not_every_ten_minutes(
        self, session: AsyncSession, sink: tuple[Sink, SmtpMailer]
    ) -> None:
        received, mailer = sink
        plan = await make_plan(session)
        await compromise(session, plan)
        [row, *_] = await owed(session)
        row.email = "broken\naddress@plan.example"  # no message can carry this header
        outcome = await email.send_alert_email(
            session, row.id, mailer=mailer, public_url=PUBLIC_URL
        )
        assert outcome.status is EmailStatus.FAILED
        assert outcome.retry_in is None
        assert (row.status, row.attempts, row.last_error) == (EmailStatus.FAILED, 1, "ValueError")
        assert received.received == []

    async def test_without_smtp_emails_are_skipped(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        await compromise(session, plan)
        outcomes = await send_all(session, None)
        assert {o.status for o in outcomes} == {EmailStatus.SKIPPED}

    def test_smtp_url_is_checked_and_its_password_never_shown(self) -> None:
        settings = load_settings(smtp_url="smtps://u:p%40ss@mail.example")
        config = SmtpConfig.parse(settings.smtp_url or "", sender=settings.smtp_from)
        assert (config.host, config.port, config.implicit_tls) == ("mail.example", 465, True)
        assert config.password == "p@ss"
        assert "p%40ss" not in repr(settings)
        with pytest.raises(SettingsError, match="HUB_SMTP_URL"):
            load_settings(smtp_url="http://mail.example")
        with pytest.raises(SmtpUrlError):
            SmtpConfig.parse("smtp://", sender="x")


class TestSweeper:
    async def test_re_enqueues_emails_a_lost_redis_dropped(self, session: AsyncSession) -> None:
        plan = await make_plan(session)
        await compromise(session, plan)
        assert await email.sweep(session, older_than=timedelta(minutes=10)) == 0
        later = utcnow() + timedelta(minutes=11)
        assert await email.sweep(session, older_than=timedelta(minutes=10), now=later) == 3
        sends = [j for j in jobs.pending_jobs(session) if j.function == "alerts.send_email"]
        assert len(sends) == 3, "the same job ids: queued once"


class TestHeaders:
    def test_a_line_break_in_a_label_never_reaches_a_header(self) -> None:
        alert = Alert(
            tenant_id=uuid7(), kind=AlertKind.COMPLAINT_OVERDUE, severity=Severity.WARNING,
            state=AlertState.OPEN, dedupe_key="x", subject_type=SubjectType.COMPLAINT,
            subject_id=uuid7(), subject_label="complaint C1\r\nBcc: evil@example.com",
            message="m", next_action="n", stage=1, details={}, raised_at=utcnow(),
        )  # fmt: skip
        message = email.alert_message(
            alert, sender="a@hub.example", to="b@plan.example", public_url=PUBLIC_URL, tenant="P"
        )
        assert message["Bcc"] is None
        assert "\n" not in str(message["Subject"])
        assert "complaint C1 Bcc: evil@example.com" in str(message["Subject"])
