"""README's event catalog against the events the code records: every type it lists is
driven through the code path that records it, and the example's `data` keys must be the
keys those events carry (integrators write their receivers against the examples)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import rules
from hub.audit.service import Actor
from hub.auth import service as auth
from hub.complaints import doubt
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID
from hub.events.catalog import EVENT_TYPES
from hub.events.models import Event
from hub.events.service import SCHEMA_VERSION, envelope, record_event
from hub.keys import service as keys
from hub.keys.schemas import KeyRotate
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome
from hub.webhooks import payloads, replay
from tests.integration.alerts.support import at, make_key, make_plan
from tests.integration.alerts.support import make_complaint as make_due_complaint
from tests.integration.complaints.support import make_complaint
from tests.integration.webhooks.support import Harness, Receiver, make_endpoint, policy
from tests.support import make_member, make_tenant
from tests.workers import test_resolutions as resolution_tests
from tests.workers.test_resolutions import World

# A tenant with a sandbox key, synced from the CTM simulator (tests/workers/test_resolutions).
world = resolution_tests.world

README = Path(__file__).resolve().parents[2] / "README.md"

# Which test drives the code paths that record each type.
SYNC_PATH = (
    "complaint.created", "complaint.updated", "resolution.accepted", "resolution.rejected",
    "sync.completed", "sync.failed", "key.invalid", "key.access_lost",
)  # fmt: skip
LEFT_TO_A_PERSON = ("resolution.unconfirmed",)
KEY_CHANGES = (
    "key.created", "key.rotated", "key.compromised", "key.deactivated", "key.suspended",
    "key.resumed", "key.orphaned", "key.contracts_changed", "key.designees_changed",
    "key.access_restored",
)  # fmt: skip
ALERTS = ("alert.raised", "alert.escalated", "alert.resolved")
WEBHOOKS = ("webhook.test", "webhook.endpoint_disabled")


class Catalog(NamedTuple):
    entries: list[dict[str, Any]]  # in README order
    notes: str  # the text after the block: where optional keys are named

    @property
    def by_type(self) -> dict[str, dict[str, Any]]:
        return {entry["type"]: entry for entry in self.entries}


@cache
def catalog() -> Catalog:
    """The JSON objects of the catalog's block, one after another (an entry may wrap)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n### Event catalog\n", 1)[1].split("\n## ", 1)[0]
    block, notes = section.split("```json\n", 1)[1].split("\n```", 1)
    decoder, entries, at_ = json.JSONDecoder(), [], 0
    while block[at_:].strip():
        at_ += len(block[at_:]) - len(block[at_:].lstrip())
        entry, at_ = decoder.raw_decode(block, at_)
        entries.append(entry)
    return Catalog(entries, notes)


def check(recorded: Sequence[Event], types: Iterable[str]) -> None:
    """Every recorded event's type is listed, and its keys are the example's or named in the
    notes; for `types` (whose every variant the caller drove), the keys every event carries
    are all in the example, and each key of the example is carried by some event."""
    listed, notes = catalog().by_type, catalog().notes
    unlisted = sorted({e.type for e in recorded} - listed.keys())
    assert not unlisted, f"recorded but missing from README's catalog: {unlisted}"
    problems = []
    for type_ in sorted({e.type for e in recorded} | set(types)):
        variants = [set(e.payload) for e in recorded if e.type == type_]
        assert variants, f"the test recorded no {type_} event"
        shown, seen = set(listed[type_]["data"]), set.union(*variants)
        if unnamed := sorted(k for k in seen - shown if f"`{k}`" not in notes):
            problems.append(f"{type_}: {unnamed} recorded, in neither the example nor the notes")
        if type_ not in types:
            continue
        if missing := sorted(set.intersection(*variants) - shown):
            problems.append(f"{type_}: every event carries {missing}, the example does not")
        if stale := sorted(shown - seen):
            problems.append(f"{type_}: the example shows {stale}, no event carries them")
    assert not problems, "\n".join(problems)


async def all_events(session: AsyncSession) -> list[Event]:
    return list((await session.scalars(select(Event).order_by(Event.id))).all())


