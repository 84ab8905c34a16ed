"""Jobs are sent only after commit, never after rollback, and once per job id."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.core import jobs
from hub.core.db import Database
from hub.core.jobs import ArqQueue, Job
from tests.support import RecordingQueue, make_tenant


class Boom(Exception):
    pass


class TestEnqueueAfterCommit:
    async def test_rolled_back_transaction_enqueues_nothing(
        self, db: Database, queue: RecordingQueue
    ) -> None:
        with pytest.raises(Boom):
            async with db.transaction() as session:
                jobs.enqueue(session, Job("tests.noop", ("a",), job_id="noop:a"))
                raise Boom
        assert queue.sent == []

    async def test_committed_transaction_sends_after_commit(
        self, db: Database, queue: RecordingQueue
    ) -> None:
        async with db.transaction() as session:
            jobs.enqueue(session, Job("tests.noop", ("a",), job_id="noop:a"))
            await make_tenant(session, "acme")
            assert queue.sent == [], "nothing may be sent before the commit"
        assert queue.functions() == ["tests.noop"]

    async def test_same_job_twice_in_a_transaction_is_sent_once(
        self, db: Database, queue: RecordingQueue
    ) -> None:
        async with db.transaction() as session:
            jobs.enqueue(session, Job("tests.noop", ("a",), job_id="noop:a"))
            jobs.enqueue(session, Job("tests.noop", ("a",), job_id="noop:a"))
        assert len(queue.sent) == 1


class TestSavepoints:
    async def test_a_savepoint_rolled_back_drops_only_its_own_jobs(
        self, db: Database, queue: RecordingQueue
    ) -> None:
        async with db.transaction() as session:
            jobs.enqueue(session, Job("tests.noop", ("before",), job_id="noop:before"))
            with pytest.raises(Boom):
                async with session.begin_nested():
                    jobs.enqueue(session, Job("tests.noop", ("inside",), job_id="noop:inside"))
                    raise Boom
            jobs.enqueue(session, Job("tests.noop", ("after",), job_id="noop:after"))
            assert queue.sent == []
        assert sorted(j.job_id or "" for j in queue.sent) == ["noop:after", "noop:before"]

    async def test_a_released_savepoints_jobs_wait_for_the_outermost_commit(
        self, db: Database, queue: RecordingQueue
    ) -> None:
        with pytest.raises(Boom):
            async with db.transaction() as session:
                async with session.begin_nested():
                    jobs.enqueue(session, Job("tests.noop", ("inside",), job_id="noop:inside"))
                raise Boom
        assert queue.sent == [], "the transaction rolled back: nothing of it is sent"
        async with db.transaction() as session:
            async with session.begin_nested():
                jobs.enqueue(session, Job("tests.noop", ("inside",), job_id="noop:inside"))
                async with session.begin_nested():
                    jobs.enqueue(session, Job("tests.noop", ("deeper",), job_id="noop:deeper"))
            assert queue.sent == []
        assert sorted(j.job_id or "" for j in queue.sent) == ["noop:deeper", "noop:inside"]

    async def test_nested_savepoints_roll_back_to_their_own_beginning(
        self, db: Database, queue: RecordingQueue
    ) -> None:
        async with db.transaction() as session, session.begin_nested():
            jobs.enqueue(session, Job("tests.noop", ("outer",), job_id="noop:outer"))
            with pytest.raises(Boom):
                async with session.begin_nested():
                    jobs.enqueue(session, Job("tests.noop", ("inner",), job_id="noop:inner"))
                    raise Boom
        assert [j.job_id for j in queue.sent] == ["noop:outer"]


class TestOnRealRedis:
    async def test_committed_job_is_queued_exactly_once_even_if_enqueued_twice(
        self, engine: AsyncEngine, redis: Any
    ) -> None:
        database = Database(engine, ArqQueue(redis))
        job = Job("tests.noop", ("x",), job_id="noop:x")
        for _ in range(2):  # two transactions, the same job id
            async with database.transaction() as session:
                jobs.enqueue(session, job)
        queued = await redis.queued_jobs()
        assert [j.job_id for j in queued] == ["noop:x"]

    async def test_rollback_leaves_redis_empty(self, engine: AsyncEngine, redis: Any) -> None:
        database = Database(engine, ArqQueue(redis))
        with pytest.raises(Boom):
            async with database.transaction() as session:
                jobs.enqueue(session, Job("tests.noop", ("y",), job_id="noop:y"))
                raise Boom
        assert await redis.queued_jobs() == []
