"""The complaints CSV export (`GET /api/v1/complaints.csv`): the list's filters, every
matching row across pages, bounded with a last line saying so, no PHI, formula cells
neutralised, another tenant's complaints never in it, complaints:read required."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import Role, Scope
from hub.complaints.models import Complaint, ResolutionState
from hub.complaints.repository import EXPORT_COLUMNS, ComplaintFilter
from hub.core import csvexport
from hub.core.db import Database, utcnow
from hub.keys.models import Environment
from tests.integration.complaints.conftest import Staff
from tests.integration.complaints.support import IMMEDIATE, make_complaint
from tests.integration.reports.test_timeliness import accept
from tests.support import make_member

URL = "/api/v1/complaints.csv"
BENE = "1EG4-TE5-MK72"  # make_complaint's beneficiary identifier
PHI_SUMMARY = "Canary PHI summary"  # make_complaint's PHI document
NAME = "Zebediah Quarrington"


def parse(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    text = response.content.decode("utf-8")
    assert text.startswith(csvexport.BOM)
    return list(csv.DictReader(io.StringIO(text.removeprefix(csvexport.BOM))))


async def export(client: httpx.AsyncClient, staff: Staff, **params: Any) -> list[dict[str, str]]:
    return parse(await client.get(URL, params=params, headers=staff.caseworker.headers))


@pytest.fixture
async def made(session: AsyncSession, staff: Staff) -> dict[str, Complaint]:
    """Five complaints of plan-a, due a day apart in this order, and one of plan-b."""
    tid, today = staff.caseworker.tenant_id, utcnow().date()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("CTM-A100", {"issue_level": IMMEDIATE}),
        ("CTM-B200", {"state": ResolutionState.REJECTED}),
        ("CTM-C300", {"contract": "S5678"}),
        ("CTM-D400", {"environment": Environment.PRODUCTION, "cms_resolution_date": today}),
        ('=HYPERLINK("http://evil.example")', {}),
    ]
    found = {}
    for offset, (complaint_id, extra) in enumerate(cases):
        found[complaint_id] = await make_complaint(
            session, tid, complaint_id=complaint_id, received=today - timedelta(days=7 - offset),
            assigned=today - timedelta(days=7 - offset), bene=BENE, **extra,
        )  # fmt: skip
    found["CTM-A100"].category = "+cmd|' /C calc'!A0"
    found["CTM-A100"].subcategory = "@SUM(1+1)"
    await accept(session, found["CTM-B200"], today - timedelta(days=1))
    found["CTM-B200"].resolution_state = ResolutionState.REJECTED
    found["other"] = await make_complaint(
        session, staff.other.tenant_id, complaint_id="CTM-OTHER", bene=BENE
    )
    await session.commit()
    return found


class TestComplaintsExport:
    async def test_every_row_with_the_lists_fields_due_basis_and_resolution_dates(
        self, client: httpx.AsyncClient, staff: Staff, made: dict[str, Complaint]
    ) -> None:
        response = await client.get(URL, headers=staff.caseworker.headers)
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["cache-control"] == "no-store"
        today = utcnow().date()
        assert response.headers["content-disposition"] == (
            f'attachment; filename="complaints-plan-a-{today:%Y%m%d}.csv"'
        )
        rows = parse(response)
        assert list(rows[0]) == list(EXPORT_COLUMNS)
        assert [r["complaint_id"] for r in rows] == [
            "CTM-A100", "CTM-B200", "CTM-C300", "CTM-D400", "'=HYPERLINK(\"http://evil.example\")",
        ]  # fmt: skip
        a, b, _, d, _ = rows
        assert a["issue_level"] == IMMEDIATE
        assert a["is_immediate_need"] == "true"
        assert a["due_basis"] == "assignment"
        assert a["due_date"] == made["CTM-A100"].due_date.isoformat()
        assert a["status"] == "overdue"
        assert a["resolution_state"] == "none"
        assert a["hub_resolution_date"] == ""
        assert a["cms_resolution_date"] == ""
        assert b["resolution_state"] == "rejected"
        assert b["hub_resolution_date"] == (today - timedelta(days=1)).isoformat()
        assert d["cms_resolution_date"] == today.isoformat()
        assert d["status"] == "resolved"
        assert d["environment"] == "production"
        assert d["id"] == str(made["CTM-D400"].id)

    async def test_the_lists_filters_narrow_it(
        self, client: httpx.AsyncClient, staff: Staff, made: dict[str, Complaint]
    ) -> None:
        def ids(rows: list[dict[str, str]]) -> list[str]:
            return [r["complaint_id"] for r in rows]

        assert ids(await export(client, staff, contract="s5678")) == ["CTM-C300"]
        assert ids(await export(client, staff, environment="production")) == ["CTM-D400"]
        assert ids(await export(client, staff, issue_level=IMMEDIATE)) == ["CTM-A100"]
        assert ids(await export(client, staff, complaint_id="b2")) == ["CTM-B200"]
        assert ids(await export(client, staff, resolution="rejected")) == ["CTM-B200"]
        assert ids(await export(client, staff, needs_person="true")) == ["CTM-B200"]
        assert ids(await export(client, staff, status="resolved")) == ["CTM-D400"]
        due = made["CTM-B200"].due_date.isoformat()
        assert ids(await export(client, staff, due_before=due)) == ["CTM-A100"]

    async def test_a_bad_filter_is_a_400_naming_it(
        self, client: httpx.AsyncClient, staff: Staff
    ) -> None:
        response = await client.get(
            URL, params={"status": "lost"}, headers=staff.caseworker.headers
        )
        assert response.status_code == 400
        assert "status" in response.text

    async def test_read_in_pages_and_cut_at_the_bound_saying_so(
        self,
        client: httpx.AsyncClient,
        staff: Staff,
        made: dict[str, Complaint],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(csvexport, "PAGE_ROWS", 2)
        every = await export(client, staff)
        assert len(every) == 5  # three pages of two, all there, none twice
        assert len({r["id"] for r in every}) == 5
        monkeypatch.setattr(csvexport, "MAX_ROWS", 3)
        response = await client.get(URL, headers=staff.caseworker.headers)
        lines = response.content.decode("utf-8").splitlines()
        assert len(lines) == 1 + 3 + 1
        assert lines[-1].startswith("# cut at 3 rows")
        assert [ln.split(",")[0] for ln in lines[1:4]] == ["CTM-A100", "CTM-B200", "CTM-C300"]
        monkeypatch.setattr(csvexport, "MAX_ROWS", 5)  # exactly the bound: not cut
        lines = (await client.get(URL, headers=staff.caseworker.headers)).text.splitlines()
        assert len(lines) == 6
        assert not lines[-1].startswith(csvexport.CUT_PREFIX)

    async def test_a_complaint_that_moves_meanwhile_comes_once_in_its_place(
        self, db: Database, session: AsyncSession, staff: Staff, made: dict[str, Complaint]
    ) -> None:
        """Pages are read one by one as the file goes out; a sync meanwhile may move a
        complaint's due date (the list's order). Which complaints, in which order, is
        fixed as the export begins: none is skipped or repeated, and each row has its
        values as its page is read."""
        from hub.complaints import repository
        from hub.complaints.service import Deadlines

        tid, today = staff.caseworker.tenant_id, utcnow().date()
        pages = repository.export_pages(
            db, tid, ComplaintFilter(), now=utcnow(), deadlines=Deadlines(), page_rows=2,
            max_rows=100,
        )  # fmt: skip
        seen = [row[0] for row in await anext(pages)]
        assert seen == ["CTM-A100", "CTM-B200"]
        # The last complaint moves to the front, the first to the back.
        last = made['=HYPERLINK("http://evil.example")']
        last.due_date = today - timedelta(days=30)
        made["CTM-A100"].due_date = today + timedelta(days=30)
        await session.flush()
        async for page in pages:
            seen += [row[0] for row in page]
        assert seen == [
            "CTM-A100", "CTM-B200", "CTM-C300", "CTM-D400", '=HYPERLINK("http://evil.example")',
        ]  # fmt: skip
        later = [row async for page in repository.export_pages(
            db, tid, ComplaintFilter(), now=utcnow(), deadlines=Deadlines(), page_rows=2,
            max_rows=100,
        ) for row in page]  # fmt: skip
        order = [row[0] for row in later]  # a new export reads the new order
        assert (order[0], order[-1]) == ('=HYPERLINK("http://evil.example")', "CTM-A100")

    async def test_no_phi_in_it(
        self, client: httpx.AsyncClient, staff: Staff, made: dict[str, Complaint]
    ) -> None:
        response = await client.get(URL, headers=staff.caseworker.headers)
        assert response.status_code == 200
        body = response.content.decode("utf-8")
        assert "CTM-A100" in body
        for phi in (
            BENE,
            BENE.replace("-", ""),
            PHI_SUMMARY,
            "COMPLAINT_SUMMARY",
            "BENE_IDENTIFIER",
        ):
            assert phi.lower() not in body.lower()

    async def test_no_name_in_it_either(
        self, session: AsyncSession, client: httpx.AsyncClient, staff: Staff
    ) -> None:
        """A beneficiary's identifier and name planted in the PHI document never show."""
        await make_complaint(
            session, staff.caseworker.tenant_id, complaint_id="CTM-NAMED", bene="9ZZ9-ZZ9-ZZ99"
        )
        named = await make_complaint(session, staff.caseworker.tenant_id, bene=NAME)
        await session.commit()
        body = (await client.get(URL, headers=staff.caseworker.headers)).text
        assert "CTM-NAMED" in body
        assert named.complaint_id in body
        assert "9ZZ9-ZZ9-ZZ99" not in body
        assert "Quarrington" not in body

    async def test_formula_cells_are_neutralised(
        self, client: httpx.AsyncClient, staff: Staff, made: dict[str, Complaint]
    ) -> None:
        rows = await export(client, staff, complaint_id="CTM-A100")
        assert rows[0]["category"] == "'+cmd|' /C calc'!A0"
        assert rows[0]["subcategory"] == "'@SUM(1+1)"
        [evil] = await export(client, staff, complaint_id="HYPERLINK")
        assert evil["complaint_id"].startswith("'=")

    async def test_another_tenants_complaints_never_appear(
        self, client: httpx.AsyncClient, staff: Staff, made: dict[str, Complaint]
    ) -> None:
        response = await client.get(URL, headers=staff.other.headers)
        rows = parse(response)
        assert [r["complaint_id"] for r in rows] == ["CTM-OTHER"]
        assert "plan-b" in response.headers["content-disposition"]
        assert str(made["CTM-A100"].id) not in response.text

    async def test_a_token_without_complaints_read_gets_403(
        self, session: AsyncSession, client: httpx.AsyncClient, staff: Staff
    ) -> None:
        keys_only = await make_member(
            session, staff.caseworker.tenant, email="keys@plan-a.example", role=Role.VIEWER,
            scopes=frozenset({Scope.KEYS_READ}),
        )  # fmt: skip
        await session.commit()
        assert (await client.get(URL, headers=keys_only.headers)).status_code == 403
        assert (await client.get(URL, headers=staff.viewer.headers)).status_code == 200
        assert (await client.get(URL)).status_code == 401


class TestCells:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "'\r=1+1"),
            ("CTM-1", "CTM-1"),
            ("a=b", "a=b"),
            ("", ""),
            (None, ""),
            (True, "true"),
            (7, "7"),
        ],
    )
    def test_a_cell_a_spreadsheet_would_run_is_neutralised(self, value: Any, shown: str) -> None:
        assert csvexport.cell(value) == shown

    def test_a_neutralised_cell_survives_quoting(self) -> None:
        written = csvexport.lines([["\r=HYPERLINK(1)", "x,y"]])
        assert next(csv.reader(io.StringIO(written))) == ["'\r=HYPERLINK(1)", "x,y"]
