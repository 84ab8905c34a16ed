"""Portal jobs: the "forgot your password?" email (the job mints the one-time token, so the
token never travels through the queue)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from arq import Retry

from hub.alerts import email
from hub.portal import recovery
from workers import alerts as alert_jobs
from workers.context import WorkerContext

# A link is worth 30 minutes: a mail server down for longer leaves the user to ask again.
MAX_JOB_TRIES = 4


async def send_password_reset(ctx: WorkerContext, user_id: str) -> str:
    runtime = alert_jobs.runtime_of(ctx)  # the alert emails' mailer and public address
    try:
        async with ctx["db"].transaction() as session:
            sent = await recovery.send_reset_email(
                session, ctx["redis"], UUID(user_id), mailer=runtime.mailer,
                public_url=runtime.public_url,
            )  # fmt: skip
    except email.SEND_ERRORS as error:
        # A retry mints a new token; the one minted here reached no one.
        recovery.log.warning("password reset email failed", error_class=type(error).__name__)
        raise Retry(defer=timedelta(seconds=30 * ctx["job_try"])) from None
    return "sent" if sent else "nothing to send"
