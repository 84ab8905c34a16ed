"""What takes a key's hub tokens away: a compromise, a deactivation, a designee taken off
the list, a member leaving. Designation is checked at every call, so it takes effect at once."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth.models import ApiToken
from hub.events.models import Event
from tests.integration.gateway.conftest import World
from tests.support import bearer


async def _revoked(session: AsyncSession, token_id: str) -> bool:
    token = await session.get(ApiToken, UUID(token_id), populate_existing=True)
    assert token is not None
    return token.revoked_at is not None


class TestTheKeyGoes:
    async def test_compromise_revokes_key_bound_tokens_and_the_gateway_answers_409(
        self, world: World
    ) -> None:
        bound = await world.bound_token(world.designee)
        assert (await world.download(bound)).status_code == 200
        reported = await world.client.post(
            f"{world.key_path}/compromise", headers=world.outsider.headers, json={"reason": "leak"}
        )
        assert reported.status_code == 200
        assert (await world.download(bound)).status_code == 401
        assert (await world.client.get("/api/v1/me", headers=bearer(bound))).status_code == 401
        ordinary = await world.download(world.rp.token)
        assert ordinary.status_code == 409
        assert "compromised" in ordinary.json()["detail"]

    async def test_deactivation_revokes_them_too(self, world: World) -> None:
        bound = await world.bound_token(world.rp)
        done = await world.client.post(f"{world.key_path}/deactivate", headers=world.rp.headers)
        assert done.status_code == 200
        assert done.json()["status"] == "deactivated"
        assert (await world.download(bound)).status_code == 401


class TestTheDesigneeGoes:
    async def test_taking_a_designee_off_revokes_their_tokens_for_the_key_at_once(
        self, world: World, session: AsyncSession
    ) -> None:
        theirs = await world.key_token(world.designee)
        rps = await world.bound_token(world.rp)
        put = await world.client.put(
            f"{world.key_path}/designees", headers=world.rp.headers, json={"users": []}
        )
        assert put.status_code == 200
        assert await _revoked(session, theirs.json()["token"]["id"])
        assert (await world.download(theirs.json()["secret"])).status_code == 401
        # Their ordinary token is refused at once: designation is read at every call.
        assert (await world.download(world.designee.token)).status_code == 403
        assert (await world.download(rps)).status_code == 200  # the RP's own stays
        entry = await session.scalar(
            select(AuditEntry)
            .where(AuditEntry.action == "key.designees_changed")
            .order_by(AuditEntry.seq.desc())
        )
        assert entry is not None
        assert entry.details["tokens_revoked"] == 1

    async def test_tokens_bound_to_another_key_they_still_hold_stay(
        self, world: World, session: AsyncSession
    ) -> None:
        other = await world.create_key(world.rp, {"S5678"})
        other_id = world.views[other.key_id]["id"]
        await world.client.put(
            f"/api/v1/keys/{other_id}/designees", headers=world.rp.headers,
            json={"users": [str(world.designee.user.id)]},
        )  # fmt: skip
        kept = await world.key_token(world.designee, key_id=other_id)
        assert kept.status_code == 201
        await world.client.put(
            f"{world.key_path}/designees", headers=world.rp.headers, json={"users": []}
        )
        assert not await _revoked(session, kept.json()["token"]["id"])

    async def test_a_designated_token_taken_off_is_refused_at_once(
        self, world: World, session: AsyncSession
    ) -> None:
        system = await world.downstream_token(session)
        path = f"{world.key_path}/designees"
        await world.client.put(
            path, headers=world.rp.headers, json={"tokens": [str(system.token.id)]}
        )
        assert (await world.download(system.plaintext)).status_code == 200
        await world.client.put(path, headers=world.rp.headers, json={"tokens": []})
        assert (await world.download(system.plaintext)).status_code == 403

    async def test_a_member_leaving_loses_their_tokens_and_their_designations(
        self, world: World, session: AsyncSession
    ) -> None:
        bound = await world.key_token(world.designee)
        removed = await world.client.delete(
            f"/api/v1/members/{world.designee.membership.id}", headers=world.admin.headers
        )
        assert removed.status_code == 200
        assert await _revoked(session, bound.json()["token"]["id"])
        view = (await world.client.get(world.key_path, headers=world.rp.headers)).json()
        assert view["designees"]["users"] == []  # were they to rejoin, nothing comes back
        event = await session.scalar(
            select(Event).where(Event.type == "key.designees_changed").order_by(Event.id.desc())
        )
        assert event is not None
        assert event.payload["users"] == []
