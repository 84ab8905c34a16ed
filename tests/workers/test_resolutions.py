"""Resolutions out to the CTM simulator: accepted and rejected round trips, resubmission,
an upload that runs twice (or races) uploads once, an upload whose outcome is unknown (a
dead worker, a lost answer) is settled by the next download instead of being sent again,
CMS faults go to the keys lifecycle or a retry, the arq job and cron, and no PHI in events
or log lines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast
from uuid import UUID

import httpx
import pytest
from arq.jobs import Job
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.app import create_app
from hub.complaints import doubt, uploads
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.resolutions import ResolutionInput, write_resolution
from hub.core.crypto import Crypto
from hub.core.db import Database, utcnow, zulu
from hub.core.errors import Conflict
from hub.core.jobs import ArqQueue
from hub.ctm import modeled
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.server import RunningSimulator, running_simulator
from hub.ctm.simulator.state import SimKey, SimState
from hub.events.models import Event
from hub.keys.models import ApiKey, ApiKeyContract, KeyStatus
from hub.settings import Settings
from hub.syncs import service as syncs
from hub.syncs.models import QuarantinedRow, SyncCursor
from tests.conftest import delete_all_rows
from tests.integration.complaints.support import make_complaint
from tests.support import Member, app_client, captured_logs
from tests.workers.test_syncs import FAST, onboard
from workers import syncs as sync_jobs
from workers.context import WorkerContext
from workers.settings import create_worker

CANARY = "CANARY-c0ffee-resolution-summary"


@dataclass
class World:
    db: Database
    sim: RunningSimulator
    clients: dict[CtmEnvironment, CtmClient]
    member: Member
    key: ApiKey
    sim_key: SimKey

    async def sync(self, contract: str = "H1234", settle_after: timedelta = timedelta(0)) -> None:
        """A sync; by default one that may settle uploads in doubt at once (the real wait,
        `doubt.SETTLE_AFTER`, has a test of its own)."""
        result = await syncs.run_sync(
            self.db, self.clients, tenant_id=self.member.tenant_id, key_id=self.key.id,
            contract=contract, policy=syncs.SyncPolicy(doubt_settle_after=settle_after),
        )  # fmt: skip
        assert result.error is None, result.error

    async def open_complaints(self, contract: str = "H1234", n: int = 1) -> list[Complaint]:
        async with self.db.transaction() as session:
            found = (
                await session.scalars(
                    select(Complaint)
                    .where(
                        Complaint.contract == contract,
                        Complaint.cms_resolution_date.is_(None),
                        Complaint.resolution_state == ResolutionState.NONE,
                    )
                    .order_by(Complaint.received_date.desc(), Complaint.complaint_id)
                    .limit(n)
                )
            ).all()
        assert len(found) == n
        return list(found)

    async def resolve(
        self, complaint: Complaint, summary: str = CANARY, key: str | None = None
    ) -> UUID:
        async with self.db.transaction() as session:
            written = await write_resolution(
                session, self.member.principal, complaint_pk=complaint.id,
                data=ResolutionInput(
                    resolution_date=utcnow().date(), summary=summary,
                    casework_notes=f"{CANARY} notes", complainant_satisfied="Y",
                ),
                idempotency_header=key,
            )  # fmt: skip
            return written.resolution.id

    async def upload(self, contract: str = "H1234", attempt: int = 1) -> uploads.UploadOutcome:
        return await uploads.upload_pending(
            self.db, self.clients, tenant_id=self.member.tenant_id, key_id=self.key.id,
            contract=contract, attempt=attempt,
        )  # fmt: skip

    async def upload_losing_the_answer(self) -> uploads.UploadOutcome:
        """An upload CMS takes, whose answer never comes back: in doubt until a download."""
        self.sim.state.faults.hang_seconds = 0.5
        self.sim.state.faults.script.append(("upload", "lost_answer"))
        async with CtmClient(
            CtmEnvironment.SANDBOX, base_url=self.sim.url, retry=FAST,
            timeout=httpx.Timeout(0.2),
        ) as impatient:  # fmt: skip
            outcome = await uploads.upload_pending(
                self.db, {CtmEnvironment.SANDBOX: impatient},
                tenant_id=self.member.tenant_id, key_id=self.key.id, contract="H1234",
            )  # fmt: skip
        assert outcome.error is not None
        assert "may have taken it" in outcome.error
        return outcome

    async def resolution(self, ident: UUID) -> Resolution:
        async with self.db.transaction() as session:
            found = await session.get(Resolution, ident)
            assert found is not None
            return found

    async def complaint(self, ident: UUID) -> Complaint:
        async with self.db.transaction() as session:
            found = await session.get(Complaint, ident)
            assert found is not None
            return found

    def uploaded_ids(self) -> list[str]:
        return [row["COMPLAINT_ID"] for upload in self.sim.state.uploads for row in upload.rows]


@pytest.fixture
async def world(engine: AsyncEngine, redis: Any, crypto: Crypto) -> AsyncIterator[World]:
    db = Database(engine, ArqQueue(redis), crypto=crypto)
    state = SimState(environment="sandbox", seed=11, history_days=10)
    state.contracts["H1234"] = ContractPlan(daily_min=2, daily_max=3)
    state.contracts["S5678"] = ContractPlan(daily_min=1, daily_max=2)
    async with running_simulator(state) as sim:
        client = CtmClient(CtmEnvironment.SANDBOX, base_url=sim.url, retry=FAST)
        try:
            member, key, sim_key = await onboard(db, sim, "resol")
            world = World(db, sim, {CtmEnvironment.SANDBOX: client}, member, key, sim_key)
            await world.sync("H1234")
            yield world
        finally:
            await client.aclose()
            await delete_all_rows(engine)


async def events(db: Database, type_: str) -> list[Event]:
    async with db.transaction() as session:
        return list((await session.scalars(select(Event).where(Event.type == type_))).all())


class TestRoundTrips:
    async def test_accepted_resolution_resolves_the_complaint(self, world: World) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        outcome = await world.upload()
        assert (outcome.files, outcome.accepted, outcome.rejected) == (1, 1, 0)
        resolution = await world.resolution(ident)
        assert resolution.state is ResolutionState.ACCEPTED
        assert resolution.decided_at is not None
        assert (await world.complaint(complaint.id)).resolution_state is ResolutionState.ACCEPTED
        [upload] = world.sim.state.uploads
        assert upload.accepted == [complaint.complaint_id]
        assert upload.rows[0]["RESOLUTION_SUMMARY"] == CANARY
        assert upload.rows[0]["COMPLAINANT_SATISFIED"] == "Y"
        [event] = await events(world.db, "resolution.accepted")
        assert event.payload["complaint_id"] == complaint.complaint_id
        assert event.payload["contract"] == "H1234"
        assert CANARY not in str(event.payload)
        # The next download shows CMS's resolution date; the status stays "accepted".
        await world.sync("H1234")
        synced = await world.complaint(complaint.id)
        assert synced.cms_resolution_date == utcnow().date()
        assert synced.resolution_state is ResolutionState.ACCEPTED

    async def test_unknown_complaint_is_rejected_with_cms_reasons(self, world: World) -> None:
        async with world.db.transaction() as session:
            ghost = await make_complaint(
                session, world.member.tenant_id, complaint_id="CTM-NOT-AT-CMS",
                api_key_id=world.key.id, received=utcnow().date() - timedelta(days=2),
            )  # fmt: skip
        ident = await world.resolve(ghost)
        outcome = await world.upload()
        assert (outcome.accepted, outcome.rejected) == (0, 1)
        resolution = await world.resolution(ident)
        assert resolution.state is ResolutionState.REJECTED
        assert resolution.cms_errors == ["complaint CTM-NOT-AT-CMS is not a complaint of H1234"]
        assert (await world.complaint(ghost.id)).resolution_state is ResolutionState.REJECTED
        [event] = await events(world.db, "resolution.rejected")
        assert event.payload["errors"] == resolution.cms_errors
        assert CANARY not in str(event.payload)

    async def test_rejected_for_contract_then_fixed_and_resubmitted(self, world: World) -> None:
        await world.sync("S5678")
        [complaint] = await world.open_complaints("S5678")
        world.sim.state.get_key(world.sim_key.key_id).contracts.discard("S5678")
        rejected_id = await world.resolve(complaint, summary="first try")
        assert (await world.upload("S5678")).rejected == 1
        rejected = await world.resolution(rejected_id)
        assert rejected.cms_errors == ["contract S5678 is not covered by this key"]
        # CMS fixes the key's access; the caseworker resubmits.
        world.sim.state.get_key(world.sim_key.key_id).contracts.add("S5678")
        fixed_id = await world.resolve(complaint, summary="second try")
        assert (await world.upload("S5678")).accepted == 1
        assert (await world.resolution(fixed_id)).state is ResolutionState.ACCEPTED
        assert (await world.resolution(rejected_id)).state is ResolutionState.REJECTED, "history"
        assert world.uploaded_ids() == [complaint.complaint_id, complaint.complaint_id]


class TestExactlyOnce:
    async def test_upload_run_twice_or_racing_uploads_once(self, world: World) -> None:
        complaints = await world.open_complaints(n=3)
        for complaint in complaints:
            await world.resolve(complaint)
        racing = await asyncio.gather(world.upload(), world.upload())
        again = await world.upload()
        assert sum(o.accepted for o in racing) == 3
        assert again.files == 0
        assert sorted(world.uploaded_ids()) == sorted(c.complaint_id for c in complaints)

    async def test_two_racing_writes_for_one_complaint_queue_one(self, world: World) -> None:
        [complaint] = await world.open_complaints()
        results = await asyncio.gather(
            world.resolve(complaint, key="writer-1"),
            world.resolve(complaint, summary="other", key="writer-2"),
            return_exceptions=True,
        )
        written = [r for r in results if isinstance(r, UUID)]
        refused = [r for r in results if isinstance(r, Conflict)]
        assert (len(written), len(refused)) == (1, 1), results
        async with world.db.transaction() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(Resolution)
                .where(Resolution.complaint_pk == complaint.id)
            )
        assert count == 1


class TestInDoubt:
    """An upload whose outcome is unknown is never sent again blindly: the next download of
    the contract (reaching back to the complaint) says whether CMS has it."""

    async def oldest_open_complaint(self, world: World) -> Complaint:
        async with world.db.transaction() as session:
            found = await session.scalar(
                select(Complaint)
                .where(
                    Complaint.contract == "H1234",
                    Complaint.cms_resolution_date.is_(None),
                    Complaint.resolution_state == ResolutionState.NONE,
                )
                .order_by(Complaint.received_date, Complaint.complaint_id)
                .limit(1)
            )
        assert found is not None
        # Older than an incremental sync reaches back: only the recheck window finds it.
        assert found.received_date < utcnow().date() - syncs.SyncPolicy().overlap
        return found

    async def cursor(self, world: World) -> SyncCursor:
        async with world.db.transaction() as session:
            found = await session.scalar(
                select(SyncCursor).where(
                    SyncCursor.api_key_id == world.key.id, SyncCursor.contract == "H1234"
                )
            )
        assert found is not None
        return found

    async def die_after_claiming(self, world: World, *, sent: bool) -> None:
        """A worker claims the batch (and sends it, when `sent`), then dies."""
        claim = await uploads._claim(
            world.db, world.member.tenant_id, world.key.id, "H1234", uploads.UploadPolicy()
        )
        assert claim is not None
        if sent:
            client = world.clients[CtmEnvironment.SANDBOX]
            await client.upload_resolutions(claim.credentials, claim.rows)

    async def hold_stale(self, world: World) -> int:
        async with world.db.transaction() as session:
            assert await uploads.hold_stale(session) == 0, "not stale yet"
            now_stale = uploads.UploadPolicy(stale_after=timedelta(0))
            return await uploads.hold_stale(session, policy=now_stale)

    async def test_a_dead_workers_upload_that_cms_took_is_accepted_not_sent_again(
        self, world: World, redis: Any
    ) -> None:
        complaint = await self.oldest_open_complaint(world)
        ident = await world.resolve(complaint)
        await self.die_after_claiming(world, sent=True)
        assert (await world.upload()).files == 0, "another worker does not take a claimed row"
        assert await self.hold_stale(world) == 1
        held = await world.resolution(ident)
        assert held.state is ResolutionState.UPLOADING
        assert held.in_doubt_since is not None
        assert held.note is not None
        assert held.note.startswith("in doubt")
        assert (await self.cursor(world)).recheck_from == complaint.received_date
        recheck = f"arq:job:sync-recheck:{world.key.id}:H1234"
        assert await redis.exists(recheck), "a sync is on its way"
        assert (await world.upload()).files == 0, "a row in doubt is not sent again"

        await world.sync()
        settled = await world.resolution(ident)
        assert settled.state is ResolutionState.ACCEPTED
        assert settled.in_doubt_since is None
        assert settled.note == doubt.CONFIRMED
        assert (await world.complaint(complaint.id)).resolution_state is ResolutionState.ACCEPTED
        [accepted] = await events(world.db, "resolution.accepted")
        assert accepted.payload["confirmed_by"] == "download"
        assert accepted.payload["resolution_id"] == str(ident)
        assert world.uploaded_ids() == [complaint.complaint_id], "CMS got it once"
        assert (await self.cursor(world)).recheck_from is None

    async def test_a_quarantined_row_leaves_an_accepted_upload_in_doubt_not_queued(
        self, world: World
    ) -> None:
        complaint = await self.oldest_open_complaint(world)
        ident = await world.resolve(complaint)
        await self.die_after_claiming(world, sent=True)  # CMS took it; the worker died
        assert await self.hold_stale(world) == 1
        cms_row = world.sim.state.resolutions[("H1234", complaint.complaint_id)]
        cms_row["ASSIGNMENT_DATE"] = "13/45/2025"  # CMS's row for it now fails to parse
        await world.sync()
        async with world.db.transaction() as session:
            reasons = (await session.scalars(select(QuarantinedRow.reason))).all()
        assert any("ASSIGNMENT_DATE" in reason for reason in reasons)
        held = await world.resolution(ident)
        assert (held.state, held.note) == (ResolutionState.UPLOADING, doubt.UNREADABLE)
        assert held.in_doubt_since is not None
        cursor = await self.cursor(world)
        assert cursor.recheck_from == complaint.received_date, "later downloads reach it"
        assert cursor.next_due_at is not None
        assert cursor.next_due_at > utcnow(), "on the schedule, not at once (no loop)"
        assert (await world.upload()).files == 0, "not sent again"

        del cms_row["ASSIGNMENT_DATE"]  # readable again
        await world.sync()
        settled = await world.resolution(ident)
        assert (settled.state, settled.note) == (ResolutionState.ACCEPTED, doubt.CONFIRMED)
        assert world.uploaded_ids() == [complaint.complaint_id], "CMS got it once"
        assert (await self.cursor(world)).recheck_from is None

    async def test_a_complaint_missing_from_the_download_stays_in_doubt(self, world: World) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        await self.die_after_claiming(world, sent=True)
        assert await self.hold_stale(world) == 1
        # CMS's file no longer names the complaint (its row now carries another ID).
        world.sim.state.resolutions[("H1234", complaint.complaint_id)]["COMPLAINT_ID"] = "X1"
        await world.sync()
        held = await world.resolution(ident)
        assert (held.state, held.note) == (ResolutionState.UPLOADING, doubt.UNREADABLE)
        assert (await world.upload()).files == 0
        assert world.uploaded_ids() == [complaint.complaint_id]

    async def test_a_complaint_gone_from_cms_downloads_is_left_to_a_person_not_forever(
        self, world: World
    ) -> None:
        """Closed or withdrawn at CMS (or past its history): no download will show it again.
        After `doubt.UNCONFIRMED_AFTER` and `doubt.UNCONFIRMED_MISSES` downloads that reached
        back to it without it, the row says so and what to do, an event tells downstream,
        and downloads stop reaching back for it; it is never sent again on its own."""
        complaint = await self.oldest_open_complaint(world)
        ident = await world.resolve(complaint)
        await self.die_after_claiming(world, sent=True)
        assert await self.hold_stale(world) == 1
        world.sim.state.resolutions[("H1234", complaint.complaint_id)]["COMPLAINT_ID"] = "X1"
        for _ in range(doubt.UNCONFIRMED_MISSES):  # enough downloads, too soon
            await world.sync()
        held = await world.resolution(ident)
        assert (held.note, held.doubt_misses) == (doubt.UNREADABLE, doubt.UNCONFIRMED_MISSES)
        assert held.unconfirmed_at is None, "not a day yet"
        assert (await self.cursor(world)).recheck_from == complaint.received_date

        async with world.db.transaction() as session:
            resolution = await session.get(Resolution, ident)
            assert resolution is not None
            resolution.in_doubt_since = utcnow() - doubt.UNCONFIRMED_AFTER
            began = resolution.in_doubt_since
        await world.sync()
        given_up = await world.resolution(ident)
        assert given_up.state is ResolutionState.UPLOADING, "CMS may have it: not sent again"
        assert given_up.unconfirmed_at is not None
        assert given_up.in_doubt_since == began
        assert given_up.note is not None
        assert given_up.note.startswith("unconfirmed:")
        assert complaint.complaint_id in given_up.note
        assert "/settle" in given_up.note, "says what to do"
        [event] = await events(world.db, "resolution.unconfirmed")
        assert event.payload == {
            "complaint_id": complaint.complaint_id, "contract": "H1234",
            "environment": "sandbox", "resolution_id": str(ident),
            "in_doubt_since": zulu(began), "downloads": doubt.UNCONFIRMED_MISSES + 1,
            "next_action": event.payload["next_action"],
        }  # fmt: skip
        assert CANARY not in repr(event.payload)
        assert (await self.cursor(world)).recheck_from is None, "no longer reached back for"

        await world.sync()
        assert len(await events(world.db, "resolution.unconfirmed")) == 1, "said once"
        assert (await world.upload()).files == 0
        assert world.uploaded_ids() == [complaint.complaint_id], "sent once"

    async def test_a_download_too_soon_after_the_doubt_began_leaves_it_for_a_later_one(
        self, world: World, redis: Any
    ) -> None:
        """CMS may still be storing the file whose answer was lost: the recheck comes
        `doubt.SETTLE_AFTER` later, and a download before then settles nothing."""
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        await self.die_after_claiming(world, sent=False)
        assert await self.hold_stale(world) == 1
        held = await world.resolution(ident)
        assert held.in_doubt_since is not None
        ready = held.in_doubt_since + doubt.SETTLE_AFTER
        job = await Job(f"sync-recheck:{world.key.id}:H1234", redis).info()
        assert job is not None
        assert job.score is not None
        assert abs((job.score / 1000) - ready.timestamp()) < 5, "deferred until then"
        await world.sync(settle_after=doubt.SETTLE_AFTER)
        assert (await world.resolution(ident)).state is ResolutionState.UPLOADING
        cursor = await self.cursor(world)
        assert cursor.next_due_at == ready, "the next download is due when it may settle"
        async with world.db.transaction() as session:
            resolution = await session.get(Resolution, ident)
            assert resolution is not None
            resolution.in_doubt_since = utcnow() - doubt.SETTLE_AFTER - timedelta(seconds=1)
        await world.sync(settle_after=doubt.SETTLE_AFTER)
        assert (await world.resolution(ident)).state is ResolutionState.QUEUED

    async def test_a_sync_now_while_a_recheck_waits_runs_at_once_and_the_recheck_still_comes(
        self, world: World, redis: Any
    ) -> None:
        """The recheck waits under a job id of its own: the pair's sync job id stays free, so
        a "sync now" meanwhile is queued to run now, not swallowed by the recheck's wait."""
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        await self.die_after_claiming(world, sent=False)
        assert await self.hold_stale(world) == 1
        held = await world.resolution(ident)
        assert held.in_doubt_since is not None
        ready = held.in_doubt_since + doubt.SETTLE_AFTER
        async with world.db.transaction() as session:
            await syncs.request_sync(session, tenant_id=world.member.tenant_id, contract="H1234")
        asked = utcnow()
        now = await Job(f"sync:{world.key.id}:H1234", redis).info()
        assert now is not None, "sync now was queued"
        assert now.score is not None
        assert now.score / 1000 <= asked.timestamp() + 1, "to run now, not when the recheck is"
        assert now.args[3] == "manual"
        recheck = await Job(f"sync-recheck:{world.key.id}:H1234", redis).info()
        assert recheck is not None
        assert recheck.function == "syncs.recheck"
        assert recheck.score is not None
        assert abs(recheck.score / 1000 - ready.timestamp()) < 5, "the recheck still comes"

        # The sync now runs, too soon to settle the row: it asks for the recheck again (here
        # Redis lost the first), then the recheck falls due and queues the pair's sync.
        await redis.delete(f"arq:job:sync-recheck:{world.key.id}:H1234")
        await world.sync(settle_after=doubt.SETTLE_AFTER)
        assert (await world.resolution(ident)).state is ResolutionState.UPLOADING
        again = await Job(f"sync-recheck:{world.key.id}:H1234", redis).info()
        assert again is not None, "a download too soon asks for the recheck"
        assert again.score is not None
        assert abs(again.score / 1000 - ready.timestamp()) < 5
        await redis.delete(f"arq:job:sync:{world.key.id}:H1234")  # as when it has run
        ctx = cast("WorkerContext", {"redis": redis, "job_id": "sync-recheck", "job_try": 1})
        tenant, key = str(world.member.tenant_id), str(world.key.id)
        assert await sync_jobs.recheck_contract(ctx, tenant, key, "H1234") == "queued"
        queued = await Job(f"sync:{world.key.id}:H1234", redis).info()
        assert queued is not None
        assert (queued.function, queued.args[3]) == ("syncs.sync_contract", "recheck")
        assert await sync_jobs.recheck_contract(ctx, tenant, key, "H1234") == "already queued"

    async def test_a_dead_workers_upload_that_never_left_is_queued_again(
        self, world: World
    ) -> None:
        complaint = await self.oldest_open_complaint(world)
        ident = await world.resolve(complaint)
        await self.die_after_claiming(world, sent=False)
        assert await self.hold_stale(world) == 1
        await world.sync()
        requeued = await world.resolution(ident)
        assert requeued.state is ResolutionState.QUEUED
        assert requeued.note == doubt.NOT_FOUND
        assert (await world.complaint(complaint.id)).resolution_state is ResolutionState.QUEUED
        assert (await world.upload()).accepted == 1
        assert world.uploaded_ids() == [complaint.complaint_id]

    async def test_an_upload_whose_answer_was_lost_is_settled_by_the_next_download(
        self, world: World
    ) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        outcome = await world.upload_losing_the_answer()
        assert outcome.retry_in is None, "no retry: the download decides"
        held = await world.resolution(ident)
        assert (held.state, held.in_doubt_since is not None) == (ResolutionState.UPLOADING, True)
        assert (await world.upload()).files == 0

        await world.sync()
        assert (await world.resolution(ident)).state is ResolutionState.ACCEPTED
        assert world.uploaded_ids() == [complaint.complaint_id]
        assert len(await events(world.db, "resolution.accepted")) == 1

    async def put_in_doubt(self, world: World, ident: UUID, since: datetime) -> None:
        """In doubt since `since`, without asking for a download (as after a key change)."""
        claim = await uploads._claim(
            world.db, world.member.tenant_id, world.key.id, "H1234", uploads.UploadPolicy()
        )
        assert claim is not None
        async with world.db.transaction() as session:
            resolution = await session.get(Resolution, ident)
            assert resolution is not None
            resolution.in_doubt_since = since

    async def test_a_download_that_did_not_reach_the_complaint_asks_for_one_that_does(
        self, world: World
    ) -> None:
        complaint = await self.oldest_open_complaint(world)
        ident = await world.resolve(complaint)
        await self.put_in_doubt(world, ident, utcnow() - timedelta(minutes=1))
        await world.sync()  # an incremental window: the complaint is older
        assert (await world.resolution(ident)).state is ResolutionState.UPLOADING
        cursor = await self.cursor(world)
        assert cursor.recheck_from == complaint.received_date
        assert cursor.next_due_at is not None
        assert cursor.next_due_at <= utcnow(), "due again at once"
        await world.sync()
        assert (await world.resolution(ident)).state is ResolutionState.QUEUED
        assert (await self.cursor(world)).recheck_from is None

    async def test_a_download_asked_for_before_the_doubt_began_does_not_settle_it(
        self, world: World
    ) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        began = utcnow() + timedelta(hours=1)  # after the download below is asked for
        await self.put_in_doubt(world, ident, began)
        await world.sync()
        assert (await world.resolution(ident)).state is ResolutionState.UPLOADING
        cursor = await self.cursor(world)
        assert cursor.next_due_at == began, "due again as soon as one may settle it"

    async def test_an_answer_that_arrives_after_all_is_recorded(self, world: World) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        claim = await uploads._claim(
            world.db, world.member.tenant_id, world.key.id, "H1234", uploads.UploadPolicy()
        )
        assert claim is not None
        client = world.clients[CtmEnvironment.SANDBOX]
        result = await client.upload_resolutions(claim.credentials, claim.rows)
        assert await self.hold_stale(world) == 1  # a slow worker taken for dead
        assert await uploads._decide(world.db, claim, result) == (1, 0)
        decided = await world.resolution(ident)
        assert (decided.state, decided.in_doubt_since) == (ResolutionState.ACCEPTED, None)


