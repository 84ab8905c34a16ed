"""The audit log CSV export (`GET /api/v1/audit.csv`): the list's filters, newest first,
details as JSON text, bounded with a last line saying so, formula cells neutralised, only
the caller's tenant, audit:read required, and every export itself on record."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import repository
from hub.audit import service as audit
from hub.audit.models import AuditEntry
from hub.audit.service import Actor
from hub.auth.models import Role
from hub.core import csvexport
from hub.core.db import utcnow
from hub.core.ids import TenantID
from tests.support import Member, make_member, make_tenant

URL = "/api/v1/audit.csv"


def parse(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    text = response.content.decode("utf-8")
    assert text.startswith(csvexport.BOM)
    return list(csv.DictReader(io.StringIO(text.removeprefix(csvexport.BOM))))


async def exports(session: AsyncSession, tenant_id: TenantID) -> Sequence[AuditEntry]:
    return (
        await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.chain_id == tenant_id, AuditEntry.action == repository.EXPORTED)
            .order_by(AuditEntry.seq)
            .execution_options(populate_existing=True)
        )
    ).all()


class Acme:
    def __init__(self, admin: Member, caseworker: Member, other: Member) -> None:
        self.admin, self.caseworker, self.other = admin, caseworker, other


@pytest.fixture
async def acme(session: AsyncSession) -> Acme:
    tenant = await make_tenant(session, "acme", "Acme Health")
    admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    caseworker = await make_member(session, tenant, email="case@acme.test", role=Role.CASEWORKER)
    for n in range(4):
        await audit.record(
            session, actor=Actor.system("tests"), action="tests.step", tenant_id=tenant.id,
            target_type="thing", target_id=f"thing-{n}", details={"n": n, "note": "é"},
        )  # fmt: skip
    await audit.record(
        session, actor=Actor.system("=cmd|' /C calc'!A0"), action="tests.formula",
        tenant_id=tenant.id, target_id="-2+3", details={"cell": "=1+1"},
    )  # fmt: skip
    beta = await make_tenant(session, "beta", "Beta Plan")
    other = await make_member(session, beta, email="admin@beta.test", role=Role.ADMIN)
    await audit.record(
        session, actor=Actor.system("tests"), action="tests.elsewhere", tenant_id=beta.id,
        target_id="beta-secret-thing", details={},
    )  # fmt: skip
    await session.commit()
    return Acme(admin, caseworker, other)


class TestAuditExport:
    async def test_newest_first_with_details_as_json(
        self, client: httpx.AsyncClient, acme: Acme
    ) -> None:
        response = await client.get(URL, headers=acme.admin.headers)
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="audit-acme-{utcnow().date():%Y%m%d}.csv"'
        )
        rows = parse(response)
        assert list(rows[0]) == list(repository.EXPORT_COLUMNS)
        seqs = [int(r["seq"]) for r in rows]
        assert seqs == sorted(seqs, reverse=True)
        steps = [r for r in rows if r["action"] == "tests.step"]
        assert [r["target_id"] for r in steps] == ["thing-3", "thing-2", "thing-1", "thing-0"]
        assert json.loads(steps[0]["details"]) == {"n": 3, "note": "é"}
        assert steps[0]["actor_kind"] == "system"
        assert len(steps[0]["hash"]) == 64
        assert any(r["action"] == "membership.added" for r in rows)

    async def test_the_lists_filters_narrow_it(self, client: httpx.AsyncClient, acme: Acme) -> None:
        async def targets(**params: Any) -> list[str]:
            response = await client.get(URL, params=params, headers=acme.admin.headers)
            return [r["target_id"] for r in parse(response)]

        assert await targets(action="tests.st") == ["thing-3", "thing-2", "thing-1", "thing-0"]
        assert await targets(target="thing-1") == ["thing-1"]
        assert await targets(actor="tests") == ["thing-3", "thing-2", "thing-1", "thing-0"]
        assert await targets(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
        assert (
            await client.get(URL, params={"since": "yesterday"}, headers=acme.admin.headers)
        ).status_code == 400

    async def test_formula_cells_are_neutralised(
        self, client: httpx.AsyncClient, acme: Acme
    ) -> None:
        [row] = parse(
            await client.get(URL, params={"action": "tests.formula"}, headers=acme.admin.headers)
        )
        assert row["actor_label"] == "'=cmd|' /C calc'!A0"
        assert row["target_id"] == "'-2+3"
        assert json.loads(row["details"]) == {"cell": "=1+1"}  # JSON text starts with {

    async def test_cut_at_the_bound_saying_so(
        self, client: httpx.AsyncClient, acme: Acme, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(csvexport, "PAGE_ROWS", 2)
        monkeypatch.setattr(csvexport, "MAX_ROWS", 3)
        response = await client.get(
            URL, params={"action": "tests.step"}, headers=acme.admin.headers
        )
        lines = response.content.decode("utf-8").splitlines()
        assert len(lines) == 1 + 3 + 1
        assert lines[-1] == "# cut at 3 rows: narrow the filters to export the rest"
        assert [ln.split(",")[7] for ln in lines[1:4]] == ["thing-3", "thing-2", "thing-1"]

    async def test_every_export_is_on_record(
        self, session: AsyncSession, client: httpx.AsyncClient, acme: Acme
    ) -> None:
        params = {"action": "tests.", "target": "thing-2"}
        parse(await client.get(URL, params=params, headers=acme.admin.headers))
        [entry] = await exports(session, acme.admin.tenant_id)
        assert entry.actor_label == "admin@acme.test"
        assert entry.actor_id == acme.admin.user.id
        assert entry.target_type == "audit_log"
        assert entry.details["filters"] == params
        assert entry.details["rows"] == 1
        assert entry.details["cut"] is False
        # The next export shows the first one, with the filters it was made with.
        rows = parse(await client.get(URL, headers=acme.admin.headers))
        assert rows[0]["action"] == repository.EXPORTED
        assert json.loads(rows[0]["details"])["filters"] == params
        assert len(await exports(session, acme.admin.tenant_id)) == 2

    async def test_a_filter_shaped_like_a_secret_is_withheld_from_the_record(
        self, session: AsyncSession, client: httpx.AsyncClient, acme: Acme
    ) -> None:
        token = "whsec_" + "A1b2C3d4" * 5  # what a webhook secret looks like
        response = await client.get(URL, params={"actor": token}, headers=acme.admin.headers)
        assert parse(response) == []
        [entry] = await exports(session, acme.admin.tenant_id)
        assert entry.details["filters"] == {"actor": "[withheld]"}
        assert token not in json.dumps(entry.details)

    async def test_another_tenants_entries_never_appear(
        self, session: AsyncSession, client: httpx.AsyncClient, acme: Acme
    ) -> None:
        response = await client.get(URL, headers=acme.other.headers)
        rows = parse(response)
        assert "tests.elsewhere" in {r["action"] for r in rows}
        assert "thing-0" not in response.text
        assert "acme" not in response.text.lower()
        assert "beta" in response.headers["content-disposition"]
        mine = parse(await client.get(URL, headers=acme.admin.headers))
        assert "beta-secret-thing" not in {r["target_id"] for r in mine}
        assert len(await exports(session, acme.other.tenant_id)) == 1

    async def test_a_role_without_audit_read_gets_403_and_nothing_is_recorded(
        self, session: AsyncSession, client: httpx.AsyncClient, acme: Acme
    ) -> None:
        assert (await client.get(URL, headers=acme.caseworker.headers)).status_code == 403
        assert (await client.get(URL)).status_code == 401
        assert await exports(session, acme.admin.tenant_id) == []