class TestCatalogBlock:
    def test_each_type_is_listed_once_and_checked_by_a_test_here(self) -> None:
        types = [entry["type"] for entry in catalog().entries]
        assert len(types) == len(set(types)), "a type is listed twice"
        assert set(types) == {*SYNC_PATH, *LEFT_TO_A_PERSON, *KEY_CHANGES, *ALERTS, *WEBHOOKS}
        assert set(types) == EVENT_TYPES, "what endpoints may subscribe to is what is listed"

    async def test_the_first_example_is_the_envelope_receivers_get(
        self, session: AsyncSession
    ) -> None:
        first, *others = catalog().entries
        tenant = await make_tenant(session, "acme-health")
        event = record_event(session, TenantID(tenant.id), "webhook.test", {"note": "hello"})
        await session.flush()
        sent = json.loads(payloads.body_of(event, tenant.slug, include_phi=False))
        assert list(first) == list(sent) == list(envelope(event, tenant.slug))
        assert first["schema_version"] == sent["schema_version"] == SCHEMA_VERSION
        assert first["timestamp"].endswith("Z")
        assert sent["timestamp"].endswith("Z")
        assert [sorted(entry) for entry in others] == [["data", "type"]] * len(others), (
            "the other examples show only type and data"
        )


class TestSyncPath:
    async def test_complaint_resolution_sync_and_refusal_events_carry_the_documented_keys(
        self, world: World
    ) -> None:
        # The fixture synced H1234 once: complaint.created, sync.completed. The newest open
        # complaints are the ones the next (incremental) download reaches.
        lost, changed, fresh = await world.open_complaints(n=3)
        async with world.db.transaction() as session:
            ghost = await make_complaint(
                session, world.member.tenant_id, complaint_id="CTM-NOT-AT-CMS",
                api_key_id=world.key.id, received=utcnow().date() - timedelta(days=2),
            )  # fmt: skip
        await world.resolve(fresh)
        await world.resolve(ghost)
        outcome = await world.upload()
        assert (outcome.accepted, outcome.rejected) == (1, 1)
        in_doubt = await self.lose_the_answer(world, lost)
        world.sim.state.resolutions[("H1234", changed.complaint_id)] = {"CMS_COMMENTS": "Call."}
        await world.sync()  # complaint.updated; the upload in doubt accepted (confirmed_by)
        assert (await world.resolution(in_doubt)).state is ResolutionState.ACCEPTED
        world.sim.state.faults.script.append(("download", "cut"))
        assert (await self.sync(world, "H1234")) is RunOutcome.FAILED
        world.sim.state.get_key(world.sim_key.key_id).contracts.discard("S5678")
        assert (await self.sync(world, "S5678")) is RunOutcome.BLOCKED  # key.access_lost
        world.sim.state.rotate(world.sim_key.key_id)
        world.sim.state.expire_tokens()
        assert (await self.sync(world, "H1234")) is RunOutcome.BLOCKED  # key.invalid
        async with world.db.transaction() as session:
            check(await all_events(session), SYNC_PATH)

    async def test_an_upload_in_doubt_left_to_a_person_carries_the_documented_keys(
        self, world: World
    ) -> None:
        [gone] = await world.open_complaints()
        in_doubt = await self.lose_the_answer(world, gone)
        # CMS's file no longer shows the complaint, and enough downloads have said so.
        world.sim.state.resolutions[("H1234", gone.complaint_id)]["COMPLAINT_ID"] = "X1"
        async with world.db.transaction() as session:
            resolution = await session.get(Resolution, in_doubt)
            assert resolution is not None
            resolution.in_doubt_since = utcnow() - doubt.UNCONFIRMED_AFTER
            resolution.doubt_misses = doubt.UNCONFIRMED_MISSES - 1
        await world.sync()
        async with world.db.transaction() as session:
            check(await all_events(session), LEFT_TO_A_PERSON)

    async def lose_the_answer(self, world: World, complaint: Complaint) -> UUID:
        """An upload whose answer never comes back: in doubt until the next download."""
        ident = await world.resolve(complaint)
        await world.upload_losing_the_answer()
        return ident

    async def sync(self, world: World, contract: str) -> RunOutcome:
        result = await syncs.run_sync(
            world.db, world.clients, tenant_id=world.member.tenant_id, key_id=world.key.id,
            contract=contract,
        )  # fmt: skip
        return result.outcome


