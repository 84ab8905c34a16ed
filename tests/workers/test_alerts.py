"""Alerts end to end on real Redis and a real arq worker: emails reach an SMTP server, the
digest goes out as one email, the cron job runs the rules, and failing syncs from the CTM
simulator raise (then resolve) `sync.failing` through the syncs code itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.alerts import service as alerts
from hub.alerts.models import Alert, AlertEmail, AlertKind, AlertState, EmailMode, EmailStatus
from hub.audit.service import Actor
from hub.core.crypto import Crypto
from hub.core.db import Database
from hub.core.jobs import ArqQueue
from hub.core.redis import connect
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.server import running_simulator
from hub.ctm.simulator.state import SimState
from hub.events.models import Event
from hub.keys import service as keys
from hub.settings import Settings
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome
from tests.conftest import delete_all_rows
from tests.integration.alerts.support import (
    SECRET_CANARY,
    Plan,
    Sink,
    make_key,
    make_plan,
    smtp_sink,
)
from tests.workers.test_syncs import FAST, onboard
from workers import alerts as alert_jobs
from workers.context import WorkerContext
from workers.settings import create_worker, crons, functions


@dataclass
class World:
    db: Database
    sink: Sink
    settings: Settings
    redis_url: str

    async def run_worker(self) -> None:
        pool = await connect(self.redis_url)
        worker = create_worker(
            self.settings, database=self.db, redis_pool=pool, burst=True,
            poll_delay=0.05, max_burst_jobs=200,
        )  # fmt: skip
        try:
            await asyncio.wait_for(worker.async_run(), timeout=60)
        finally:
            await worker.close()

    async def rows(self, model: Any, *where: Any) -> list[Any]:
        async with self.db.transaction() as session:
            return list((await session.scalars(select(model).where(*where))).all())


@pytest.fixture
async def world(
    engine: AsyncEngine, redis: Any, crypto: Crypto, settings: Settings, redis_url: str
) -> AsyncIterator[World]:
    db = Database(engine, ArqQueue(redis), crypto=crypto)
    with smtp_sink() as (sink, url):
        try:
            yield World(db, sink, settings.model_copy(update={"smtp_url": url}), redis_url)
        finally:
            await delete_all_rows(engine)


async def committed_plan(world: World) -> Plan:
    async with world.db.transaction() as session:
        return await make_plan(session)


class TestThroughTheWorker:
    async def test_a_compromise_is_emailed_and_its_events_dispatched(self, world: World) -> None:
        plan = await committed_plan(world)
        async with world.db.transaction() as session:
            key = await make_key(session, plan, environment="sandbox", key_id="KEY-W-1")
            await keys.report_compromise(
                session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.system("test")
            )
        await world.run_worker()
        assert sorted(r for m in world.sink.received for r in m.recipients) == sorted(
            [plan.rp.user.email, plan.admin.user.email, plan.operator.email]
        )
        assert all("KEY-W-1" in m.part("plain") for m in world.sink.received)
        assert SECRET_CANARY not in "".join(m.raw for m in world.sink.received)
        sent = await world.rows(AlertEmail)
        assert [e.status for e in sent] == [EmailStatus.SENT] * 3
        [raised] = await world.rows(Event, Event.type == "alert.raised")
        assert raised.dispatched_at is not None

    async def test_the_digest_job_sends_one_email_per_user(self, world: World) -> None:
        plan = await committed_plan(world)
        async with world.db.transaction() as session:
            await alerts.set_email_mode(session, plan.admin.user.id, EmailMode.DIGEST)
        ctx = cast("WorkerContext", {"db": world.db})
        alert_jobs.start(cast("dict[str, Any]", ctx), world.settings)
        summary = await alert_jobs.evaluate_alerts(ctx)
        assert summary.startswith("raised=2 "), summary  # H1234 and S5678 are uncovered
        await world.run_worker()
        assert world.sink.received == [], "digest users get nothing at once"
        assert await alert_jobs.schedule_digests(ctx) == 1
        await world.run_worker()
        [digest] = world.sink.received
        assert digest.recipients == [plan.admin.user.email]
        assert "Daily alert digest" in digest.subject
        assert "2 alert(s)" in digest.subject
        assert "contract H1234" in digest.part("plain")
        assert "contract S5678" in digest.part("html")


class TestSyncFailingFromTheSimulator:
    async def test_three_failed_syncs_raise_and_a_good_one_resolves(self, world: World) -> None:
        state = SimState(environment="sandbox", seed=11, history_days=5)
        state.contracts["H1234"] = ContractPlan(daily_min=1, daily_max=2)
        async with running_simulator(state) as sim:
            client = CtmClient(CtmEnvironment.SANDBOX, base_url=sim.url, retry=FAST)
            try:
                member, key, _ = await onboard(world.db, sim, "acme", ("H1234",))
                clients = {CtmEnvironment.SANDBOX: client}

                async def sync() -> RunOutcome:
                    result = await syncs.run_sync(
                        world.db, clients, tenant_id=member.tenant_id, key_id=key.id,
                        contract="H1234",
                    )  # fmt: skip
                    return result.outcome

                sim.state.faults.rate_500 = 1.0
                for attempt in (1, 2, 3, 4):
                    assert await sync() is RunOutcome.FAILED
                    found = await world.rows(Alert, Alert.kind == AlertKind.SYNC_FAILING)
                    assert len(found) == (attempt >= 3)
                sim.state.faults.rate_500 = 0.0
                assert await sync() is RunOutcome.SUCCEEDED
            finally:
                await client.aclose()
        [alert] = await world.rows(Alert, Alert.kind == AlertKind.SYNC_FAILING)
        assert alert.state is AlertState.RESOLVED
        assert "failed 3 times in a row" in alert.message
        assert len(await world.rows(Event, Event.type == "alert.resolved")) == 1


class TestRegistration:
    def test_jobs_and_unique_crons_are_registered(self) -> None:
        names = {f.name for f in functions()}
        assert {"alerts.send_email", "alerts.send_digest"} <= names
        registered = {c.name: c for c in crons(run_at_startup=False)}
        assert registered["alerts.evaluate"].unique
        assert registered["alerts.digest"].unique
        assert registered["alerts.digest"].hour == alert_jobs.DIGEST_HOUR_UTC
