"""The gateway's download: CMS's file passed on as it came, to the key's RP and designees
only, through the right key, with CMS's refusals mapped and the key's lifecycle kept."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from litestar.exceptions import LitestarException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.app import create_app
from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.core.db import Database
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.simulator import ContractPlan, bind
from hub.ctm.simulator.state import Faults
from hub.keys import service as keys
from hub.keys.models import ApiKey, KeyStatus
from hub.syncs.slots import PER_KEY_CONCURRENCY, key_slot
from tests.integration.gateway.conftest import DOWNLOAD, END, START, World, create_key, mapping
from tests.support import make_member, make_tenant


class TestPassThrough:
    async def test_the_body_is_cms_file_byte_for_byte(self, world: World) -> None:
        response = await world.download(world.rp.token)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        direct = await world.direct_download()
        assert b"COMPLAINT_ID" in direct
        assert response.content == direct

    async def test_a_designee_and_a_key_bound_token_download_too(self, world: World) -> None:
        assert (await world.download(world.designee.token)).status_code == 200
        bound = await world.bound_token(world.designee)
        assert (await world.download(bound)).status_code == 200

    async def test_a_designated_token_downloads_while_its_user_is_no_designee(
        self, world: World, session: AsyncSession
    ) -> None:
        system = await world.downstream_token(session)
        await world.client.put(
            f"{world.key_path}/designees", headers=world.rp.headers,
            json={"tokens": [str(system.token.id)]},
        )  # fmt: skip
        assert (await world.download(system.plaintext)).status_code == 200
        assert (await world.download(world.outsider.token)).status_code == 403

    async def test_the_secret_reaches_cms_and_nothing_else(self, world: World) -> None:
        response = await world.download(world.designee.token)
        assert world.sim_key.secret not in response.text
        assert world.sim_key.secret not in str(response.headers)
        assert ("token", world.sim_key.key_id, 200) in world.routes()


class TestWhoMay:
    async def test_a_member_not_designated_is_403(self, world: World) -> None:
        response = await world.download(world.outsider.token)
        assert response.status_code == 403
        assert "designates" in response.json()["detail"]
        assert world.routes() == [("token", world.sim_key.key_id, 200)]  # the key's verify only

    async def test_a_viewer_holds_no_ctm_gateway(self, world: World, session: AsyncSession) -> None:
        viewer = await make_member(
            session, world.rp.tenant, email="vi@plan.example", role=Role.VIEWER
        )
        await session.commit()
        assert (await world.download(viewer.token)).status_code == 403

    async def test_another_tenant_gets_404_for_the_key_id_and_the_environment(
        self, world: World, session: AsyncSession
    ) -> None:
        stranger = await make_member(
            session, await make_tenant(session, "rival"), email="x@rival.example"
        )
        await keys.add_contract(session, stranger.principal, number="H1234")
        await session.commit()
        by_key_id = await world.download(stranger.token, consumer=world.sim_key.key_id)
        assert by_key_id.status_code == 404
        assert world.key["id"] not in by_key_id.text
        # The rival's own key, on the same simulator: A's key ID still names nothing for it.
        await create_key(world.client, world.sim, stranger, {"H1234"})
        again = await world.download(stranger.token, consumer=world.sim_key.key_id)
        assert again.status_code == 404
        assert "no sandbox key of this tenant" in again.json()["detail"]


class TestWhichKey:
    async def test_the_header_names_the_key_otherwise_the_serving_key(self, world: World) -> None:
        newer = await world.create_key(world.rp, {"H1234"})
        await world.download(world.rp.token)
        await world.download(world.rp.token, consumer=newer.key_id)
        downloads = [key for route, key, _ in world.routes() if route == "download"]
        assert downloads == [world.sim_key.key_id, newer.key_id]

    async def test_an_unknown_key_id_is_404(self, world: World) -> None:
        response = await world.download(world.rp.token, consumer="NO-SUCH-KEY")
        assert response.status_code == 404
        assert "X-API-CONSUMER-ID" in response.json()["detail"]

    async def test_a_key_bound_token_is_refused_on_another_key(self, world: World) -> None:
        other = await world.create_key(world.rp, {"H1234"})
        bound = await world.bound_token(world.rp)
        response = await world.download(bound, consumer=other.key_id)
        assert response.status_code == 403
        assert "bound to key" in response.json()["detail"]
        # Without the header it acts with its own key, not the contract's serving key.
        assert (await world.download(bound, consumer=world.sim_key.key_id)).status_code == 200

    async def test_a_key_bound_token_acts_with_its_key_without_the_header(
        self, world: World
    ) -> None:
        other = await world.create_key(world.rp, {"S5678", "R0001"})
        designate = await world.client.put(
            f"/api/v1/keys/{world.views[other.key_id]['id']}/designees",
            headers=world.rp.headers, json={"users": [str(world.designee.user.id)]},
        )  # fmt: skip
        assert designate.status_code == 200
        bound = await world.bound_token(world.designee)
        # R0001 is served by the other key alone: this token's key does not cover it.
        response = await world.download(bound, contract="R0001")
        assert response.status_code == 403
        assert "does not cover" in response.json()["detail"]


class TestRefusals:
    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"contract": ""}, "contractId"),
            ({"contract": "Z1234"}, "contractId"),
            ({"start": "03/01/2025"}, "startDate"),
            ({"end": "2025-02-30"}, "endDate"),
            ({"start": "2025-03-04", "end": "2025-03-03"}, "startDate"),
        ],
    )
    async def test_bad_query_is_400_naming_the_parameter(
        self, world: World, query: dict[str, str], field: str
    ) -> None:
        response = await world.download(world.rp.token, **query)
        assert response.status_code == 400, response.text
        assert response.json()["extra"][0]["key"] == field

    async def test_an_environment_without_keys_is_404_and_an_unknown_one_400(
        self, world: World
    ) -> None:
        assert (await world.download(world.rp.token, environment="production")).status_code == 404
        unknown = await world.download(world.rp.token, environment="staging")
        assert unknown.status_code == 400
        assert unknown.json()["extra"][0]["key"] == "environment"

    async def test_a_contract_the_key_does_not_cover_is_403(self, world: World) -> None:
        response = await world.download(world.rp.token, contract="R0001")
        assert response.status_code == 403
        assert "no sandbox key of this tenant covers it" in response.json()["detail"]
        key_id = world.sim_key.key_id
        named = await world.download(world.rp.token, contract="R0001", consumer=key_id)
        assert named.status_code == 403
        assert "does not cover" in named.json()["detail"]

    async def test_a_contract_whose_access_was_lost_is_403(
        self, world: World, session: AsyncSession
    ) -> None:
        link = await mapping(session, world, "S5678")
        link.access_lost_at = link.created_at
        await session.commit()
        response = await world.download(world.rp.token, contract="S5678")
        assert response.status_code == 403
        assert "request a new key" in response.json()["detail"]

    @pytest.mark.parametrize("step", ["suspend", "compromise"])
    async def test_a_key_not_active_is_409_naming_its_status(self, world: World, step: str) -> None:
        changed = await world.client.post(
            f"{world.key_path}/{step}", headers=world.rp.headers, json={}
        )
        assert changed.status_code == 200
        response = await world.download(world.designee.token)
        assert response.status_code == 409
        status = "suspended" if step == "suspend" else "compromised"
        assert status in response.json()["detail"]

    async def test_a_busy_key_is_429_with_retry_after(self, world: World, redis: Any) -> None:
        async with AsyncExitStack() as held:
            for _ in range(PER_KEY_CONCURRENCY):  # the key's syncs hold every slot
                assert await held.enter_async_context(key_slot(redis, world.key["id"]))
            response = await world.download(world.rp.token)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "5"
        assert "busy" in response.json()["detail"]
        assert (await world.download(world.rp.token)).status_code == 200  # slots given back


class TestCmsFaults:
    async def test_a_refused_key_is_502_and_marked_as_syncs_do(
        self, world: World, session: AsyncSession
    ) -> None:
        world.sim.state.deactivate(world.sim_key.key_id)
        response = await world.download(world.rp.token)
        assert response.status_code == 502
        assert "marked as needing replacement" in response.json()["detail"]
        key = await session.get(ApiKey, UUID(world.key["id"]), populate_existing=True)
        assert key is not None
        assert key.status is KeyStatus.NEEDS_REPLACEMENT
        assert (await world.download(world.rp.token)).status_code == 409

    async def test_a_refused_contract_is_403_and_its_access_marked_lost(
        self, world: World, session: AsyncSession
    ) -> None:
        world.sim_key.contracts.discard("S5678")  # HPMS took the contract off the key
        response = await world.download(world.rp.token, contract="S5678")
        assert response.status_code == 403
        link = await mapping(session, world, "S5678")
        assert link.access_lost_at is not None
        assert (await world.download(world.rp.token)).status_code == 200  # H1234 carries on

    async def test_cms_rate_limit_is_429_with_its_retry_after(self, world: World) -> None:
        world.sim.state.faults = Faults(retry_after=120, script=[("download", "429")])
        response = await world.download(world.rp.token)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "120"

    async def test_a_short_rate_limit_is_retried_once_then_passed_back(self, world: World) -> None:
        world.sim.state.faults = Faults(retry_after=1, script=[("download", "429")])
        assert (await world.download(world.rp.token)).status_code == 200
        world.sim.state.faults = Faults(retry_after=1, script=[("download", "429")] * 2)
        response = await world.download(world.rp.token)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"

    async def test_cms_unavailable_is_503(self, world: World) -> None:
        world.sim.state.faults = Faults(script=[("download", "500"), ("download", "503")])
        response = await world.download(world.rp.token)
        assert response.status_code == 503
        assert "unavailable" in response.json()["detail"]

    @pytest.mark.parametrize("fault", ["html", "html_as_csv", "json", "400"])
    async def test_an_answer_that_is_not_the_file_is_502(self, world: World, fault: str) -> None:
        world.sim.state.faults = Faults(script=[("download", fault)])  # type: ignore[list-item]
        response = await world.download(world.rp.token)
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("application/json")

    async def test_a_download_cut_mid_body_breaks_off_the_answer(
        self, world: World, redis: Any
    ) -> None:
        world.sim.state.faults = Faults(script=[("download", "cut")])
        # Litestar ends the answer unfinished (a server then drops the connection): the
        # caller never takes a cut file for a whole one.
        with pytest.raises(LitestarException, match="after response started"):
            await world.download(world.rp.token)
        async with AsyncExitStack() as held:  # the slot came back
            for _ in range(PER_KEY_CONCURRENCY):
                assert await held.enter_async_context(key_slot(redis, world.key["id"]))


@pytest.mark.slow
class TestOverARealServer:
    async def test_bytes_flow_while_cms_sends_and_a_hang_up_frees_the_key(
        self, world: World, db: Database, redis: Any, session: AsyncSession
    ) -> None:
        """Served by uvicorn: the first bytes reach the caller long before CMS has sent the
        whole file (it is streamed, not held), and a caller hanging up mid-file gives the
        key's slot back and is audited as an incomplete download."""
        world.sim.state.contracts["H1234"] = ContractPlan(daily_min=8, daily_max=8)
        world.sim.state.faults = Faults(chunk_delay_ms=400)
        ctm = CtmClient.for_environment(world.settings, CtmEnvironment.SANDBOX)
        app = create_app(
            world.settings, database=db, redis=redis,
            ctm_clients={CtmEnvironment.SANDBOX: ctm},
        )  # fmt: skip
        async with _serving(app) as url, httpx.AsyncClient(base_url=url) as caller:
            started = time.monotonic()
            async with caller.stream(
                "GET", DOWNLOAD, headers=world.rp.headers,
                params={"contractId": "H1234", "startDate": START, "endDate": END},
            ) as response:  # fmt: skip
                assert response.status_code == 200
                first = await anext(response.aiter_raw())
                waited = time.monotonic() - started
            assert b"COMPLAINT_ID" in first[:20]
            assert waited < 1.5  # CMS needs over 2 s for the whole file at this pace
            await _slot_freed(redis, world.key["id"])
        await ctm.aclose()
        call = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "ctm.gateway.download")
        )
        assert call is not None
        assert call.details["complete"] is False
        assert 0 < call.details["bytes"] < len(await world.direct_download())


@asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[str]:
    sock = bind()
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag only
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task


async def _slot_freed(redis: Any, key_id: str, *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with AsyncExitStack() as held:
            taken = [
                await held.enter_async_context(key_slot(redis, key_id))
                for _ in range(PER_KEY_CONCURRENCY)
            ]
            if all(taken):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the key's slot was not given back")