class TestKeyChanges:
    async def test_every_key_change_carries_the_documented_keys(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        key = await make_key(session, plan)
        rp = plan.rp.principal
        await keys.rotate_key(
            session, rp, key_id=key.id,
            data=KeyRotate(key_id="KEY-ROTATED-1", secret="reissued", verify=False),
            verifier=None,
        )  # fmt: skip
        await keys.suspend_key(session, rp, key_id=key.id)
        await keys.resume_key(session, rp, key_id=key.id)
        await keys.mark_access_lost(
            session, tenant_id=plan.tenant_id, key_id=key.id, contract="H1234", reason="403"
        )
        await keys.restore_access(session, rp, key_id=key.id, contract="H1234")
        await keys.set_contracts(session, rp, key_id=key.id, numbers=["H1234"])
        await keys.set_designees(
            session, rp, key_id=key.id, users=[plan.caseworker.user.id], tokens=[]
        )
        await keys.report_compromise(
            session, tenant_id=plan.tenant_id, key_id=key.id, actor=Actor.of_principal(rp)
        )
        await keys.deactivate_key(session, rp, key_id=key.id)
        await make_key(session, plan, replaces=key.id)  # key.created, naming what it replaces
        await auth.remove_member(
            session, plan.admin.principal, membership_id=plan.rp.membership.id
        )  # key.orphaned: its RP left
        check(await all_events(session), KEY_CHANGES)


class TestAlerts:
    async def test_alerts_with_and_without_a_contract_carry_the_documented_keys(
        self, session: AsyncSession
    ) -> None:
        plan = await make_plan(session)
        due = date(2030, 3, 14)
        key = await make_key(session, plan, rotation_on=due)
        complaint = await make_due_complaint(session, plan.tenant_id, due=due)
        await rules.evaluate(session, now=at(due - timedelta(days=14)))  # rotation due
        await rules.evaluate(session, now=at(due - timedelta(days=3)))  # escalated
        await rules.evaluate(session, now=at(due))  # the complaint is due soon
        await rules.evaluate(session, now=at(due + timedelta(days=1)))  # and then overdue
        complaint.resolution_state = ResolutionState.ACCEPTED
        await rules.evaluate(session, now=at(due + timedelta(days=2)))  # overdue resolved
        await keys.rotate_key(
            session, plan.rp.principal, key_id=key.id,
            data=KeyRotate(key_id="KEY-ROTATED-2", secret="reissued", verify=False),
            verifier=None,
        )  # fmt: skip
        recorded = await all_events(session)
        kinds = {(e.type, e.payload["kind"]) for e in recorded if e.type.startswith("alert.")}
        assert {
            ("alert.raised", "complaint.overdue"), ("alert.resolved", "complaint.overdue"),
            ("alert.raised", "key.rotation_due"), ("alert.escalated", "key.rotation_due"),
            ("alert.resolved", "key.rotation_due"),
        } <= kinds  # fmt: skip
        check(recorded, ALERTS)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver(default_status=410).start()
    try:
        yield server
    finally:
        await server.stop()


class TestWebhooks:
    async def test_a_test_event_and_the_410_that_disables_its_endpoint_carry_the_documented_keys(
        self, db: Database, receiver: Receiver
    ) -> None:
        async with db.transaction() as session:
            admin = await make_member(
                session, await make_tenant(session, "acme-health"), email="a@acme.example"
            )
            endpoint, _ = await make_endpoint(session, admin, url=receiver.url)
            await replay.send_test(
                session, admin.tenant_id, endpoint_id=endpoint.id, note="a test event"
            )
        async with policy().create_session() as http:
            assert await Harness(db, http).run_due() == 1  # answered 410 Gone
        assert receiver.hits == 1
        async with db.transaction() as session:
            check(await all_events(session), WEBHOOKS)
