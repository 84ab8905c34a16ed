"""Alert jobs: the rules' cron, one alert email, the daily digests, and the email sweeper."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from arq import Retry

from hub.alerts import email, rules
from hub.settings import Settings
from workers.context import WorkerContext

RUNTIME_KEY = "alerts"
# Retries are the email's own schedule; `email.MAX_ATTEMPTS` (in the database) gives up.
MAX_JOB_TRIES = email.MAX_ATTEMPTS + 1
SWEEP_AFTER = timedelta(minutes=10)
DIGEST_HOUR_UTC = 13  # morning across the US time zones


@dataclass(frozen=True, slots=True)
class AlertRuntime:
    policy: rules.AlertPolicy
    mailer: email.Mailer | None
    public_url: str


def start(ctx: dict[str, Any], settings: Settings, mailer: email.Mailer | None = None) -> None:
    """Build the mailer (none without HUB_SMTP_URL) and the rules' policy."""
    ctx[RUNTIME_KEY] = AlertRuntime(
        rules.AlertPolicy.from_settings(settings),
        mailer if mailer is not None else email.SmtpMailer.from_settings(settings),
        settings.public_url,
    )


def runtime_of(ctx: WorkerContext) -> AlertRuntime:
    return cast("AlertRuntime", cast("dict[str, Any]", ctx)[RUNTIME_KEY])


async def evaluate_alerts(ctx: WorkerContext) -> str:
    """The cron: every rule over every tenant, then re-enqueue emails a lost Redis dropped."""
    runtime = runtime_of(ctx)
    async with ctx["db"].transaction() as session:
        result = await rules.evaluate(session, policy=runtime.policy)
        swept = await email.sweep(session, older_than=SWEEP_AFTER, digest_hour=DIGEST_HOUR_UTC)
    return (
        f"raised={len(result.raised)} escalated={len(result.escalated)} "
        f"resolved={len(result.resolved)} emails_swept={swept}"
    )


async def send_email(ctx: WorkerContext, email_id: str) -> str:
    runtime = runtime_of(ctx)
    async with ctx["db"].transaction() as session:
        outcome = await email.send_alert_email(
            session, UUID(email_id), mailer=runtime.mailer, public_url=runtime.public_url
        )
    if outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.status.value if outcome.status else "nothing to do"


async def schedule_digests(ctx: WorkerContext) -> int:
    async with ctx["db"].transaction() as session:
        return await email.schedule_digests(session)


async def send_digest(ctx: WorkerContext, address: str, cutoff: str) -> str:
    runtime = runtime_of(ctx)
    async with ctx["db"].transaction() as session:
        outcome = await email.send_digest(
            session, address, cutoff=datetime.fromisoformat(cutoff), mailer=runtime.mailer,
            public_url=runtime.public_url,
        )  # fmt: skip
    if outcome.retry_in is not None:
        raise Retry(defer=outcome.retry_in)
    return outcome.status.value if outcome.status else "nothing to do"
