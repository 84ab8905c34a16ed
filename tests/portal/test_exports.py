"""The portal's CSV downloads: the complaints list's and the audit log's "Download CSV"
links carry the page's filters, answer the API's file with the portal's page headers, keep
to the signed-in member's tenant and role, and an audit log download is on record."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import repository as audit_repository
from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.core import csvexport
from hub.core.ids import TenantID
from tests.integration.complaints.support import make_complaint
from tests.portal.support import sign_in
from tests.support import make_member, make_tenant

BENE = "1EG4-TE5-MK72"


def download_href(page: httpx.Response) -> str:
    found = re.search(r'<a href="([^"]*)" data-testid="download-csv"', page.text)
    assert found, "no Download CSV link"
    return html.unescape(found.group(1))


def rows_of(answer: httpx.Response) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    text = answer.content.decode("utf-8").removeprefix(csvexport.BOM)
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
async def plans(session: AsyncSession) -> Any:
    tenant = await make_tenant(session, "acme", "Acme Health")
    await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    await make_member(session, tenant, email="worker@acme.test", role=Role.CASEWORKER)
    tid = TenantID(tenant.id)
    await make_complaint(session, tid, complaint_id="CTM-H1", contract="H1234", bene=BENE)
    await make_complaint(session, tid, complaint_id="CTM-S1", contract="S5678", bene=BENE)
    await make_complaint(session, tid, complaint_id="@CTM-S2", contract="S5678", bene=BENE)
    beta = await make_tenant(session, "beta", "Beta Plan")
    await make_complaint(session, TenantID(beta.id), complaint_id="CTM-BETA", contract="S5678")
    await session.commit()
    return tenant


class TestComplaintsDownload:
    async def test_the_link_carries_the_filters_and_the_file_holds_what_they_match(
        self, portal: httpx.AsyncClient, plans: Any
    ) -> None:
        await sign_in(portal, "worker@acme.test")
        page = await portal.get("/portal/complaints", params={"contract": "S5678"})
        href = download_href(page)
        assert href == "/portal/complaints.csv?contract=S5678"
        # Filtered in place (htmx swaps the results only): the swap brings its own link.
        swapped = await portal.get(
            "/portal/complaints", params={"contract": "H1234"}, headers={"HX-Request": "true"}
        )
        assert download_href(swapped) == "/portal/complaints.csv?contract=H1234"
        answer = await portal.get(href)
        assert answer.headers["content-disposition"].startswith(
            'attachment; filename="complaints-acme-'
        )
        rows = rows_of(answer)
        assert sorted(r["complaint_id"] for r in rows) == ["'@CTM-S2", "CTM-S1"]
        assert "CTM-BETA" not in answer.text
        assert BENE not in answer.text
        assert "Canary PHI summary" not in answer.text

    async def test_unfiltered_and_a_bad_filter(self, portal: httpx.AsyncClient, plans: Any) -> None:
        await sign_in(portal, "worker@acme.test")
        assert download_href(await portal.get("/portal/complaints")) == "/portal/complaints.csv"
        every = rows_of(await portal.get("/portal/complaints.csv"))
        assert len(every) == 3
        assert (await portal.get("/portal/complaints.csv?status=lost")).status_code == 400

    async def test_signed_out_gets_no_file(self, portal: httpx.AsyncClient, plans: Any) -> None:
        answer = await portal.get("/portal/complaints.csv")
        assert answer.status_code in (302, 303, 401)
        assert "CTM-H1" not in answer.text


async def exports(session: AsyncSession, tenant_id: Any) -> list[AuditEntry]:
    found = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.chain_id == tenant_id, AuditEntry.action == audit_repository.EXPORTED)
        .execution_options(populate_existing=True)
    )
    return list(found.all())


class TestAuditDownload:
    async def test_the_link_carries_the_filters_and_the_download_is_on_record(
        self, session: AsyncSession, portal: httpx.AsyncClient, plans: Any
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        page = await portal.get(
            "/portal/audit", params={"action": "membership.", "since": "2020-01-01"}
        )
        href = download_href(page)
        assert href == "/portal/audit.csv?action=membership.&since=2020-01-01"
        answer = await portal.get(href)
        assert answer.headers["content-disposition"].startswith('attachment; filename="audit-acme-')
        rows = rows_of(answer)
        assert rows
        assert {r["action"] for r in rows} == {"membership.added"}
        assert "beta" not in answer.text.lower()
        [entry] = await exports(session, plans.id)
        assert entry.actor_label == "admin@acme.test"
        assert entry.details["filters"] == {
            "action": "membership.",
            "since": "2020-01-01T00:00:00+00:00",
        }
        assert entry.details["rows"] == len(rows)

    async def test_a_caseworker_gets_403_and_nothing_is_recorded(
        self, session: AsyncSession, portal: httpx.AsyncClient, plans: Any
    ) -> None:
        await sign_in(portal, "worker@acme.test")
        answer = await portal.get("/portal/audit.csv")
        assert answer.status_code == 403
        assert "membership.added" not in answer.text
        assert await exports(session, plans.id) == []

    async def test_a_bad_day_is_a_400(self, portal: httpx.AsyncClient, plans: Any) -> None:
        await sign_in(portal, "admin@acme.test")
        assert (await portal.get("/portal/audit.csv?since=someday")).status_code == 400
