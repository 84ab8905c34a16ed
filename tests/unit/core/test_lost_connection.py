"""Which failures are a database connection lost (retried: a sync, a webhook drain's
record, a readiness probe), and which are a statement that failed (not retried)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc

from hub.core.db import lost_connection
from hub.syncs.models import RunOutcome
from hub.syncs.service import _classify


def _dbapi(*, invalidated: bool) -> exc.DBAPIError:
    return exc.DBAPIError("SELECT 1", None, Exception("boom"), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (_dbapi(invalidated=True), True),
        (_dbapi(invalidated=False), False),
        (asyncpg.ConnectionDoesNotExistError("closed in the middle of operation"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            False,
        ),
        (ConnectionResetError(104, "Connection reset by peer"), False),  # not said whose
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (ValueError("a bug"), False),
    ],
)
def test_lost_connection(error: BaseException, lost: bool) -> None:
    assert lost_connection(error) is lost


def test_a_sync_that_lost_its_database_is_retried_with_backoff_saying_why() -> None:
    first = _classify(asyncpg.InterfaceError("connection is closed"), 1)
    later = _classify(asyncpg.InterfaceError("connection is closed"), 7)
    assert first.outcome is RunOutcome.FAILED
    assert first.retry_in == 10.0
    assert later.retry_in == 300.0  # at most five minutes
    assert first.error is not None
    assert "database connection was lost" in first.error
    bug = _classify(ValueError("a bug"), 1)
    assert bug.retry_in is None  # left to the next schedule
    assert bug.error == "ValueError: internal error"
