"""Background jobs: typed job descriptions, buffered in a transaction, sent after commit.

A service calls `enqueue(session, some_job(...))`. Nothing reaches Redis until the session's
transaction commits; a rollback drops the buffer. Each job carries an arq job id, so sending
the same job twice (two enqueues in one transaction, or a retry after a crash) is a no-op
while the first is queued or running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

log = structlog.get_logger(__name__)

JobArg = str | int | float | bool | None
# The longest a job runs: the worker cancels it then (and arq may run it again).
JOB_TIMEOUT_SECONDS = 300

_PENDING = "hub.jobs.pending"
_COMMITTED = "hub.jobs.committed"
_SAVED = "hub.jobs.saved"  # per open savepoint: the jobs pending when it began


@dataclass(frozen=True, slots=True)
class Job:
    """One call of a worker function. Build these with each domain's typed constructors."""

    function: str
    args: tuple[JobArg, ...] = ()
    job_id: str | None = None
    defer_by: timedelta | None = None

    @property
    def dedupe_key(self) -> str:
        return self.job_id if self.job_id is not None else f"{self.function}{self.args!r}"


class JobQueue(Protocol):
    async def send(self, job: Job) -> bool:
        """Put the job on the queue; False when a job with its id is already there."""


class ArqQueue:
    """Sends jobs to arq through an `ArqRedis` pool."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def send(self, job: Job) -> bool:
        queued = await self.redis.enqueue_job(
            job.function, *job.args, _job_id=job.job_id, _defer_by=job.defer_by
        )
        return queued is not None


def enqueue(session: AsyncSession, job: Job) -> None:
    """Buffer `job` until `session` commits; the same job twice in one transaction is sent once."""
    pending: dict[str, Job] = session.info.setdefault(_PENDING, {})
    pending.setdefault(job.dedupe_key, job)


def pending_jobs(session: AsyncSession) -> Sequence[Job]:
    return list(session.info.get(_PENDING, {}).values())


# SQLAlchemy reports a savepoint's release and rollback as a commit and a rollback too (the
# hooks run while it is still the session's current transaction). A savepoint's jobs wait
# for the outermost commit; its rollback drops only the jobs enqueued since it began.
def _note_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        saved: dict[int, dict[str, Job]] = session.info.setdefault(_SAVED, {})
        saved[id(transaction)] = dict(session.info.get(_PENDING, {}))


def _promote_on_commit(session: Session) -> None:
    if (savepoint := session.get_nested_transaction()) is not None:
        session.info.get(_SAVED, {}).pop(id(savepoint), None)  # its jobs stay pending
        return
    pending: dict[str, Job] = session.info.pop(_PENDING, {})
    if pending:
        committed: dict[str, Job] = session.info.setdefault(_COMMITTED, {})
        for key, job in pending.items():
            committed.setdefault(key, job)


def _drop_on_rollback(session: Session) -> None:
    if (savepoint := session.get_nested_transaction()) is not None:
        before = session.info.get(_SAVED, {}).pop(id(savepoint), {})
        session.info[_PENDING] = before  # those enqueued before the savepoint stay
        return
    session.info.pop(_PENDING, None)
    session.info.pop(_SAVED, None)


def install_session_hooks() -> None:
    """Listen for commits and rollbacks of every ORM session (idempotent)."""
    if not event.contains(Session, "after_commit", _promote_on_commit):
        event.listen(Session, "after_transaction_create", _note_savepoint)
        event.listen(Session, "after_commit", _promote_on_commit)
        event.listen(Session, "after_rollback", _drop_on_rollback)


async def send_committed(session: AsyncSession, queue: JobQueue | None) -> int:
    """Send the jobs of committed transactions; returns how many were newly queued.

    A failure to reach Redis is logged, not raised: the transaction has committed, and the
    outbox sweeper re-enqueues every event that was not dispatched.
    """
    committed: dict[str, Job] = session.info.pop(_COMMITTED, {})
    if not committed:
        return 0
    if queue is None:
        log.warning("jobs dropped: no queue configured", count=len(committed))
        return 0
    sent = 0
    for job in committed.values():
        try:
            sent += await queue.send(job)
        except Exception as error:
            log.error(
                "enqueue failed after commit; the sweeper will retry",
                function=job.function,
                job_id=job.job_id,
                error_class=type(error).__name__,
            )
    return sent
