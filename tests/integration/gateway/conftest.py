"""A tenant with a sandbox key on the CTM simulator, its RP, a designee and an outsider, and
the hub (its gateway's CTM client pointed at the simulator) in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.auth import service as auth
from hub.auth.models import Role, Scope
from hub.core.db import Database
from hub.ctm import modeled
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.simulator import ContractPlan, RunningSimulator, SimKey, SimState, running_simulator
from hub.gateway.passthrough import GATEWAY_RETRY
from hub.keys import repository
from hub.keys import service as keys
from hub.keys.models import ApiKeyContract
from hub.keys.verify import CtmVerifier
from hub.settings import Settings
from tests.support import Member, app_client, bearer, make_member, make_tenant

TODAY = date(2025, 3, 3)
START, END = "2025-02-01", "2025-03-03"
POC = {"name": "Toni Tech", "email": "toni@plan.example"}
DOWNLOAD = f"/api/v1/gateway/sandbox{modeled.DOWNLOAD_PATH}"
UPLOAD = f"/api/v1/gateway/sandbox{modeled.UPLOAD_PATH}"


async def _no_sleep(_: float) -> None:
    return None


@dataclass
class World:
    client: httpx.AsyncClient
    sim: RunningSimulator
    settings: Settings
    admin: Member
    rp: Member  # the key's responsible party (a caseworker)
    designee: Member  # a caseworker the RP designates
    outsider: Member  # a caseworker of the tenant, not designated
    sim_key: SimKey
    key: dict[str, Any]  # the key's view, as the API shows it
    views: dict[str, dict[str, Any]] = field(default_factory=dict)  # by CMS key ID

    @property
    def key_path(self) -> str:
        return f"/api/v1/keys/{self.key['id']}"

    async def create_key(self, member: Member, contracts: set[str]) -> SimKey:
        """Another sandbox key for `member` (who becomes its RP), known to the simulator."""
        sim_key, view = await create_key(self.client, self.sim, member, contracts)
        self.views[sim_key.key_id] = view
        return sim_key

    async def key_token(
        self, member: Member, *, key_id: str | None = None, token: str | None = None, **body: Any
    ) -> httpx.Response:
        path = f"/api/v1/keys/{key_id or self.key['id']}/tokens"
        headers = bearer(token) if token else member.headers
        return await self.client.post(path, headers=headers, json={"name": "gateway", **body})

    async def downstream_token(self, session: AsyncSession) -> auth.IssuedToken:
        """A downstream system's token (the outsider's, holding `ctm:gateway`), committed:
        designated by token, not by user."""
        issued = await auth.issue_token(
            session, user=self.outsider.user, tenant_id=self.outsider.tenant_id,
            scopes=frozenset({Scope.CTM_GATEWAY}), name="downstream",
        )  # fmt: skip
        await session.commit()
        return issued

    async def bound_token(self, member: Member, **body: Any) -> str:
        response = await self.key_token(member, **body)
        assert response.status_code == 201, response.text
        return str(response.json()["secret"])

    async def download(
        self,
        token: str,
        *,
        contract: str = "H1234",
        start: str = START,
        end: str = END,
        consumer: str | None = None,
        environment: str = "sandbox",
    ) -> httpx.Response:
        headers = bearer(token) | ({modeled.CONSUMER_ID_HEADER: consumer} if consumer else {})
        return await self.client.get(
            f"/api/v1/gateway/{environment}{modeled.DOWNLOAD_PATH}", headers=headers,
            params={"contractId": contract, "startDate": start, "endDate": end},
        )  # fmt: skip

    async def upload(
        self, token: str, body: bytes | None, *, consumer: str | None = None
    ) -> httpx.Response:
        headers = bearer(token) | ({modeled.CONSUMER_ID_HEADER: consumer} if consumer else {})
        files = {"file": ("casework.csv", body, "text/csv")} if body is not None else None
        return await self.client.post(UPLOAD, headers=headers, files=files)

    async def direct_download(
        self, contract: str = "H1234", start: str = START, end: str = END
    ) -> bytes:
        """The file as CMS (the simulator) hands it to a caller holding the secret."""
        async with httpx.AsyncClient(base_url=self.sim.url) as cms:
            token = await cms.post(
                modeled.TOKEN_PATH,
                json={"userName": self.sim_key.hpms_user, "keyId": self.sim_key.key_id,
                      "keySecret": self.sim_key.secret, "scopes": modeled.DEFAULT_SCOPE},
            )  # fmt: skip
            answer = await cms.get(
                modeled.DOWNLOAD_PATH,
                headers={modeled.CONSUMER_ID_HEADER: self.sim_key.key_id,
                         "Authorization": f"Bearer {token.json()['accessToken']}"},
                params={"contractId": contract, "startDate": start, "endDate": end},
            )  # fmt: skip
            assert answer.status_code == 200
            return answer.content

    def routes(self) -> list[tuple[str, str | None, int]]:
        return [(r.route, r.key_id, r.status) for r in self.sim.state.requests]


async def create_key(
    client: httpx.AsyncClient, sim: RunningSimulator, member: Member, contracts: set[str]
) -> tuple[SimKey, dict[str, Any]]:
    """A sandbox key registered (and verified) by `member`, who becomes its RP."""
    sim_key = sim.state.add_key(hpms_user="RPUSER01", contracts=contracts)
    response = await client.post(
        "/api/v1/keys", headers=member.headers,
        json={"environment": "sandbox", "key_id": sim_key.key_id, "secret": sim_key.secret,
              "hpms_user_id": "RPUSER01", "technical_poc": POC, "contracts": sorted(contracts)},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return sim_key, dict(response.json())


@pytest.fixture(scope="session")
async def sim_server() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(SimState()) as running:
        yield running


@pytest.fixture
async def world(
    settings: Settings,
    db: Database,
    redis: Any,
    session: AsyncSession,
    sim_server: RunningSimulator,
) -> AsyncIterator[World]:
    tenant = await make_tenant(session, "plan")
    admin = await make_member(session, tenant, email="admin@plan.example", role=Role.ADMIN)
    rp = await make_member(session, tenant, email="rp@plan.example", role=Role.CASEWORKER)
    designee = await make_member(session, tenant, email="pat@plan.example", role=Role.CASEWORKER)
    outsider = await make_member(session, tenant, email="sam@plan.example", role=Role.CASEWORKER)
    for number in ("H1234", "S5678", "R0001"):
        await keys.add_contract(session, admin.principal, number=number)
    await session.commit()
    state = SimState(seed=11, start_day=TODAY, history_days=30)
    state.contracts["H1234"] = ContractPlan(daily_min=1, daily_max=3)
    sim_server.state.replace_with(state)  # the session's simulator, fresh for this test
    sim = sim_server
    here = settings.model_copy(update={"ctm_sandbox_url": sim.url})
    verifier = CtmVerifier(here)
    ctm = CtmClient.for_environment(
        here, CtmEnvironment.SANDBOX, retry=GATEWAY_RETRY, sleep=_no_sleep
    )
    app = create_app(
        here, database=db, redis=redis, ctm_verifier=verifier,
        ctm_clients={CtmEnvironment.SANDBOX: ctm},
    )  # fmt: skip
    async with app_client(app) as client:
        sim_key, view = await create_key(client, sim, rp, {"H1234", "S5678"})
        designated = await client.put(
            f"/api/v1/keys/{view['id']}/designees", headers=rp.headers,
            json={"users": [str(designee.user.id)]},
        )  # fmt: skip
        assert designated.status_code == 200, designated.text
        yield World(client, sim, here, admin, rp, designee, outsider, sim_key, view)
    await ctm.aclose()
    await verifier.aclose()


async def mapping(session: AsyncSession, world: World, number: str) -> ApiKeyContract:
    """The world's key's mapping to contract `number`, as stored now."""
    for link, contract in await repository.key_contracts(
        session, world.rp.tenant_id, [UUID(world.key["id"])]
    ):
        if contract.number == number:
            await session.refresh(link)
            return link
    raise AssertionError(f"the key does not map {number}")
