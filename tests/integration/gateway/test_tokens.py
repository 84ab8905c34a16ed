"""Key-bound tokens: who gets one, what it holds, how long it lives, and what it may mint."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth import service as auth
from hub.auth.models import ApiToken, Role, Scope
from hub.core.db import utcnow
from tests.integration.gateway.conftest import World
from tests.support import bearer, make_member, make_tenant


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class TestIssuance:
    async def test_rp_gets_a_token_bound_to_the_key_holding_only_ctm_gateway(
        self, world: World, session: AsyncSession
    ) -> None:
        response = await world.key_token(world.rp)
        assert response.status_code == 201, response.text
        token = response.json()["token"]
        assert token["key"] == world.key["id"]
        assert token["scopes"] == ["ctm:gateway"]
        assert response.json()["secret"].startswith("hub_")
        lifetime = _at(token["expires_at"]) - utcnow()
        assert timedelta(hours=11, minutes=59) < lifetime <= timedelta(hours=12)
        stored = await session.get(ApiToken, UUID(token["id"]))
        assert stored is not None
        assert str(stored.api_key_id) == world.key["id"]

    async def test_a_designee_gets_one_and_the_token_list_names_its_key(self, world: World) -> None:
        response = await world.key_token(world.designee, expires_in="90m")
        assert response.status_code == 201, response.text
        listed = (await world.client.get("/api/v1/tokens", headers=world.designee.headers)).json()
        keys = {t["id"]: t["key"] for t in listed}
        assert keys[response.json()["token"]["id"]] == world.key["id"]
        assert list(keys.values()).count(None) == 1  # the designee's own ordinary token

    async def test_issuance_is_audited_with_the_key(
        self, world: World, session: AsyncSession
    ) -> None:
        response = await world.key_token(world.designee)
        entry = await session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "token.issued",
                AuditEntry.target_id == response.json()["token"]["id"],
            )
        )
        assert entry is not None
        assert entry.details["key"] == world.key["id"]
        assert entry.details["scopes"] == ["ctm:gateway"]
        assert response.json()["secret"] not in str(entry.details)

    async def test_a_member_not_designated_gets_403(self, world: World) -> None:
        response = await world.key_token(world.outsider)
        assert response.status_code == 403
        assert "designates" in response.json()["detail"]
        # A tenant admin is no designee either.
        assert (await world.key_token(world.admin)).status_code == 403

    async def test_a_token_designee_is_not_given_tokens(
        self, world: World, session: AsyncSession
    ) -> None:
        system = await world.downstream_token(session)
        put = await world.client.put(
            f"{world.key_path}/designees", headers=world.rp.headers,
            json={"users": [str(world.designee.user.id)], "tokens": [str(system.token.id)]},
        )  # fmt: skip
        assert put.status_code == 200
        assert (await world.key_token(world.outsider, token=system.plaintext)).status_code == 403

    async def test_an_inactive_key_is_409_naming_its_status(self, world: World) -> None:
        suspended = await world.client.post(f"{world.key_path}/suspend", headers=world.rp.headers)
        assert suspended.status_code == 200
        response = await world.key_token(world.designee)
        assert response.status_code == 409
        assert "suspended" in response.json()["detail"]

    async def test_another_tenants_key_is_404(self, world: World, session: AsyncSession) -> None:
        stranger = await make_member(
            session, await make_tenant(session, "rival"), email="x@rival.example",
            role=Role.CASEWORKER,
        )  # fmt: skip
        await session.commit()
        assert (await world.key_token(stranger)).status_code == 404

    async def test_a_token_without_ctm_gateway_is_403(
        self, world: World, session: AsyncSession
    ) -> None:
        narrow = await auth.issue_token(
            session, user=world.rp.user, tenant_id=world.rp.tenant_id,
            scopes=frozenset({Scope.KEYS_MANAGE}), name="narrow",
        )  # fmt: skip
        await session.commit()
        response = await world.key_token(world.rp, token=narrow.plaintext)
        assert response.status_code == 403
        assert "ctm:gateway" in response.json()["detail"]


class TestLifetime:
    async def test_it_ends_no_later_than_the_calling_token(
        self, world: World, session: AsyncSession
    ) -> None:
        short = await auth.issue_token(
            session, user=world.designee.user, tenant_id=world.designee.tenant_id,
            scopes=frozenset({Scope.CTM_GATEWAY}), name="short", expires_in=timedelta(hours=1),
        )  # fmt: skip
        await session.commit()
        default = await world.key_token(world.designee, token=short.plaintext)
        assert default.status_code == 400
        assert default.json()["extra"][0]["key"] == "expires_in"
        shorter = await world.key_token(world.designee, token=short.plaintext, expires_in="30m")
        assert shorter.status_code == 201
        assert short.token.expires_at is not None
        assert _at(shorter.json()["token"]["expires_at"]) <= short.token.expires_at

    async def test_the_duration_syntax_and_limits_are_those_of_post_tokens(
        self, world: World
    ) -> None:
        for bad in ("12", "367d", "0h", "forever"):
            response = await world.key_token(world.designee, expires_in=bad)
            assert response.status_code == 400, bad
            assert response.json()["extra"][0]["key"] == "expires_in"
        assert (await world.key_token(world.designee, expires_in="2w")).status_code == 201


class TestWhatItMayMint:
    async def test_a_key_bound_token_mints_no_unbound_token(self, world: World) -> None:
        bound = await world.bound_token(world.designee)
        response = await world.client.post(
            "/api/v1/tokens", headers=bearer(bound),
            json={"name": "escape", "scopes": ["ctm:gateway"], "expires_in": "1h"},
        )  # fmt: skip
        assert response.status_code == 403
        assert "bound to key" in response.json()["detail"]

    async def test_it_mints_tokens_for_its_own_key_only(self, world: World) -> None:
        other, _ = await _second_key(world)
        bound = await world.bound_token(world.rp)
        again = await world.key_token(world.rp, token=bound, expires_in="1h")
        assert again.status_code == 201
        assert again.json()["token"]["key"] == world.key["id"]
        elsewhere = await world.key_token(world.rp, token=bound, key_id=other, expires_in="1h")
        assert elsewhere.status_code == 403

    async def test_it_reaches_no_other_route(self, world: World) -> None:
        bound = await world.bound_token(world.rp)
        assert (await world.client.get("/api/v1/keys", headers=bearer(bound))).status_code == 403
        assert (
            await world.client.get("/api/v1/complaints", headers=bearer(bound))
        ).status_code == 403


async def _second_key(world: World) -> tuple[str, str]:
    """A second key of the RP's (on S5678 only): its hub id and CMS key ID."""
    sim_key = await world.create_key(world.rp, {"S5678"})
    return str(world.views[sim_key.key_id]["id"]), sim_key.key_id
