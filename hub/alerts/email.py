"""Alert email: SMTP configuration and transport, the plain-text and HTML bodies, and the
two sends (one alert at once; a day's non-critical alerts as one digest per address).

Bodies are built only from an alert's own texts, which name keys, contracts and complaints
by identifier: no secret and no PHI can reach an email.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from html import escape
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit
from uuid import UUID

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import repository
from hub.alerts.models import Alert, AlertEmail, EmailStatus, Severity
from hub.alerts.service import send_email_job
from hub.core import jobs
from hub.core.db import utcnow
from hub.settings import Settings
from hub.tenants.models import Tenant

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 6
NO_SMTP = "no SMTP server configured (HUB_SMTP_URL)"
GONE = "the recipient left the tenant or was deactivated"
RESOLVED_FIRST = "the alert resolved before its email was sent"
SEND_ERRORS = (smtplib.SMTPException, OSError, TimeoutError)
# Errors no retry can mend: the message cannot be built or encoded for this address.
UNSENDABLE = (ValueError, TypeError)


class SmtpUrlError(ValueError):
    pass


@dataclass(frozen=True)
class SmtpConfig:
    """`smtp://user:pass@host:587?starttls=true` or `smtps://…` (TLS from the start)."""

    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    implicit_tls: bool = False
    timeout: float = 30.0
    verify_tls: bool = True

    @classmethod
    def parse(cls, url: str, *, sender: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise SmtpUrlError("must start with smtp:// or smtps://")
        if not parts.hostname:
            raise SmtpUrlError("names no host")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        implicit = parts.scheme == "smtps"
        starttls = query.get("starttls", "false") in {"1", "true", "yes"}
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587 if starttls else 25),
            sender=sender,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            starttls=starttls,
            implicit_tls=implicit,
            verify_tls=query.get("verify", "true") not in {"0", "false", "no"},
        )


class Mailer(Protocol):
    sender: str

    async def send(self, message: EmailMessage) -> None:
        """Hand the message to the mail server; raise `SEND_ERRORS` when it refuses."""


class SmtpMailer:
    """The standard library's SMTP client, run in a thread so the event loop never waits."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.sender = config.sender

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer | None:
        if not settings.smtp_url:
            return None
        return cls(SmtpConfig.parse(settings.smtp_url, sender=settings.smtp_from))

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        c = self.config
        context = ssl.create_default_context()
        if not c.verify_tls:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=context)
            if c.implicit_tls
            else smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        )
        with client:
            if c.starttls:
                client.starttls(context=context)
            if c.username:
                client.login(c.username, c.password or "")
            client.send_message(message)


# Bodies ----------------------------------------------------------------------------------

SEVERITY_LABEL = {Severity.CRITICAL: "CRITICAL", Severity.WARNING: "Warning", Severity.INFO: "Info"}
ALERTS_PAGE = "/portal/alerts"


def alerts_page(public_url: str) -> str:
    """Where an email's reader acknowledges: the portal's alerts page, not the hub's root."""
    return public_url.rstrip("/") + ALERTS_PAGE


def _lines(alert: Alert, public_url: str, tenant: str) -> list[str]:
    return [
        f"[{SEVERITY_LABEL[alert.severity]}] {alert.kind.value}: {alert.subject_label}",
        f"Tenant: {tenant}",
        "",
        alert.message,
        "",
        f"Next: {alert.next_action}",
        "",
        f"Alert {alert.id} ({alert.state.value}), raised {alert.raised_at:%Y-%m-%d %H:%M} UTC.",
        f"Acknowledge it in the hub ({alerts_page(public_url)}) or with "
        f"POST /api/v1/alerts/{alert.id}/acknowledge.",
    ]


def _html_alert(alert: Alert, tenant: str) -> str:
    colour = {"critical": "#b00020", "warning": "#b26a00", "info": "#1a5fb4"}
    return (
        f'<h2 style="color:{colour[alert.severity.value]}">{escape(alert.subject_label)}: '
        f"{escape(alert.kind.value)}</h2>"
        f"<p>Tenant: {escape(tenant)}</p>"
        f"<p>{escape(alert.message)}</p>"
        f"<p><strong>Next:</strong> {escape(alert.next_action)}</p>"
        f'<p style="color:#555">Alert {alert.id} ({escape(alert.state.value)}), raised '
        f"{alert.raised_at:%Y-%m-%d %H:%M} UTC.</p>"
    )


def _message(sender: str, to: str, subject: str, text: str, html: str) -> EmailMessage:
    message = EmailMessage()
    # A header never carries a line break (a complaint ID comes from CMS's file).
    message["From"], message["To"] = sender, to
    message["Subject"] = " ".join(subject.split())
    message["Message-ID"] = make_msgid(domain="ctm-hub")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(f"<!doctype html><html><body>{html}</body></html>", subtype="html")
    return message


