"""The timeliness report: complaints resolved within their timeframe, per contract."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import Role, Scope
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.resolutions import SUMMARY_FIELD
from hub.core import crypto
from hub.core.db import utcnow
from hub.core.ids import TenantID, uuid7
from hub.keys.models import Environment
from tests.integration.complaints.support import IMMEDIATE, URGENT, make_complaint
from tests.support import Member, make_member, make_tenant

PRODUCTION = Environment.PRODUCTION


def day(offset: int) -> date:
    return utcnow().date() + timedelta(days=offset)


async def accept(session: AsyncSession, complaint: Complaint, on: date) -> None:
    """Our resolution, dated `on`, that CMS accepted."""
    tenant_id = TenantID(complaint.tenant_id)
    cipher = await crypto.cipher_for(session, tenant_id)
    resolution = Resolution(
        id=uuid7(), tenant_id=tenant_id, complaint_pk=complaint.id, contract=complaint.contract,
        complaint_id=complaint.complaint_id, resolution_date=on,
        state=ResolutionState.ACCEPTED, idempotency_key=f"k-{complaint.complaint_id}",
    )  # fmt: skip
    resolution.summary = cipher.seal("Resolved.", field=SUMMARY_FIELD, row=resolution.id)
    session.add(resolution)
    complaint.resolution_state = ResolutionState.ACCEPTED
    await session.flush()


class Seeded:
    def __init__(self, viewer: Member, reader_without_scope: Member) -> None:
        self.viewer = viewer
        self.unscoped = reader_without_scope


@pytest.fixture
async def seeded(session: AsyncSession) -> Seeded:
    tenant = await make_tenant(session, "timely-plan")
    tid = TenantID(tenant.id)
    viewer = await make_member(session, tenant, email="viewer@timely.example", role=Role.VIEWER)
    unscoped = await make_member(
        session, tenant, email="keys@timely.example", role=Role.VIEWER,
        scopes=frozenset({Scope.KEYS_READ}),
    )  # fmt: skip

    async def complaint(**kw: object) -> Complaint:
        kw.setdefault("environment", PRODUCTION)
        kw.setdefault("issue_level", URGENT)
        return await make_complaint(session, tid, **kw)  # type: ignore[arg-type]

    # H1234, standard (7 days), assigned 20 days ago: due 13 days ago.
    await complaint(received=day(-21), assigned=day(-20), cms_resolution_date=day(-15))  # on time
    await complaint(received=day(-21), assigned=day(-20), cms_resolution_date=day(-10))  # late
    # H1234, immediate need (2 days), assigned 10 days ago: due 8 days ago.
    accepted = await complaint(received=day(-10), assigned=day(-10), issue_level=IMMEDIATE)
    await accept(session, accepted, day(-9))  # on time, through our accepted resolution
    await complaint(
        received=day(-10), assigned=day(-10), issue_level=IMMEDIATE, state=ResolutionState.QUEUED
    )  # overdue: CMS has no resolution yet, though one is queued here
    await complaint(received=day(-1), assigned=day(-1))  # due in 6 days
    # S5678: past due, nothing done.
    await complaint(contract="S5678", received=day(-20), assigned=day(-20))
    # Not counted: sandbox, due long before the period, another tenant.
    await complaint(received=day(-20), assigned=day(-20), environment=Environment.SANDBOX)
    await complaint(received=day(-200), assigned=day(-200))
    other = await make_tenant(session, "other-plan")
    await make_complaint(
        session, TenantID(other.id), received=day(-20), assigned=day(-20), environment=PRODUCTION
    )
    await session.commit()
    return Seeded(viewer, unscoped)


def lines(body: dict[str, object]) -> dict[tuple[str, str], dict[str, object]]:
    return {(line["contract"], line["timeframe"]): line for line in body["lines"]}  # type: ignore[attr-defined,index]


PERIOD = {"from": day(-30).isoformat(), "to": day(10).isoformat()}


class TestTimeliness:
    async def test_counts_per_contract_and_timeframe(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        response = await client.get(
            "/api/v1/reports/timeliness", params=PERIOD, headers=seeded.viewer.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["environment"], body["basis"]) == ("production", "due")
        assert (body["from"], body["to"]) == (PERIOD["from"], PERIOD["to"])
        found = lines(body)
        standard = found[("H1234", "standard")]
        assert standard["complaints"] == 3
        assert (standard["resolved_on_time"], standard["resolved_late"]) == (1, 1)
        assert (standard["open_overdue"], standard["open_not_due"]) == (0, 1)
        immediate = found[("H1234", "immediate")]
        assert immediate["complaints"] == 2
        assert (immediate["resolved_on_time"], immediate["open_overdue"]) == (1, 1)
        assert immediate["awaiting_cms"] == 1
        assert immediate["timely_percent"] == 50.0
        contract = found[("H1234", "all")]
        assert contract["complaints"] == 5
        assert contract["timely_percent"] == round(100 * 2 / 4, 1)
        assert contract["median_days_to_resolve"] == 5.0  # 5, 10 and 1 days
        s5678 = found[("S5678", "all")]
        assert (s5678["complaints"], s5678["open_overdue"], s5678["timely_percent"]) == (1, 1, 0.0)
        everything = found[("all", "all")]
        assert everything["complaints"] == 6
        assert found[("all", "immediate")]["complaints"] == 2
        assert list(found)[-1] == ("all", "all")

    async def test_by_received_date_and_empty_periods(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        received_lately = {
            "from": day(-2).isoformat(),
            "to": day(0).isoformat(),
            "basis": "received",
        }
        response = await client.get(
            "/api/v1/reports/timeliness", params=received_lately, headers=seeded.viewer.headers
        )
        assert lines(response.json())[("all", "all")]["complaints"] == 1
        sandbox = {**PERIOD, "environment": "sandbox"}
        response = await client.get(
            "/api/v1/reports/timeliness", params=sandbox, headers=seeded.viewer.headers
        )
        assert lines(response.json())[("all", "all")]["complaints"] == 1
        quiet = {"from": "2020-01-01", "to": "2020-01-31"}
        response = await client.get(
            "/api/v1/reports/timeliness", params=quiet, headers=seeded.viewer.headers
        )
        assert response.json()["lines"] == [
            {
                "contract": "all", "timeframe": "all", "complaints": 0, "resolved_on_time": 0,
                "resolved_late": 0, "open_overdue": 0, "open_not_due": 0, "awaiting_cms": 0,
                "timely_percent": None, "median_days_to_resolve": None,
            }
        ]  # fmt: skip

    async def test_defaults_to_production_this_month(
        self, client: httpx.AsyncClient, seeded: Seeded
    ) -> None:
        response = await client.get("/api/v1/reports/timeliness", headers=seeded.viewer.headers)
        assert response.status_code == 200
        body = response.json()
        today = utcnow().date()
        assert (body["from"], body["to"]) == (today.replace(day=1).isoformat(), today.isoformat())
        assert body["environment"] == "production"

    async def test_as_csv(self, client: httpx.AsyncClient, seeded: Seeded) -> None:
        response = await client.get(
            "/api/v1/reports/timeliness.csv", params=PERIOD, headers=seeded.viewer.headers
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        start, end = day(-30).strftime("%Y%m%d"), day(10).strftime("%Y%m%d")
        assert response.headers["content-disposition"] == (
            f'attachment; filename="timeliness-production-{start}-{end}.csv"'
        )
        assert response.text.startswith("\ufeff")  # a BOM, for Excel
        rows = list(csv.DictReader(io.StringIO(response.text.removeprefix("\ufeff"))))
        by = {(r["contract"], r["timeframe"]): r for r in rows}
        assert by[("H1234", "immediate")]["timely_percent"] == "50.0"
        assert by[("H1234", "immediate")]["median_days_to_resolve"] == "1.0"
        assert by[("S5678", "standard")]["median_days_to_resolve"] == ""
        assert by[("all", "all")]["complaints"] == "6"

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
            ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),
            ({"environment": "staging"}, "environment"),
            ({"basis": "resolved"}, "basis"),
            ({"from": "yesterday"}, "from"),
        ],
    )
    async def test_bad_input_names_the_field(
        self,
        client: httpx.AsyncClient,
        seeded: Seeded,
        params: dict[str, str],
        field: str,
    ) -> None:
        for path in ("/api/v1/reports/timeliness", "/api/v1/reports/timeliness.csv"):
            response = await client.get(path, params=params, headers=seeded.viewer.headers)
            assert response.status_code == 400, response.text
            assert field in {e.get("key") for e in response.json()["extra"]}

    async def test_needs_complaints_read(self, client: httpx.AsyncClient, seeded: Seeded) -> None:
        response = await client.get("/api/v1/reports/timeliness", headers=seeded.unscoped.headers)
        assert response.status_code == 403
        assert (await client.get("/api/v1/reports/timeliness.csv")).status_code == 401