class TestCmsFaults:
    async def test_refused_key_needs_replacement_and_rows_wait_in_the_queue(
        self, world: World
    ) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        world.sim.state.rotate(world.sim_key.key_id)
        world.sim.state.expire_tokens()
        outcome = await world.upload()
        assert outcome.retry_in is None
        assert outcome.error is not None
        async with world.db.transaction() as session:
            key = await session.get(ApiKey, world.key.id)
            assert key is not None
            assert key.status is KeyStatus.NEEDS_REPLACEMENT
        resolution = await world.resolution(ident)
        assert resolution.state is ResolutionState.QUEUED
        assert resolution.note is not None
        assert resolution.note.startswith("upload failed")
        assert world.sim.state.uploads == []

    async def test_contract_refused_marks_access_lost(self, world: World) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        world.sim.state.faults.script.append(("upload", "403"))
        outcome = await world.upload()
        assert outcome.retry_in is None
        async with world.db.transaction() as session:
            links = (
                await session.scalars(
                    select(ApiKeyContract).where(ApiKeyContract.api_key_id == world.key.id)
                )
            ).all()
            assert [link.access_lost_at is not None for link in links].count(True) == 1
        assert (await world.resolution(ident)).state is ResolutionState.QUEUED
        assert len(await events(world.db, "key.access_lost")) == 1

    async def test_a_contract_cms_refused_is_not_asked_again_with_that_key(
        self, world: World, redis: Any
    ) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        world.sim.state.faults.script.append(("upload", "403"))
        await world.upload()
        sent = [r for r in world.sim.state.requests if r.route == "upload"]
        await redis.flushdb()
        async with world.db.transaction() as session:
            assert await uploads.schedule_uploads(session) == 0, "no job for a refused pair"
        assert not await redis.exists(f"arq:job:resolutions:{world.key.id}:H1234")
        outcome = await world.upload()  # a job queued before the refusal, say
        assert outcome.files == 0
        assert [r for r in world.sim.state.requests if r.route == "upload"] == sent
        assert (await world.resolution(ident)).state is ResolutionState.QUEUED

    async def test_a_file_cms_refuses_whole_is_rejected_with_its_words_not_sent_again(
        self, world: World
    ) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        world.sim.state.faults.script.append(("upload", "400"))
        outcome = await world.upload()
        assert (outcome.rejected, outcome.retry_in) == (1, None)
        rejected = await world.resolution(ident)
        assert rejected.state is ResolutionState.REJECTED
        said = "CMS refused the whole upload file (400): "
        said += "The file does not match the plan upload layout"
        assert rejected.cms_errors == [said]
        assert (await world.complaint(complaint.id)).resolution_state is ResolutionState.REJECTED
        [event] = await events(world.db, "resolution.rejected")
        assert event.payload["errors"] == [said]
        assert (await world.upload()).files == 0, "not sent again"
        assert len([r for r in world.sim.state.requests if r.route == "upload"]) == 1

    async def test_rate_limit_requeues_and_asks_to_retry_later(self, world: World) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        world.sim.state.faults.rate_429 = 1.0
        world.sim.state.faults.retry_after = 7
        outcome = await world.upload()
        assert outcome.retry_in is not None
        assert outcome.retry_in >= 1
        assert (await world.resolution(ident)).state is ResolutionState.QUEUED
        world.sim.state.faults.rate_429 = 0.0
        assert (await world.upload(attempt=2)).accepted == 1