def alert_message(
    alert: Alert, *, sender: str, to: str, public_url: str, tenant: str
) -> EmailMessage:
    subject = (
        f"[CTM Hub] {SEVERITY_LABEL[alert.severity]}: {alert.kind.value}, {alert.subject_label}"
    )
    html = _html_alert(alert, tenant) + (
        f'<p><a href="{escape(alerts_page(public_url))}">Open the alerts</a> to acknowledge it.</p>'
    )
    text = "\n".join(_lines(alert, public_url, tenant)) + "\n"
    return _message(sender, to, subject, text, html)


def digest_message(
    alerts: Sequence[Alert],
    *,
    sender: str,
    to: str,
    day: str,
    public_url: str,
    tenants: Mapping[UUID, str],
) -> EmailMessage:
    """One email for many alerts (of every tenant the address hears from, by tenant)."""
    subject = f"[CTM Hub] Daily alert digest for {day}: {len(alerts)} alert(s)"
    text = [f"{len(alerts)} alert(s) for you since the last digest ({day}):", ""]
    html = [f"<h1>{len(alerts)} alert(s) since the last digest ({escape(day)})</h1>"]
    for alert in alerts:
        tenant = tenants.get(alert.tenant_id, "")
        text += [*_lines(alert, public_url, tenant), "", "-" * 60, ""]
        html.append(_html_alert(alert, tenant) + "<hr>")
    html.append(f'<p><a href="{escape(alerts_page(public_url))}">Open the alerts</a></p>')
    return _message(sender, to, subject, "\n".join(text), "".join(html))


# Sending ---------------------------------------------------------------------------------


async def _tenant_names(session: AsyncSession, alerts: Sequence[Alert]) -> dict[UUID, str]:
    rows = await session.execute(
        select(Tenant.id, Tenant.name).where(Tenant.id.in_({a.tenant_id for a in alerts}))
    )
    return {ident: name for ident, name in rows}


@dataclass(frozen=True, slots=True)
class SendOutcome:
    status: EmailStatus | None  # None: nothing to do (already sent or gone)
    retry_in: timedelta | None = None


def retry_delay(attempts: int) -> timedelta:
    """30 s, 60 s, 120 s … capped at 30 minutes."""
    return timedelta(seconds=min(1800, 30 * 2 ** max(0, attempts - 1)))


async def _lock_email(session: AsyncSession, email_id: UUID) -> AlertEmail | None:
    statement = select(AlertEmail).where(AlertEmail.id == email_id)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return await session.scalar(statement)


def _failed(rows: Sequence[AlertEmail], error: BaseException) -> SendOutcome:
    """Count the attempt on every row; retry later, or give up after MAX_ATTEMPTS."""
    attempts = 0
    for row in rows:
        row.attempts += 1
        row.last_error = type(error).__name__[:200]
        attempts = max(attempts, row.attempts)
    log.warning("alert email failed", error_class=type(error).__name__, attempts=attempts)
    if attempts >= MAX_ATTEMPTS:
        for row in rows:
            row.status = EmailStatus.FAILED
        return SendOutcome(EmailStatus.FAILED)
    return SendOutcome(EmailStatus.PENDING, retry_in=retry_delay(attempts))


def _unsendable(rows: Sequence[AlertEmail], error: BaseException) -> SendOutcome:
    """The message cannot be made or sent as it is (an address the mail server's protocol
    cannot carry, say): no retry can help, so the rows fail at once, saying why, instead of
    staying pending for the sweeper to send again, and fail again, every 10 minutes."""
    for row in rows:
        row.attempts += 1
        row.status, row.last_error = EmailStatus.FAILED, type(error).__name__[:200]
    log.warning("alert email cannot be sent", error_class=type(error).__name__)
    return SendOutcome(EmailStatus.FAILED)


async def _drop_unreachable(session: AsyncSession, rows: Sequence[AlertEmail]) -> list[AlertEmail]:
    """The rows whose recipient the alert may still reach; the others (their user left the
    tenant or was deactivated since the alert was raised) are settled as skipped."""
    reachable: set[UUID] = set()
    for tenant_id in {r.tenant_id for r in rows if r.user_id is not None}:
        users = {r.user_id for r in rows if r.tenant_id == tenant_id and r.user_id is not None}
        reachable |= await repository.reachable_users(session, tenant_id, users)
    kept = []
    for row in rows:
        if row.user_id is None or row.user_id in reachable:
            kept.append(row)
        else:
            row.status, row.last_error = EmailStatus.SKIPPED, GONE
    return kept


def _sent(rows: Sequence[AlertEmail], status: EmailStatus, now: datetime) -> SendOutcome:
    for row in rows:
        row.status, row.attempts = status, row.attempts + 1
        if status is EmailStatus.SENT:
            row.sent_at, row.last_error = now, None
        else:
            row.last_error = NO_SMTP
    return SendOutcome(status)


