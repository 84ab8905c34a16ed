"""The syncs pages: schedules (a tenant admin pauses, resumes, changes the interval), "sync
now", the recent runs, and a run's quarantined rows (their cells only when asked, audited)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.core import crypto
from hub.core.db import utcnow
from hub.keys import service as keys
from hub.keys.models import ApiKey
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.syncs import service
from hub.syncs.models import QuarantinedRow, RunOutcome, SyncRun
from tests.portal.support import post_form, sign_in
from tests.support import Member, make_member, make_tenant

PHI = "PATIENT-DOE-19450101"


async def a_key(session: AsyncSession, member: Member, key_id: str) -> ApiKey:
    body = KeyCreate(
        environment="sandbox", key_id=key_id, secret="s3cret-value", hpms_user_id="U1",
        technical_poc=TechnicalPoc("T", "t@plan.example"), contracts=["H1234"], verify=False,
    )  # fmt: skip
    return await keys.create_key(session, member.principal, data=body, verifier=None)


async def a_run(session: AsyncSession, key: ApiKey) -> SyncRun:
    now = utcnow()
    run = SyncRun(
        tenant_id=key.tenant_id, api_key_id=key.id, contract="H1234", trigger="schedule",
        window_start=date(2026, 11, 1), window_end=date(2026, 11, 28), layout="v3",
        rows_read=12, rows_new=7, rows_changed=2, rows_unchanged=2, rows_quarantined=1,
        started_at=now - timedelta(minutes=1), finished_at=now, duration_ms=850,
        outcome=RunOutcome.SUCCEEDED,
    )  # fmt: skip
    session.add(run)
    await session.flush()
    row = QuarantinedRow(
        tenant_id=key.tenant_id, sync_run_id=run.id, contract="H1234",
        file_name="H1234_20261128.csv", row_number=9, reason="received date is not a date",
    )  # fmt: skip
    row.raw = await crypto.seal(
        session, json.dumps([PHI, "x"]), tenant=key.tenant_id, field=service.RAW_FIELD, row=row.id
    )
    session.add(row)
    await session.flush()
    return run


async def phi_reads(session: AsyncSession) -> list[AuditEntry]:
    found = await session.scalars(select(AuditEntry).where(AuditEntry.action == "phi.read"))
    return list(found)


@pytest.fixture
async def plan(session: AsyncSession) -> dict[str, Any]:
    tenant = await make_tenant(session, "plan", "Plan Health")
    admin = await make_member(session, tenant, email="admin@plan.example", role=Role.ADMIN)
    await make_member(session, tenant, email="case@plan.example", role=Role.CASEWORKER)
    await make_member(session, tenant, email="viewer@plan.example", role=Role.VIEWER)
    await keys.add_contract(session, admin.principal, number="H1234")
    key = await a_key(session, admin, "PLAN-KEY-1")
    run = await a_run(session, key)
    other = await make_tenant(session, "other", "Other Plan")
    stranger = await make_member(session, other, email="admin@other.example", role=Role.ADMIN)
    await keys.add_contract(session, stranger.principal, number="H1234")
    theirs = await a_run(session, await a_key(session, stranger, "OTHER-KEY-1"))
    await session.commit()
    return {"run": run, "theirs": theirs}


async def as_(portal: httpx.AsyncClient, email: str) -> str:
    portal.cookies.clear()
    return await sign_in(portal, email)


class TestSyncsPage:
    async def test_shows_the_schedule_and_the_runs_figures(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        await as_(portal, "viewer@plan.example")
        page = await portal.get("/portal/syncs")
        assert page.status_code == 200
        assert 'data-testid="schedule-sandbox"' in page.text
        assert re.search(r'data-testid="interval">\d+<', page.text)
        row = re.search(r'data-testid="run-row">(.*?)</tr>', page.text, re.S)
        assert row is not None
        cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
        assert cells[1] == "H1234"
        assert cells[4:8] == ["12", "7", "2", "2"]
        assert "succeeded" in row.group(1)
        assert 'href="/portal/syncs"' in page.text  # the menu entry

    async def test_a_run_shows_its_quarantined_rows_without_their_cells(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        await as_(portal, "case@plan.example")
        page = await portal.get(f"/portal/syncs/runs/{plan['run'].id}")
        assert page.status_code == 200
        table = re.search(r'data-testid="quarantine">(.*?)</table>', page.text, re.S)
        assert table is not None
        assert "<td>9</td><td>received date is not a date</td>" in table.group(1)
        assert PHI not in page.text

    async def test_asked_for_the_cells_are_shown_and_the_read_is_audited_as_the_apis(
        self, portal: httpx.AsyncClient, plan: dict[str, Any], session: AsyncSession
    ) -> None:
        run = plan["run"]
        await as_(portal, "viewer@plan.example")
        page = await portal.get(f"/portal/syncs/runs/{run.id}")
        assert f'href="/portal/syncs/runs/{run.id}?cells=shown"' in page.text
        assert not await phi_reads(session)  # a plain look opens nothing
        page = await portal.get(f"/portal/syncs/runs/{run.id}?cells=shown")
        assert page.status_code == 200
        cells = re.search(r'data-testid="cells-9">(.*?)</td>', page.text, re.S)
        assert cells is not None
        assert f"<li>{PHI}</li><li>x</li>" in cells.group(1)
        [entry] = await phi_reads(session)
        assert entry.target_type == "sync_run"
        assert entry.target_id == str(run.id)
        assert entry.actor_label == "viewer@plan.example"
        assert entry.details == {"view": "quarantined_rows", "rows": 1}
        assert PHI not in json.dumps(entry.details)

    async def test_another_tenants_cells_are_never_opened(
        self, portal: httpx.AsyncClient, plan: dict[str, Any], session: AsyncSession
    ) -> None:
        await as_(portal, "admin@plan.example")
        page = await portal.get(f"/portal/syncs/runs/{plan['theirs'].id}?cells=shown")
        assert page.status_code == 404
        assert PHI not in page.text
        assert not await phi_reads(session)

    async def test_another_tenants_run_is_a_404_page(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        await as_(portal, "admin@plan.example")
        page = await portal.get(f"/portal/syncs/runs/{plan['theirs'].id}")
        assert page.status_code == 404
        assert "received date" not in page.text


class TestSchedule:
    async def test_admin_pauses_resumes_and_changes_the_interval(
        self, portal: httpx.AsyncClient, plan: dict[str, Any], session: AsyncSession
    ) -> None:
        csrf = await as_(portal, "admin@plan.example")
        paused = await post_form(
            portal, "/portal/syncs/schedules/sandbox", csrf, {"paused": "true"}
        )
        assert paused.status_code == 303
        page = await portal.get(paused.headers["location"])
        assert "The schedule is saved." in page.text
        assert 'data-testid="paused"' in page.text
        assert 'data-testid="resume-sandbox"' in page.text
        changed = await post_form(
            portal, "/portal/syncs/schedules/sandbox", csrf,
            {"interval_minutes": "45", "paused": "false"},
        )  # fmt: skip
        assert changed.status_code == 303
        page = await portal.get("/portal/syncs")
        assert 'data-testid="interval">45<' in page.text
        assert 'data-testid="paused"' not in page.text
        audited = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "sync.schedule_changed")
        )
        assert len(audited.all()) == 2

    @pytest.mark.parametrize("interval", ["0", "5000", "ten"])
    async def test_a_bad_interval_is_named(
        self, portal: httpx.AsyncClient, plan: dict[str, Any], interval: str
    ) -> None:
        csrf = await as_(portal, "admin@plan.example")
        answer = await post_form(
            portal, "/portal/syncs/schedules/sandbox", csrf, {"interval_minutes": interval}
        )
        assert answer.status_code == 400
        assert 'data-testid="error-interval_minutes"' in answer.text

    async def test_a_caseworker_may_not_change_it_nor_sees_the_form(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        csrf = await as_(portal, "case@plan.example")
        page = await portal.get("/portal/syncs")
        assert 'data-testid="pause-sandbox"' not in page.text
        refused = await post_form(
            portal, "/portal/syncs/schedules/sandbox", csrf, {"paused": "true"}
        )
        assert refused.status_code == 403

    async def test_a_form_without_its_csrf_token_is_refused(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        await as_(portal, "admin@plan.example")
        refused = await portal.post("/portal/syncs/schedules/sandbox", data={"paused": "true"})
        assert refused.status_code == 403
        assert 'data-testid="paused"' not in (await portal.get("/portal/syncs")).text


class TestSyncNow:
    async def test_a_caseworker_queues_a_sync(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        csrf = await as_(portal, "case@plan.example")
        assert 'data-testid="sync-now"' in (await portal.get("/portal/syncs")).text
        queued = await post_form(portal, "/portal/syncs/run", csrf, {"contract": "h1234"})
        assert queued.status_code == 303
        assert "The sync is queued" in (await portal.get(queued.headers["location"])).text

    async def test_a_contract_no_key_serves_is_a_404_and_a_bad_one_is_named(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        csrf = await as_(portal, "case@plan.example")
        unserved = await post_form(portal, "/portal/syncs/run", csrf, {"contract": "S9999"})
        assert unserved.status_code == 404
        bad = await post_form(portal, "/portal/syncs/run", csrf, {"contract": "nope"})
        assert bad.status_code == 400
        assert 'data-testid="error-contract"' in bad.text

    async def test_a_viewer_may_not_sync_nor_sees_the_button(
        self, portal: httpx.AsyncClient, plan: dict[str, Any]
    ) -> None:
        csrf = await as_(portal, "viewer@plan.example")
        assert 'data-testid="sync-now"' not in (await portal.get("/portal/syncs")).text
        assert (await post_form(portal, "/portal/syncs/run", csrf)).status_code == 403
