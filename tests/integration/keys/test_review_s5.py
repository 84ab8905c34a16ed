"""A security review's findings in the key vault: bad input that reached the audit log's
secret guard (a 500), and what offboarding a tenant leaves of its keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.keys import service
from hub.keys.models import ApiKey, KeyStatus
from tests.support import Member, make_member, make_tenant

POC = {"name": "Toni Tech", "email": "toni@plan.example"}
LEAKED = "hub_" + "A" * 30 + "_AAAAAA"


@pytest.fixture
async def rp(session: AsyncSession) -> Member:
    tenant = await make_tenant(session, "plan")
    admin = await make_member(session, tenant, email="admin@plan.example")
    member = await make_member(session, tenant, email="rp@plan.example", role=Role.CASEWORKER)
    await service.add_contract(session, admin.principal, number="H1234")
    await session.commit()
    return member


def body(**overrides: Any) -> dict[str, Any]:
    data = {
        "environment": "sandbox",
        "key_id": "KEY-0001",
        "secret": "s3cret-value",
        "hpms_user_id": "RPUSER01",
        "technical_poc": POC,
        "contracts": ["H1234"],
        "verify": False,
    }
    data.update(overrides)
    return data


async def create(client: httpx.AsyncClient, rp: Member, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/keys", headers=rp.headers, json=body(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


class TestTokenShapedInput:
    @pytest.mark.parametrize("key_id", [f"Bearer {LEAKED}", LEAKED, "bearer abc123"])
    async def test_a_key_id_shaped_like_a_token_is_a_400_naming_it(
        self, client: httpx.AsyncClient, session: AsyncSession, rp: Member, key_id: str
    ) -> None:
        # Every member sees a key ID: a secret pasted there would be shown to all of them.
        response = await client.post("/api/v1/keys", headers=rp.headers, json=body(key_id=key_id))
        assert response.status_code == 400, response.text
        assert response.json()["extra"][0]["key"] == "key_id"
        assert LEAKED not in response.text
        assert (await session.scalars(select(ApiKey))).all() == []

    @pytest.mark.parametrize("key_id", ["KEY-1\nFORGED LOG LINE", "KEY\t2", "KEY\x1b[31m3"])
    async def test_a_key_id_with_a_line_break_or_control_character_is_a_400_naming_it(
        self, client: httpx.AsyncClient, session: AsyncSession, rp: Member, key_id: str
    ) -> None:
        response = await client.post("/api/v1/keys", headers=rp.headers, json=body(key_id=key_id))
        assert response.status_code == 400, response.text
        assert response.json()["extra"][0] == {
            "key": "key_id",
            "message": "must be printable characters on one line",
        }
        assert (await session.scalars(select(ApiKey))).all() == []

    async def test_rotating_to_a_token_shaped_key_id_is_a_400_naming_it(
        self, client: httpx.AsyncClient, rp: Member
    ) -> None:
        view = await create(client, rp)
        response = await client.post(
            f"/api/v1/keys/{view['id']}/rotate",
            headers=rp.headers,
            json={"key_id": f"Bearer {LEAKED}", "secret": "new-secret", "verify": False},
        )
        assert response.status_code == 400, response.text
        assert response.json()["extra"][0]["key"] == "key_id"

    async def test_a_compromise_reason_quoting_a_token_still_suspends_the_key(
        self, client: httpx.AsyncClient, session: AsyncSession, rp: Member
    ) -> None:
        # Reporting must work in an emergency whatever the reporter pastes; what looks like
        # a token is masked before the reason is stored, shown, audited or sent.
        view = await create(client, rp)
        response = await client.post(
            f"/api/v1/keys/{view['id']}/compromise",
            headers=rp.headers,
            json={"reason": f"posted in chat with the token {LEAKED}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "compromised"
        assert LEAKED not in response.text
        assert "posted in chat" in response.json()["status_reason"]
        entries = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == "key.compromised"))
        ).all()
        assert len(entries) == 1
        assert LEAKED not in str(entries[0].details)
        key = await session.get(ApiKey, UUID(view["id"]))
        assert key is not None
        await session.refresh(key)
        assert key.status is KeyStatus.COMPROMISED