async def send_alert_email(
    session: AsyncSession, email_id: UUID, *, mailer: Mailer | None, public_url: str
) -> SendOutcome:
    """Send one owed email. Its row is locked while sending, and a row already sent is not
    sent again, so a job that runs twice sends once."""
    row = await _lock_email(session, email_id)
    if row is None or row.status is not EmailStatus.PENDING or row.is_digest:
        return SendOutcome(None)
    if not await _drop_unreachable(session, [row]):
        return SendOutcome(EmailStatus.SKIPPED)
    alert = await session.get(Alert, row.alert_id)
    if alert is None:
        return SendOutcome(None)
    if alert.resolved_at is not None and alert.severity is not Severity.CRITICAL:
        # Over before it was told (a due-soon complaint resolved meanwhile): only noise now.
        # A critical one is still told: that it happened matters even once it is over.
        row.status, row.last_error = EmailStatus.SKIPPED, RESOLVED_FIRST
        return SendOutcome(EmailStatus.SKIPPED)
    if mailer is None:
        return _sent([row], EmailStatus.SKIPPED, utcnow())
    names = await _tenant_names(session, [alert])
    try:
        message = alert_message(
            alert, sender=mailer.sender, to=row.email, public_url=public_url,
            tenant=names.get(alert.tenant_id, ""),
        )  # fmt: skip
        await mailer.send(message)
    except SEND_ERRORS as error:
        return _failed([row], error)
    except UNSENDABLE as error:
        return _unsendable([row], error)
    return _sent([row], EmailStatus.SENT, utcnow())


def digest_job(address: str, cutoff: datetime) -> jobs.Job:
    return jobs.Job(
        "alerts.send_digest",
        (address, cutoff.isoformat()),
        job_id=f"alerts.digest:{address}:{cutoff:%Y-%m-%d}",
    )


async def schedule_digests(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Enqueue one digest per address with digest emails owed from before `now`."""
    now = now or utcnow()
    addresses = (
        await session.scalars(
            select(AlertEmail.email)
            .where(
                AlertEmail.is_digest.is_(True),
                AlertEmail.status == EmailStatus.PENDING,
                AlertEmail.created_at < now,
            )
            .distinct()
        )
    ).all()
    for address in addresses:
        jobs.enqueue(session, digest_job(address, now))
    return len(addresses)


async def send_digest(
    session: AsyncSession, address: str, *, cutoff: datetime, mailer: Mailer | None, public_url: str
) -> SendOutcome:
    """One email listing every alert owed to `address` in its digest before `cutoff`."""
    statement = select(AlertEmail).where(
        AlertEmail.email == address,
        AlertEmail.is_digest.is_(True),
        AlertEmail.status == EmailStatus.PENDING,
        AlertEmail.created_at < cutoff,
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    rows = await _drop_unreachable(
        session, (await session.scalars(statement.order_by(AlertEmail.created_at))).all()
    )
    if not rows:
        return SendOutcome(None)
    if mailer is None:
        return _sent(rows, EmailStatus.SKIPPED, utcnow())
    alerts = {
        a.id: a
        for a in await session.scalars(
            select(Alert).where(Alert.id.in_({r.alert_id for r in rows}))
        )
    }
    ordered = sorted(alerts.values(), key=lambda a: (a.tenant_id, a.raised_at))
    tenants = await _tenant_names(session, ordered)
    try:
        message = digest_message(
            ordered, sender=mailer.sender, to=address, day=f"{cutoff:%Y-%m-%d}",
            public_url=public_url, tenants=tenants,
        )  # fmt: skip
        await mailer.send(message)
    except SEND_ERRORS as error:
        return _failed(rows, error)
    except UNSENDABLE as error:
        return _unsendable(rows, error)
    return _sent(rows, EmailStatus.SENT, utcnow())


def last_digest_cutoff(moment: datetime, hour: int) -> datetime:
    """The latest `hour`:00 UTC at or before `moment`: when the last digests were due."""
    at = moment.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return at if at <= moment else at - timedelta(days=1)


async def sweep(
    session: AsyncSession,
    *,
    older_than: timedelta,
    now: datetime | None = None,
    digest_hour: int | None = None,
) -> int:
    """Re-enqueue immediate emails still pending after `older_than` (Redis lost the job);
    the job id is the email id, so one still queued is not doubled. With `digest_hour`,
    also the digests owed from before the last digest time once `older_than` has passed
    since it (one per address and day: a digest still queued or retrying is not doubled,
    and one sent has nothing pending), so a lost digest goes out now, not a day later."""
    now = now or utcnow()
    swept = 0
    if digest_hour is not None:
        due = last_digest_cutoff(now - older_than, digest_hour)
        swept += await schedule_digests(session, now=due)
    cutoff = now - older_than
    ids = (
        await session.scalars(
            select(AlertEmail.id)
            .where(
                AlertEmail.status == EmailStatus.PENDING,
                AlertEmail.is_digest.is_(False),
                AlertEmail.updated_at < cutoff,
            )
            .limit(500)
        )
    ).all()
    for email_id in ids:
        jobs.enqueue(session, send_email_job(email_id))
    return swept + len(ids)
