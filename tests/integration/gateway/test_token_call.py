"""CMS's token call at the gateway: a client written against CMS's own API works through
the hub unchanged, its hub token standing where the key's secret would."""

from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.ctm import modeled
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.credentials import CtmCredentials, StaticSecret
from tests.integration.gateway.conftest import END, START, World
from tests.support import make_member, make_tenant

TOKEN_CALL = f"/api/v1/gateway/sandbox{modeled.TOKEN_PATH}"


async def exchange(world: World, *, key_id: str, secret: str) -> tuple[int, dict[str, object]]:
    body = {"userName": "ANYONE", "keyId": key_id, "keySecret": secret, "scopes": "ctm"}
    response = await world.client.post(TOKEN_CALL, json=body)  # no bearer: the body is it
    return response.status_code, response.json()


class TestTokenCall:
    async def test_answers_the_hub_token_as_the_access_token(
        self, world: World, session: AsyncSession
    ) -> None:
        token = await world.bound_token(world.designee)
        asked_before = world.routes()
        status, body = await exchange(world, key_id=world.sim_key.key_id, secret=token)
        assert status == 200, body
        assert body["accessToken"] == token
        assert 12 * 3600 - 60 <= int(body["expires"]) <= 12 * 3600  # type: ignore[call-overload]
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "ctm.gateway.token")
        )
        assert entry is not None
        assert entry.target_id == world.key["id"]
        assert token not in str(entry.details)
        assert world.routes() == asked_before  # CMS was not asked: the secret stayed put

    async def test_a_ctm_client_works_through_the_gateway_unchanged(self, world: World) -> None:
        token = await world.bound_token(world.designee)
        credentials = CtmCredentials(
            environment=CtmEnvironment.SANDBOX, key_id=world.sim_key.key_id,
            hpms_user_id="ANYONE", version_id="v1", secret=StaticSecret(token),
        )  # fmt: skip
        through_hub = CtmClient(
            CtmEnvironment.SANDBOX,
            base_url="http://hub.test/api/v1/gateway/sandbox",
            transport=world.client._transport,  # the hub app, in this test's loop
        )
        async with through_hub:
            download = through_hub.download_complaints(
                credentials, "H1234", date.fromisoformat(START), date.fromisoformat(END)
            )
            rows = [record async for batch in download for record in batch]
        direct = list(csv.DictReader(io.StringIO((await world.direct_download()).decode())))
        assert rows
        assert [r.complaint_id for r in rows] == [r["COMPLAINT_ID"] for r in direct]

    async def test_every_refusal_is_cms_403(self, world: World) -> None:
        designee = await world.bound_token(world.designee)
        outsider = world.outsider.token
        for key_id, secret in (
            (world.sim_key.key_id, "hub_not-a-token"),
            (world.sim_key.key_id, outsider),  # not designated
            (world.sim_key.key_id, world.sim_key.secret),  # the key's own secret is no token
        ):
            status, body = await exchange(world, key_id=key_id, secret=secret)
            assert status == 403, (key_id, body)
            assert secret not in str(body)
        status, _ = await exchange(world, key_id="NO-SUCH-KEY", secret=designee)
        assert status == 404

    async def test_another_tenants_key_is_as_unknown_as_none(
        self, world: World, session: AsyncSession
    ) -> None:
        elsewhere = await make_member(
            session, await make_tenant(session, "elsewhere"), email="gw@elsewhere.example"
        )
        await session.commit()
        theirs = await exchange(world, key_id=world.sim_key.key_id, secret=elsewhere.token)
        unknown = await exchange(world, key_id="NO-SUCH-KEY", secret=elsewhere.token)
        assert theirs[0] == unknown[0] == 404
        # The same words (each echoing the key ID it was sent): nothing tells them apart.
        said = str(theirs[1]).replace(world.sim_key.key_id, "NO-SUCH-KEY")
        assert said == str(unknown[1])

    async def test_a_compromised_key_is_refused(self, world: World) -> None:
        token = await world.bound_token(world.designee)
        designee_token = world.designee.token
        compromised = await world.client.post(
            f"{world.key_path}/compromise", headers=world.admin.headers, json={}
        )
        assert compromised.status_code == 200, compromised.text
        status, _ = await exchange(world, key_id=world.sim_key.key_id, secret=designee_token)
        assert status == 403
        status, _ = await exchange(world, key_id=world.sim_key.key_id, secret=token)
        assert status == 403  # the key-bound token was revoked with the key

    async def test_a_malformed_call_names_the_field(self, world: World) -> None:
        response = await world.client.post(TOKEN_CALL, json={"keyId": "K"})
        assert response.status_code == 400
        assert "keySecret" in response.text
        response = await world.client.post(
            f"/api/v1/gateway/staging{modeled.TOKEN_PATH}", json={"keyId": "K", "keySecret": "x"}
        )
        assert response.status_code == 400
        assert "environment" in response.text
