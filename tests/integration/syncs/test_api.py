"""/api/v1/syncs: schedules (tenant admins change them; pausing stops the scheduler),
"sync now", runs, and quarantined rows whose raw cells only complaints:read may see."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.audit.reads import PHI_READ
from hub.auth.models import Role, Scope
from hub.core import crypto
from hub.core.db import utcnow
from hub.keys import service as keys
from hub.keys.models import ApiKey
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.syncs import service as syncs
from hub.syncs.models import QuarantinedRow, RunOutcome, SyncCursor, SyncRun
from tests.support import Member, RecordingQueue, make_member, make_tenant

BASE = "/api/v1/syncs"
RAW_CANARY = "1EG4-TE5-MK72-CANARY"


@dataclass
class Tenant:
    admin: Member
    caseworker: Member
    keys_only: Member  # a token without complaints:read
    key: ApiKey


@pytest.fixture
async def tenant(session: AsyncSession) -> Tenant:
    made = await make_tenant(session, "plan-s")
    admin = await make_member(session, made, email="admin@plan-s.example")
    caseworker = await make_member(session, made, email="case@plan-s.example", role=Role.CASEWORKER)
    keys_only = await make_member(
        session, made, email="ops@plan-s.example", role=Role.VIEWER,
        scopes=frozenset({Scope.KEYS_READ}),
    )  # fmt: skip
    for number in ("H1234", "S5678"):
        await keys.add_contract(session, admin.principal, number=number)
    key = await keys.create_key(
        session, admin.principal,
        data=KeyCreate(
            environment="sandbox", key_id="SYNC-KEY-1", secret="s3cret-value",
            hpms_user_id="PLANS01", technical_poc=TechnicalPoc("Pat", "pat@plan-s.example"),
            contracts=["H1234", "S5678"], verify=False,
        ),
        verifier=None,
    )  # fmt: skip
    await session.commit()
    return Tenant(admin, caseworker, keys_only, key)


class TestSchedules:
    async def test_default_then_changed_and_paused(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        listed = await client.get(f"{BASE}/schedules", headers=tenant.caseworker.headers)
        assert listed.status_code == 200
        assert listed.json() == [
            {"environment": "sandbox", "interval_minutes": 15, "paused": False,
             "is_default": True, "pairs": []}
        ]  # fmt: skip
        changed = await client.put(
            f"{BASE}/schedules/sandbox", json={"interval_minutes": 30, "paused": True},
            headers=tenant.admin.headers,
        )  # fmt: skip
        assert changed.status_code == 200, changed.text
        assert (changed.json()["interval_minutes"], changed.json()["paused"]) == (30, True)
        due = await syncs.due_pairs(session, now=utcnow(), policy=syncs.SyncPolicy())
        assert [p for p in due if p.tenant_id == tenant.admin.tenant_id] == [], "paused"
        resumed = await client.put(
            f"{BASE}/schedules/sandbox", json={"paused": False}, headers=tenant.admin.headers
        )
        assert (resumed.json()["interval_minutes"], resumed.json()["paused"]) == (30, False)
        due = await syncs.due_pairs(session, now=utcnow(), policy=syncs.SyncPolicy())
        assert sorted(p.contract for p in due if p.tenant_id == tenant.admin.tenant_id) == [
            "H1234", "S5678",
        ]  # fmt: skip

    async def test_a_deactivated_keys_pairs_leave_the_schedule(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        session.add(
            SyncCursor(
                tenant_id=tenant.admin.tenant_id, api_key_id=tenant.key.id, contract="H1234",
                is_blocked=True, last_error="CMS refused the key (403)",
            )
        )  # fmt: skip
        await session.commit()

        async def pairs() -> list[str]:
            listed = await client.get(f"{BASE}/schedules", headers=tenant.caseworker.headers)
            return [p["contract"] for s in listed.json() for p in s["pairs"]]

        assert await pairs() == ["H1234"]
        await keys.deactivate_key(session, tenant.admin.principal, key_id=tenant.key.id)
        await session.commit()
        assert await pairs() == [], "a key that never syncs again has no pairs to show"

    @pytest.mark.parametrize(
        ("environment", "body", "status", "field"),
        [
            ("sandbox", {"interval_minutes": 0}, 400, "interval_minutes"),
            ("sandbox", {"interval_minutes": 1441}, 400, "interval_minutes"),
            ("sandbox", {"paused": "yes"}, 400, "paused"),
            ("staging", {"paused": True}, 400, "environment"),
            ("production", {"paused": True}, 404, "production"),
        ],
    )
    async def test_bad_changes_are_refused(
        self,
        client: httpx.AsyncClient,
        tenant: Tenant,
        environment: str,
        body: dict[str, object],
        status: int,
        field: str,
    ) -> None:
        response = await client.put(
            f"{BASE}/schedules/{environment}", json=body, headers=tenant.admin.headers
        )
        assert response.status_code == status, response.text
        assert field in response.text

    async def test_only_tenant_admins_change_schedules(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        response = await client.put(
            f"{BASE}/schedules/sandbox", json={"paused": True}, headers=tenant.caseworker.headers
        )
        assert response.status_code == 403


class TestSyncNow:
    async def test_queues_every_serving_pair_once(
        self, client: httpx.AsyncClient, tenant: Tenant, queue: RecordingQueue
    ) -> None:
        response = await client.post(f"{BASE}/run", json={}, headers=tenant.caseworker.headers)
        assert response.status_code == 202, response.text
        assert sorted(q["contract"] for q in response.json()["queued"]) == ["H1234", "S5678"]
        again = await client.post(
            f"{BASE}/run", json={"contract": "h1234"}, headers=tenant.caseworker.headers
        )
        assert [q["contract"] for q in again.json()["queued"]] == ["H1234"]
        sync_jobs = [j for j in queue.sent if j.function == "syncs.sync_contract"]
        assert sorted(j.args[2] for j in sync_jobs) == ["H1234", "S5678"], "no duplicate job"
        assert {j.args[3] for j in sync_jobs} == {"manual"}

    async def test_a_pair_whose_sync_is_running_says_since_when_and_is_made_due(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        tid = tenant.admin.tenant_id
        started = utcnow() - timedelta(seconds=20)
        session.add_all([
            SyncRun(
                tenant_id=tid, api_key_id=tenant.key.id, contract="H1234", trigger="schedule",
                window_start=date(2026, 1, 1), window_end=date(2026, 1, 31), started_at=started,
            ),
            SyncCursor(
                tenant_id=tid, api_key_id=tenant.key.id, contract="H1234",
                next_due_at=utcnow() + timedelta(minutes=14),
            ),
        ])  # fmt: skip
        await session.commit()
        response = await client.post(f"{BASE}/run", json={}, headers=tenant.caseworker.headers)
        assert response.status_code == 202, response.text
        running = {q["contract"]: q["running_since"] for q in response.json()["queued"]}
        assert running == {"H1234": started.isoformat().replace("+00:00", "Z"), "S5678": None}
        cursor = await session.scalar(
            select(SyncCursor)
            .where(SyncCursor.contract == "H1234")
            .execution_options(populate_existing=True)
        )
        assert cursor is not None
        assert cursor.next_due_at is not None
        assert cursor.next_due_at <= utcnow(), "due now: the running sync runs again after"

    async def test_a_pair_whose_queued_sync_waits_says_until_when(
        self, client: httpx.AsyncClient, tenant: Tenant, redis: Any
    ) -> None:
        """A pair's sync job waiting out a retry (CMS's Retry-After, a backoff) holds the
        pair's job id: the answer says when it runs instead of claiming a sync now."""
        waits_until = utcnow() + timedelta(minutes=3)
        await redis.enqueue_job(
            "syncs.sync_contract", str(tenant.admin.tenant_id), str(tenant.key.id), "H1234",
            "schedule", _job_id=f"sync:{tenant.key.id}:H1234", _defer_until=waits_until,
        )  # fmt: skip
        response = await client.post(f"{BASE}/run", json={}, headers=tenant.caseworker.headers)
        assert response.status_code == 202, response.text
        waiting = {q["contract"]: q["next_try_at"] for q in response.json()["queued"]}
        assert waiting["S5678"] is None, "queued to run now"
        assert waiting["H1234"] is not None
        said = datetime.fromisoformat(waiting["H1234"].replace("Z", "+00:00"))
        assert abs((said - waits_until).total_seconds()) < 1

    async def test_bad_or_unserved_contract(
        self, client: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        bad = await client.post(
            f"{BASE}/run", json={"contract": "Q1"}, headers=tenant.caseworker.headers
        )
        assert bad.status_code == 400
        assert "contract" in bad.text
        unserved = await client.post(
            f"{BASE}/run", json={"contract": "R0001"}, headers=tenant.caseworker.headers
        )
        assert unserved.status_code == 404
        assert unserved.json()["detail"] == "no active key of this tenant serves contract R0001"

    async def test_viewer_may_not_sync(self, client: httpx.AsyncClient, session: AsyncSession,
                                       tenant: Tenant) -> None:  # fmt: skip
        viewer = await make_member(
            session, tenant.admin.tenant, email="v@plan-s.example", role=Role.VIEWER
        )
        await session.commit()
        response = await client.post(f"{BASE}/run", json={}, headers=viewer.headers)
        assert response.status_code == 403


async def _run_with_quarantine(session: AsyncSession, tenant: Tenant) -> SyncRun:
    tid = tenant.admin.tenant_id
    run = SyncRun(
        tenant_id=tid, api_key_id=tenant.key.id, contract="H1234", trigger="schedule",
        window_start=date(2026, 1, 1), window_end=date(2026, 1, 31), started_at=utcnow(),
        outcome=RunOutcome.SUCCEEDED, rows_read=10, rows_new=9, rows_quarantined=1,
    )  # fmt: skip
    session.add(run)
    await session.flush()
    row = QuarantinedRow(
        tenant_id=tid, sync_run_id=run.id, contract="H1234", file_name="H1234_20260101.csv",
        row_number=7, reason="RECEIVED_DATE '31/02/2026' is not a date",
    )  # fmt: skip
    row.raw = await crypto.seal(
        session, json.dumps(["CTM-1", "H1234", RAW_CANARY]), tenant=tid,
        field=syncs.RAW_FIELD, row=row.id,
    )  # fmt: skip
    session.add(row)
    other = SyncRun(
        tenant_id=tid, api_key_id=tenant.key.id, contract="S5678", trigger="manual",
        window_start=date(2026, 1, 1), window_end=date(2026, 1, 31), started_at=utcnow(),
        outcome=RunOutcome.FAILED, error="CMS rate limit (429)",
    )  # fmt: skip
    session.add(other)
    await session.commit()
    return run


class TestRuns:
    async def test_runs_list_filter_and_detail(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        run = await _run_with_quarantine(session, tenant)
        listed = await client.get(f"{BASE}/runs", headers=tenant.keys_only.headers)
        assert listed.status_code == 200
        assert sorted(r["contract"] for r in listed.json()) == ["H1234", "S5678"]
        only = await client.get(
            f"{BASE}/runs", params={"contract": "h1234"}, headers=tenant.keys_only.headers
        )
        assert [r["id"] for r in only.json()] == [str(run.id)]
        one = await client.get(f"{BASE}/runs/{run.id}", headers=tenant.keys_only.headers)
        assert one.status_code == 200
        assert (one.json()["rows_new"], one.json()["rows_quarantined"]) == (9, 1)
        bad = await client.get(
            f"{BASE}/runs", params={"contract": "nope"}, headers=tenant.keys_only.headers
        )
        assert bad.status_code == 400
        assert "contract" in bad.text

    async def test_quarantine_raw_row_only_for_complaints_read(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        run = await _run_with_quarantine(session, tenant)
        path = f"{BASE}/runs/{run.id}/quarantine"
        reader = await client.get(path, headers=tenant.caseworker.headers)
        assert reader.status_code == 200
        [row] = reader.json()
        assert (row["row_number"], row["file_name"]) == (7, "H1234_20260101.csv")
        assert "not a date" in row["reason"]
        assert row["raw"] == ["CTM-1", "H1234", RAW_CANARY]
        limited = await client.get(path, headers=tenant.keys_only.headers)
        assert limited.status_code == 200
        [row] = limited.json()
        assert (row["row_number"], row["raw"], row["has_raw"]) == (7, None, True)
        assert RAW_CANARY not in limited.text

    async def test_opening_raw_rows_is_audited_and_the_rest_is_not(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        run = await _run_with_quarantine(session, tenant)
        path = f"{BASE}/runs/{run.id}/quarantine"
        assert (await client.get(path, headers=tenant.keys_only.headers)).status_code == 200
        assert (await client.get(path, headers=tenant.caseworker.headers)).status_code == 200
        entries = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.tenant_id == tenant.admin.tenant_id)
                .where(AuditEntry.action == PHI_READ)
                .execution_options(populate_existing=True)
            )
        ).all()
        [entry] = entries  # the caller without complaints:read opened nothing
        assert entry.actor_label == tenant.caseworker.user.email
        assert (entry.target_type, entry.target_id) == ("sync_run", str(run.id))
        assert entry.details == {"view": "quarantined_rows", "rows": 1}
        assert RAW_CANARY not in json.dumps(entry.details)

    async def test_quarantine_pages_by_row_number(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        run = await _run_with_quarantine(session, tenant)
        for number in (3, 12, 40):
            session.add(QuarantinedRow(
                tenant_id=tenant.admin.tenant_id, sync_run_id=run.id, contract="H1234",
                file_name="H1234_20260101.csv", row_number=number, reason="bad row",
            ))  # fmt: skip
        await session.commit()
        path, headers = f"{BASE}/runs/{run.id}/quarantine", tenant.keys_only.headers
        seen: list[int] = []
        after = 0
        while True:
            page = await client.get(path, params={"after": after, "limit": 2}, headers=headers)
            assert page.status_code == 200, page.text
            numbers = [r["row_number"] for r in page.json()]
            if not numbers:
                break
            assert len(numbers) <= 2
            seen += numbers
            after = numbers[-1]
        assert seen == [3, 7, 12, 40]
        for params in ({"after": 2**31}, {"after": -1}, {"limit": 0}, {"limit": 1001}):
            bad = await client.get(path, params=params, headers=headers)
            assert bad.status_code == 400, params
            assert next(iter(params)) in bad.text

    async def test_another_tenants_run_is_404(
        self, client: httpx.AsyncClient, session: AsyncSession, tenant: Tenant
    ) -> None:
        run = await _run_with_quarantine(session, tenant)
        stranger = await make_member(
            session, await make_tenant(session, "plan-z"), email="z@plan-z.example"
        )
        await session.commit()
        for path in (f"{BASE}/runs/{run.id}", f"{BASE}/runs/{run.id}/quarantine"):
            assert (await client.get(path, headers=stranger.headers)).status_code == 404
        assert (await client.get(f"{BASE}/runs", headers=stranger.headers)).json() == []
