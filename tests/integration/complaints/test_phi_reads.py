"""Every answer that opens PHI is audited (`phi.read`): who, which complaint, which view,
how many records, never a value; an answer that opens none, or fails, records nothing; and
a read that cannot be recorded is not answered."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import reads
from hub.audit import service as audit
from hub.audit.models import AuditEntry
from hub.complaints.models import Complaint
from hub.core.ids import TenantID
from tests.integration.complaints.conftest import Staff
from tests.integration.complaints.support import make_complaint
from tests.integration.complaints.test_resolutions import body, sandbox_key

BASE = "/api/v1/complaints"
BENE = "1EG4-TE5-MK72"  # make_complaint's beneficiary


async def phi_reads(session: AsyncSession, tenant_id: TenantID) -> Sequence[AuditEntry]:
    return (
        await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == reads.PHI_READ)
            .order_by(AuditEntry.seq)
            .execution_options(populate_existing=True)
        )
    ).all()


def as_text(entry: AuditEntry) -> str:
    return json.dumps(
        [entry.details, entry.target_id, entry.target_type, entry.actor_label], default=str
    )


@pytest.fixture
async def complaint(session: AsyncSession, staff: Staff) -> Complaint:
    made = await make_complaint(session, staff.caseworker.tenant_id, complaint_id="CTM-PHI-1")
    await session.commit()
    return made


class TestComplaintDetail:
    async def test_opening_a_complaint_records_who_and_which_without_a_value(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff, complaint: Complaint
    ) -> None:
        response = await client.get(f"{BASE}/{complaint.id}", headers=staff.viewer.headers)
        assert response.status_code == 200
        assert response.json()["phi"]["COMPLAINT_SUMMARY"] == "Canary PHI summary"
        [entry] = await phi_reads(session, staff.viewer.tenant_id)
        assert (entry.actor_id, entry.actor_label) == (
            staff.viewer.user.id,
            staff.viewer.user.email,
        )
        assert (entry.target_type, entry.target_id) == ("complaint", str(complaint.id))
        assert entry.details == {
            "view": "complaint",
            "contract": "H1234",
            "environment": "sandbox",
            "complaint_id": "CTM-PHI-1",
        }
        assert "Canary" not in as_text(entry)
        assert BENE not in as_text(entry)

    async def test_each_opening_is_one_entry_and_the_chain_still_verifies(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff, complaint: Complaint
    ) -> None:
        for member in (staff.caseworker, staff.viewer, staff.caseworker):
            response = await client.get(f"{BASE}/{complaint.id}", headers=member.headers)
            assert response.status_code == 200
        entries = await phi_reads(session, staff.caseworker.tenant_id)
        assert [e.actor_label for e in entries] == [
            staff.caseworker.user.email,
            staff.viewer.user.email,
            staff.caseworker.user.email,
        ]
        [report] = await audit.verify(session, tenant_id=staff.caseworker.tenant_id)
        assert report.is_intact, report

    async def test_a_complaint_not_found_records_nothing(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff, complaint: Complaint
    ) -> None:
        # Another tenant's complaint is a 404 (no existence leak), and nothing was opened.
        response = await client.get(f"{BASE}/{complaint.id}", headers=staff.other.headers)
        assert response.status_code == 404
        assert await phi_reads(session, staff.other.tenant_id) == []
        assert await phi_reads(session, staff.caseworker.tenant_id) == []

    async def test_listing_and_history_open_no_phi_and_record_nothing(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff, complaint: Complaint
    ) -> None:
        for path in (BASE, f"{BASE}/{complaint.id}/history"):
            response = await client.get(path, headers=staff.caseworker.headers)
            assert response.status_code == 200
            assert "Canary" not in response.text
        assert await phi_reads(session, staff.caseworker.tenant_id) == []

    async def test_a_read_that_cannot_be_recorded_is_not_answered(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        complaint: Complaint,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        async def refuse(*_: Any, **__: Any) -> AuditEntry:
            raise RuntimeError("the audit log is unavailable")

        monkeypatch.setattr(reads.service, "record", refuse)
        response = await client.get(f"{BASE}/{complaint.id}", headers=staff.caseworker.headers)
        assert response.status_code == 500
        assert "Canary" not in response.text
        assert BENE not in response.text


class TestBeneficiarySearch:
    async def test_a_search_by_beneficiary_records_the_matches_not_the_identifier(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff, complaint: Complaint
    ) -> None:
        found = await client.get(
            BASE, params={"beneficiary": BENE}, headers=staff.caseworker.headers
        )
        assert [c["id"] for c in found.json()] == [str(complaint.id)]
        missed = await client.get(
            BASE, params={"beneficiary": "9ZZ9-ZZ9-ZZ99"}, headers=staff.caseworker.headers
        )
        assert missed.json() == []
        entries = await phi_reads(session, staff.caseworker.tenant_id)
        assert [e.details for e in entries] == [
            {"view": "beneficiary_search", "matches": 1},
            {"view": "beneficiary_search", "matches": 0},
        ]
        for entry in entries:
            assert entry.target_id is None
            assert BENE not in as_text(entry)
            assert "9ZZ9" not in as_text(entry)


class TestResolutions:
    async def test_opening_resolutions_records_how_many(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        key = await sandbox_key(session, staff)
        made = await make_complaint(session, staff.caseworker.tenant_id, api_key_id=key.id)
        await session.commit()
        path = f"{BASE}/{made.id}/resolutions"
        empty = await client.get(path, headers=staff.viewer.headers)
        assert (empty.status_code, empty.json()) == (200, [])
        assert await phi_reads(session, staff.viewer.tenant_id) == []  # nothing opened
        written = await client.post(path, json=body(), headers=staff.caseworker.headers)
        assert written.status_code == 201, written.text
        listed = await client.get(path, headers=staff.viewer.headers)
        assert "Canary-7731" in listed.text
        [entry] = await phi_reads(session, staff.viewer.tenant_id)
        assert entry.actor_label == staff.viewer.user.email
        assert (entry.target_type, entry.target_id) == ("complaint", str(made.id))
        assert entry.details == {"view": "resolutions", "resolutions": 1}
        assert "Canary" not in as_text(entry)
