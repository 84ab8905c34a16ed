"""A tenant with a sandbox key and a production key for the same contract: the two CMS
environments' complaints stay apart, and each one's resolutions go to its own environment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.complaints.models import Complaint
from hub.complaints.resolutions import ResolutionInput, write_resolution
from hub.core.crypto import Crypto
from hub.core.db import Database, utcnow
from hub.core.jobs import ArqQueue
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.simulator.data import ContractPlan
from hub.ctm.simulator.server import running_simulator
from hub.ctm.simulator.state import SimState
from hub.keys import service as keys
from hub.keys.models import ApiKey, Environment
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.syncs import service as syncs
from hub.syncs.models import RunOutcome
from tests.conftest import delete_all_rows
from tests.support import Member, make_member, make_tenant
from tests.workers.test_syncs import FAST


@dataclass
class TwoEnvironments:
    db: Database
    clients: dict[CtmEnvironment, CtmClient]
    member: Member
    keys: dict[Environment, ApiKey]

    async def sync(self, environment: Environment) -> syncs.SyncResult:
        return await syncs.run_sync(
            self.db, self.clients, tenant_id=self.member.tenant_id,
            key_id=self.keys[environment].id, contract="H1234",
        )  # fmt: skip

    async def complaints(self) -> list[Complaint]:
        async with self.db.transaction() as session:
            return list((await session.scalars(select(Complaint))).all())


@pytest.fixture
async def both(engine: AsyncEngine, redis: Any, crypto: Crypto) -> AsyncIterator[TwoEnvironments]:
    db = Database(engine, ArqQueue(redis), crypto=crypto)
    # Both simulators number their complaints the same way: every ID is in both.
    sandbox = SimState(environment="sandbox", seed=7, history_days=5)
    production = SimState(environment="production", seed=8, history_days=5)
    for state in (sandbox, production):
        state.contracts["H1234"] = ContractPlan(daily_min=2, daily_max=3)
    async with running_simulator(sandbox) as sim_s, running_simulator(production) as sim_p:
        clients = {
            CtmEnvironment.SANDBOX: CtmClient(
                CtmEnvironment.SANDBOX, base_url=sim_s.url, retry=FAST
            ),
            CtmEnvironment.PRODUCTION: CtmClient(
                CtmEnvironment.PRODUCTION, base_url=sim_p.url, retry=FAST
            ),
        }
        try:
            async with db.transaction() as session:
                tenant = await make_tenant(session, "twoenv")
                member = await make_member(session, tenant, email="rp@twoenv.example")
                await keys.add_contract(session, member.principal, number="H1234")
                made: dict[Environment, ApiKey] = {}
                for environment, sim in (
                    (Environment.PRODUCTION, sim_p), (Environment.SANDBOX, sim_s),
                ):  # fmt: skip
                    sim_key = sim.state.add_key(hpms_user="RP01", contracts={"H1234"})
                    made[environment] = await keys.create_key(
                        session, member.principal,
                        data=KeyCreate(
                            environment=environment.value, key_id=sim_key.key_id,
                            secret=sim_key.secret, hpms_user_id="RP01",
                            technical_poc=TechnicalPoc("Pat", "pat@twoenv.example"),
                            contracts=["H1234"], verify=False,
                        ),
                        verifier=None,
                    )  # fmt: skip
            yield TwoEnvironments(db, clients, member, made)
        finally:
            for client in clients.values():
                await client.aclose()
            await delete_all_rows(engine)


async def test_the_same_complaint_ids_in_both_environments_are_two_complaints(
    both: TwoEnvironments,
) -> None:
    production = await both.sync(Environment.PRODUCTION)
    assert (production.outcome, production.changed) == (RunOutcome.SUCCEEDED, 0)
    before = {c.id: (c.phi_hash, c.api_key_id) for c in await both.complaints()}
    sandbox = await both.sync(Environment.SANDBOX)
    assert (sandbox.outcome, sandbox.changed) == (RunOutcome.SUCCEEDED, 0)
    assert sandbox.new > 0
    found = await both.complaints()
    assert len(found) == production.new + sandbox.new
    untouched = {c.id: (c.phi_hash, c.api_key_id) for c in found if c.id in before}
    assert untouched == before, "sandbox data never overwrites production's"
    by_environment = {
        environment: {c.complaint_id for c in found if c.environment is environment}
        for environment in Environment
    }
    assert by_environment[Environment.SANDBOX] & by_environment[Environment.PRODUCTION]
    for complaint in found:
        assert complaint.api_key_id == both.keys[complaint.environment].id
    # A re-sync of each reads its own rows back: nothing changes, nothing is new.
    for environment in Environment:
        again = await both.sync(environment)
        assert (again.new, again.changed) == (0, 0)


async def test_a_resolution_goes_to_its_complaints_environment(both: TwoEnvironments) -> None:
    await both.sync(Environment.PRODUCTION)
    await both.sync(Environment.SANDBOX)
    found = [c for c in await both.complaints() if c.cms_resolution_date is None]
    shared = {c.complaint_id for c in found if c.environment is Environment.SANDBOX} & {
        c.complaint_id for c in found if c.environment is Environment.PRODUCTION
    }
    complaint_id = sorted(shared)[0]  # open in both
    for environment in Environment:
        complaint = next(
            c for c in found if c.complaint_id == complaint_id and c.environment is environment
        )
        async with both.db.transaction() as session:
            written = await write_resolution(
                session, both.member.principal, complaint_pk=complaint.id,
                data=ResolutionInput(
                    resolution_date=max(complaint.received_date, utcnow().date()),
                    summary="Called the member; the refill went through.",
                ),
            )  # fmt: skip
        assert written.resolution.api_key_id == both.keys[environment].id