class CmsSays(httpx.AsyncBaseTransport):
    """The simulator, except that CMS answers the next upload with `answer` (as CMS might
    word it: quoting the file, or its own records)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.answer: httpx.Response | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == modeled.UPLOAD_PATH and self.answer is not None:
            await request.aread()
            answer, self.answer = self.answer, None
            return answer
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# What CMS's words might hold: the summary sent, a beneficiary's name and identifier.
QUOTED = f"RESOLUTION_SUMMARY '{CANARY}' names Jane Q Doe (MBI 1EG4-TE5-MK73)"


class TestCmsWordsStaySealed:
    """CMS's words about a rejected upload may quote PHI: the caseworker reads them (sealed,
    in the resolution's audited view); events, logs, the job's result and PHI-free fields
    carry their safe form."""

    async def upload_answered(self, world: World, answer: httpx.Response) -> uploads.UploadOutcome:
        says = CmsSays()
        says.answer = answer
        async with CtmClient(
            CtmEnvironment.SANDBOX, base_url=world.sim.url, retry=FAST, transport=says
        ) as client:  # fmt: skip
            return await uploads.upload_pending(
                world.db, {CtmEnvironment.SANDBOX: client}, tenant_id=world.member.tenant_id,
                key_id=world.key.id, contract="H1234",
            )  # fmt: skip

    async def seen_by_caseworker(
        self, world: World, complaint: Complaint, settings: Settings, redis: Any
    ) -> list[str]:
        async with app_client(create_app(settings, database=world.db, redis=redis)) as client:
            response = await client.get(
                f"/api/v1/complaints/{complaint.id}/resolutions", headers=world.member.headers
            )
        assert response.status_code == 200, response.text
        [resolution] = response.json()
        return list(resolution["cms_errors"])

    async def assert_kept_out(
        self, world: World, ident: UUID, logs: Any, capfd: pytest.CaptureFixture[str]
    ) -> list[str]:
        captured = capfd.readouterr()
        [event] = await events(world.db, "resolution.rejected")
        stored = await world.resolution(ident)
        for phi in (CANARY, "Jane", "1EG4-TE5-MK73"):
            assert phi not in repr(logs)
            assert phi not in captured.out + captured.err
            assert phi not in repr(event.payload)
            assert phi not in repr(stored.cms_errors), "a PHI-free field"
        assert stored.cms_errors == event.payload["errors"]
        assert event.payload["reason"] == "; ".join(stored.cms_errors)
        return list(stored.cms_errors)

    async def test_a_whole_file_refusal_quoting_the_file(
        self, world: World, settings: Settings, redis: Any, capfd: pytest.CaptureFixture[str]
    ) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        with captured_logs() as logs:
            outcome = await self.upload_answered(
                world, httpx.Response(422, json={"error": f"row 2: {QUOTED}"})
            )
        assert outcome.rejected == 1
        assert outcome.error is not None
        assert CANARY not in outcome.error, "the job's result is logged by arq"
        safe = await self.assert_kept_out(world, ident, logs, capfd)
        assert safe == [
            "CMS refused the whole upload file (422): row 2: RESOLUTION_SUMMARY […] names […]"
        ]
        assert outcome.error == safe[0]
        said = f"CMS refused the whole upload file (422): row 2: {QUOTED}"
        assert await self.seen_by_caseworker(world, complaint, settings, redis) == [said]

    async def test_a_rows_rejection_quoting_the_file(
        self, world: World, settings: Settings, redis: Any, capfd: pytest.CaptureFixture[str]
    ) -> None:
        [complaint] = await world.open_complaints()
        ident = await world.resolve(complaint)
        errors = [QUOTED, f"complaint {complaint.complaint_id} is closed"]
        answer = {
            "accepted": [],
            "rejected": [{"complaintId": complaint.complaint_id, "errors": errors}],
        }
        with captured_logs() as logs:
            outcome = await self.upload_answered(world, httpx.Response(200, json=answer))
        assert outcome.rejected == 1
        safe = await self.assert_kept_out(world, ident, logs, capfd)
        assert safe == [
            "RESOLUTION_SUMMARY […] names […]",
            f"complaint {complaint.complaint_id} is closed",
        ]
        assert await self.seen_by_caseworker(world, complaint, settings, redis) == errors


class TestWorker:
    async def test_job_after_commit_and_cron_through_arq(
        self, world: World, redis: Any, settings: Settings
    ) -> None:
        complaints = await world.open_complaints(n=2)
        await world.resolve(complaints[0])  # enqueues resolutions.upload after commit
        worker = create_worker(
            settings, database=world.db, redis_pool=redis, ctm_clients=world.clients, burst=True
        )
        try:
            await worker.main()
        finally:
            await worker.close()
        assert world.uploaded_ids() == [complaints[0].complaint_id]
        # The cron finds what is still queued (here: one written without its job).
        async with world.db.transaction() as session:
            await write_resolution(
                session, world.member.principal, complaint_pk=complaints[1].id,
                data=ResolutionInput(resolution_date=utcnow().date(), summary=CANARY),
            )  # fmt: skip
            session.info.pop("hub.jobs.pending", None)  # as if Redis lost the job
        async with world.db.transaction() as session:
            assert await uploads.schedule_uploads(session) == 1
        async with world.db.transaction() as session:
            assert await uploads.schedule_uploads(session) == 1, "job ids make repeats no-ops"
        worker = create_worker(
            settings, database=world.db, redis_pool=redis, ctm_clients=world.clients, burst=True
        )
        try:
            await worker.main()
        finally:
            await worker.close()
        assert sorted(world.uploaded_ids()) == sorted(c.complaint_id for c in complaints)
        assert len(world.sim.state.uploads) == 2


class TestSyncedDueDates:
    async def test_each_issue_level_from_the_simulator_through_the_api(
        self, world: World, settings: Settings, redis: Any
    ) -> None:
        today = utcnow().date()
        expected: dict[str, tuple[str, date]] = {}
        for c in world.sim.state.complaints("H1234", today - timedelta(days=90), today):
            assigned = datetime.strptime(c.cells["ASSIGNMENT_DATE"], "%m/%d/%Y").date()
            days = 2 if c.cells["ISSUE_LEVEL"] == "Immediate Need" else 7
            expected[c.complaint_id] = (c.cells["ISSUE_LEVEL"], assigned + timedelta(days=days))
        async with app_client(create_app(settings, database=world.db, redis=redis)) as client:
            response = await client.get(
                "/api/v1/complaints", params={"contract": "H1234", "limit": 500},
                headers=world.member.headers,
            )  # fmt: skip
        assert response.status_code == 200
        listed = response.json()
        assert {c["complaint_id"] for c in listed} == set(expected)
        for c in listed:
            level, due = expected[c["complaint_id"]]
            assert (c["issue_level"], c["due_date"], c["due_basis"]) == (
                level, due.isoformat(), "assignment",
            )  # fmt: skip
        assert {c["issue_level"] for c in listed} == {"Standard", "Urgent", "Immediate Need"}


class TestNoPhiLeaks:
    async def test_canary_summary_never_reaches_events_or_logs(
        self, world: World, capfd: pytest.CaptureFixture[str]
    ) -> None:
        complaints = await world.open_complaints(n=2)
        with captured_logs() as logs:
            await world.resolve(complaints[0])
            world.sim.state.faults.script.append(("upload", "500"))
            world.sim.state.faults.rate_500 = 1.0
            await world.upload()  # fails, re-queued, logged
            world.sim.state.faults.rate_500 = 0.0
            await world.upload()
            async with world.db.transaction() as session:
                ghost = await make_complaint(
                    session, world.member.tenant_id, complaint_id="CTM-GHOST",
                    api_key_id=world.key.id,
                )  # fmt: skip
            await world.resolve(ghost)
            await world.upload()
        assert logs, "the failure was logged"
        assert CANARY not in repr(logs)
        captured = capfd.readouterr()
        assert CANARY not in captured.out + captured.err
        async with world.db.transaction() as session:
            payloads = [e.payload for e in await session.scalars(select(Event))]
        assert any(p.get("complaint_id") == "CTM-GHOST" for p in payloads)
        assert CANARY not in repr(payloads)
