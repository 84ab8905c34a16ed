"""GET /api/v1/audit: the caller's tenant's entries only, paged, behind `audit:read`."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth.models import Role, Scope
from hub.core.db import Database
from tests.support import make_member, make_tenant


async def seed(db: Database) -> tuple[Any, Any]:
    async with db.transaction() as session:
        acme, globex = await make_tenant(session, "acme"), await make_tenant(session, "globex")
        admin = await make_member(session, acme, email="admin@acme.example")
        other = await make_member(session, globex, email="admin@globex.example")
        for step in range(3):
            await audit.record(session, actor=Actor.system("tests"), action="tests.step",
                               tenant_id=acme.id, details={"step": step})  # fmt: skip
    return admin, other


class TestAuditApi:
    async def test_lists_own_tenants_entries_in_order(self, client: Any, db: Database) -> None:
        admin, other = await seed(db)
        response = await client.get("/api/v1/audit", headers=admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [e["seq"] for e in body] == list(range(1, len(body) + 1))
        actions = [e["action"] for e in body]
        assert actions[:3] == ["tenant.created", "membership.added", "token.issued"]
        assert actions[-3:] == ["tests.step"] * 3
        assert all(e["target_id"] != str(other.tenant.id) for e in body)
        assert {e["details"].get("user_id") for e in body} - {None} == {str(admin.user.id)}

    async def test_pages_and_filters(self, client: Any, db: Database) -> None:
        admin, _ = await seed(db)
        first = (await client.get("/api/v1/audit?limit=2", headers=admin.headers)).json()
        assert [e["seq"] for e in first] == [1, 2]
        rest = await client.get("/api/v1/audit?after=2&limit=2", headers=admin.headers)
        assert [e["seq"] for e in rest.json()] == [3, 4]
        steps = await client.get("/api/v1/audit?action=tests.", headers=admin.headers)
        assert [e["details"]["step"] for e in steps.json()] == [0, 1, 2]

    async def test_needs_the_audit_read_scope(self, client: Any, db: Database) -> None:
        async with db.transaction() as session:
            tenant = await make_tenant(session, "acme")
            reader = await make_member(session, tenant, email="a@acme.example",
                                       scopes=frozenset({Scope.KEYS_READ}))  # fmt: skip
            viewer = await make_member(session, tenant, email="v@acme.example", role=Role.VIEWER)
        for member in (reader, viewer):
            response = await client.get("/api/v1/audit", headers=member.headers)
            assert response.status_code == 403
            assert "audit:read" in response.json()["detail"]

    async def test_bad_paging_names_the_parameter(self, client: Any, db: Database) -> None:
        admin, _ = await seed(db)
        response = await client.get("/api/v1/audit?limit=0", headers=admin.headers)
        assert response.status_code == 400
        assert "limit" in response.text

    async def test_an_after_beyond_any_seq_is_a_400_naming_it(
        self, client: Any, db: Database
    ) -> None:
        admin, _ = await seed(db)
        for after in (2**31, 10**30):
            response = await client.get(f"/api/v1/audit?after={after}", headers=admin.headers)
            assert response.status_code == 400, response.text
            [problem] = response.json()["extra"]
            assert (problem["key"], problem["source"]) == ("after", "query")
            assert str(2**31 - 1) in problem["message"]
        last = await client.get(f"/api/v1/audit?after={2**31 - 1}", headers=admin.headers)
        assert (last.status_code, last.json()) == (200, [])

    async def test_a_nul_in_the_action_filter_is_a_400_naming_it(
        self, client: Any, db: Database
    ) -> None:
        admin, _ = await seed(db)
        response = await client.get("/api/v1/audit?action=tests.%00", headers=admin.headers)
        assert response.status_code == 400, response.text
        [problem] = response.json()["extra"]
        assert (problem["key"], problem["source"]) == ("action", "query")
        assert "matching regex" in problem["message"]

    @pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/audit.csv"])
    @pytest.mark.parametrize("value", ["-671635", "1700000000", "1.5e9"])
    async def test_a_time_given_as_a_number_is_a_400_naming_it(
        self, client: Any, db: Database, path: str, value: str
    ) -> None:
        """The query parser would read a bare number as seconds since 1970 (found by the
        schema fuzzer: `until=-671635` answered 200); the schema says ISO 8601."""
        admin, _ = await seed(db)
        for name in ("since", "until"):
            response = await client.get(path, params={name: value}, headers=admin.headers)
            assert response.status_code == 400, response.text
            [problem] = response.json()["extra"]
            assert problem["key"] == name
            assert "ISO 8601" in problem["message"]
        fine = await client.get(
            path, params={"since": "2026-11-01T00:00:00Z"}, headers=admin.headers
        )
        assert fine.status_code == 200


class TestTokenAndMembershipAudit:
    async def test_issue_and_revoke_are_audited_without_the_token(
        self, session: AsyncSession
    ) -> None:
        from sqlalchemy import select

        from hub.audit.models import AuditEntry
        from hub.auth import service as auth

        tenant = await make_tenant(session, "acme")
        member = await make_member(session, tenant, email="admin@acme.example")
        principal = await auth.authenticate(session, member.token)
        assert principal is not None
        token_id = principal.token_id
        assert token_id is not None
        await auth.revoke_token(session, principal, token_id=token_id)
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.chain_id == tenant.id).order_by(AuditEntry.seq)
            )
        ).all()
        assert [e.action for e in entries] == [
            "tenant.created",
            "membership.added",
            "token.issued",
            "token.revoked",
        ]
        issued, revoked = entries[2], entries[3]
        assert issued.target_id == revoked.target_id == str(token_id)
        assert issued.details["prefix"] == member.token[:12]
        assert (revoked.actor_id, revoked.actor_label) == (member.user.id, "admin@acme.example")
        assert all(member.token not in str(e.details) for e in entries)
