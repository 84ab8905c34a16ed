"""Finding complaints through the API: the list's filters by issue level, part of a
complaint ID, resolution state and what needs a person (each bad value a 400 naming the
parameter), and the search by beneficiary identifier in a POST body (audited, no PHI in
the answer, another tenant's complaints never found)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.resolutions import SUMMARY_FIELD
from hub.core import crypto
from hub.core.db import utcnow
from hub.core.ids import TenantID, uuid7
from tests.integration.complaints.conftest import Staff
from tests.integration.complaints.support import IMMEDIATE, make_complaint
from tests.integration.complaints.test_phi_reads import as_text, phi_reads

BASE = "/api/v1/complaints"
SEARCH = f"{BASE}/search"
BENE = "1EG4-TE5-MK72"  # make_complaint's beneficiary


async def ids(client: httpx.AsyncClient, staff: Staff, **params: Any) -> list[str]:
    response = await client.get(BASE, params=params, headers=staff.caseworker.headers)
    assert response.status_code == 200, response.text
    return [c["complaint_id"] for c in response.json()]


async def in_doubt(
    session: AsyncSession, complaint: Complaint, *, since: timedelta, key: str
) -> Resolution:
    """An upload of `complaint` whose outcome has been unknown for `since`."""
    cipher = await crypto.cipher_for(session, TenantID(complaint.tenant_id))
    began = utcnow() - since
    resolution = Resolution(
        id=uuid7(), tenant_id=complaint.tenant_id, complaint_pk=complaint.id,
        contract=complaint.contract, complaint_id=complaint.complaint_id,
        resolution_date=utcnow().date(), state=ResolutionState.UPLOADING, idempotency_key=key,
        upload_batch=uuid7(), uploaded_at=began, in_doubt_since=began,
    )  # fmt: skip
    resolution.summary = cipher.seal("Sent.", field=SUMMARY_FIELD, row=resolution.id)
    session.add(resolution)
    complaint.resolution_state = ResolutionState.UPLOADING
    return resolution


@pytest.fixture
async def made(session: AsyncSession, staff: Staff) -> dict[str, Complaint]:
    """One complaint per case, due one day apart in this order."""
    tid, t = staff.caseworker.tenant_id, utcnow().date()
    cases = [
        ("CTM-A100", {"issue_level": IMMEDIATE}),
        ("CTM-B200", {"state": ResolutionState.REJECTED}),
        ("CTM-C300", {"state": ResolutionState.QUEUED}),
        ("CTM-D400", {}),  # in doubt for an hour: a person may settle it
        ("CTM-E500", {}),  # in doubt for a minute: CMS may still be storing it
        ("CTM-F600", {"state": ResolutionState.REJECTED, "cms_resolution_date": t}),
    ]
    found = {
        name: await make_complaint(
            session, tid, complaint_id=name, received=t - timedelta(days=20 - i),
            bene="9ZZ9-ZZ9-ZZ99" if name == "CTM-C300" else BENE, **extra,
        )
        for i, (name, extra) in enumerate(cases)
    }  # fmt: skip
    await in_doubt(session, found["CTM-D400"], since=timedelta(hours=1), key="k-d")
    await in_doubt(session, found["CTM-E500"], since=timedelta(minutes=1), key="k-e")
    await make_complaint(
        session, staff.other.tenant_id, complaint_id="CTM-B999", state=ResolutionState.REJECTED
    )
    await session.commit()
    return found


class TestListFilters:
    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"issue_level": IMMEDIATE}, ["CTM-A100"]),
            ({"issue_level": "immediate need"}, []),  # exactly as CMS writes it
            ({"complaint_id": "b2"}, ["CTM-B200"]),
            (
                {"complaint_id": "ctm-"},
                ["CTM-A100", "CTM-B200", "CTM-C300", "CTM-D400", "CTM-E500", "CTM-F600"],
            ),
            ({"complaint_id": "_"}, []),  # a wildcard is a character like any other
            ({"resolution": "Rejected"}, ["CTM-B200", "CTM-F600"]),
            ({"resolution": "uploading"}, ["CTM-D400", "CTM-E500"]),
            ({"resolution": "queued", "complaint_id": "C3"}, ["CTM-C300"]),
            ({"needs_person": "true"}, ["CTM-B200", "CTM-D400"]),
            (
                {"needs_person": "false"},
                ["CTM-A100", "CTM-B200", "CTM-C300", "CTM-D400", "CTM-E500", "CTM-F600"],
            ),
            ({"needs_person": "true", "complaint_id": "D4"}, ["CTM-D400"]),
        ],
    )
    async def test_each_filter_keeps_its_complaints(
        self,
        client: httpx.AsyncClient,
        staff: Staff,
        made: dict[str, Complaint],
        params: dict[str, str],
        expected: list[str],
    ) -> None:
        assert await ids(client, staff, **params) == expected

    @pytest.mark.parametrize(
        ("params", "key", "words"),
        [
            ({"resolution": "gone"}, "resolution", "must be one of none, queued"),
            ({"needs_person": "maybe"}, "needs_person", ""),
            ({"complaint_id": "x" * 65}, "complaint_id", ""),
            ({"complaint_id": "a\x00b"}, "complaint_id", ""),
            ({"issue_level": "x" * 101}, "issue_level", ""),
            ({"issue_level": "\x00"}, "issue_level", ""),
        ],
    )
    async def test_a_bad_value_is_a_400_naming_the_parameter(
        self,
        client: httpx.AsyncClient,
        staff: Staff,
        made: dict[str, Complaint],
        params: dict[str, str],
        key: str,
        words: str,
    ) -> None:
        response = await client.get(BASE, params=params, headers=staff.caseworker.headers)
        assert response.status_code == 400, response.text
        [named] = [e for e in response.json()["extra"] if e["key"] == key]
        assert words in named["message"]

    async def test_the_schema_documents_the_filters(self, client: httpx.AsyncClient) -> None:
        schema = (await client.get("/schema/openapi.json")).json()
        listing = schema["paths"][f"{BASE}"]["get"]
        params = {p["name"]: p for p in listing["parameters"]}
        assert {"issue_level", "complaint_id", "resolution", "needs_person"} <= set(params)
        assert params["complaint_id"]["schema"]["maxLength"] == 64
        assert "rejected" in params["needs_person"]["description"]
        assert "issue level" in params["issue_level"]["description"]
        search = schema["paths"][f"{BASE}/search"]["post"]
        assert "never the identifier" in search["description"]
        body = schema["components"]["schemas"]["BeneficiarySearch"]
        assert body["required"] == ["beneficiary"]
        assert body["properties"]["beneficiary"]["maxLength"] == 100


class TestBeneficiarySearch:
    async def test_finds_the_beneficiarys_complaints_without_phi_and_records_it(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        made: dict[str, Complaint],
    ) -> None:
        found = await client.post(
            SEARCH, json={"beneficiary": " 1eg4-te5-mk72 "}, headers=staff.viewer.headers
        )
        assert found.status_code == 200, found.text
        assert [c["complaint_id"] for c in found.json()] == [
            "CTM-A100", "CTM-B200", "CTM-D400", "CTM-E500", "CTM-F600",
        ]  # fmt: skip
        assert BENE not in found.text
        assert "Canary" not in found.text
        assert set(found.json()[0]) == set(
            (await client.get(BASE, headers=staff.viewer.headers)).json()[0]
        ), "the same fields as the list, no more"
        missed = await client.post(
            SEARCH, json={"beneficiary": "1EG4-TE5-MK73"}, headers=staff.viewer.headers
        )
        assert missed.json() == []
        entries = await phi_reads(session, staff.viewer.tenant_id)
        assert [e.details for e in entries] == [
            {"view": "beneficiary_search", "matches": 5},
            {"view": "beneficiary_search", "matches": 0},
        ]
        assert {e.actor_label for e in entries} == {staff.viewer.user.email}
        assert not any(BENE in as_text(e) or "1EG4" in as_text(e).upper() for e in entries)

    async def test_another_tenants_caller_finds_none_of_ours(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        made: dict[str, Complaint],
    ) -> None:
        found = await client.post(SEARCH, json={"beneficiary": BENE}, headers=staff.other.headers)
        assert [c["complaint_id"] for c in found.json()] == ["CTM-B999"]

    async def test_the_limit_is_kept(
        self, client: httpx.AsyncClient, staff: Staff, made: dict[str, Complaint]
    ) -> None:
        found = await client.post(
            SEARCH, json={"beneficiary": BENE, "limit": 2}, headers=staff.caseworker.headers
        )
        assert [c["complaint_id"] for c in found.json()] == ["CTM-A100", "CTM-B200"]

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            ({"beneficiary": "   "}, "must not be blank"),
            ({"beneficiary": ""}, ""),
            ({"beneficiary": "x" * 101}, ""),
            ({"beneficiary": "a\x00b"}, ""),
            ({}, ""),
            ({"beneficiary": BENE, "mbi": BENE}, ""),
        ],
    )
    async def test_a_bad_body_is_a_400_naming_the_field_and_records_nothing(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        made: dict[str, Complaint],
        body: dict[str, str],
        words: str,
    ) -> None:
        response = await client.post(SEARCH, json=body, headers=staff.caseworker.headers)
        assert response.status_code == 400, response.text
        assert "beneficiary" in response.text or "mbi" in response.text
        assert words in response.text
        assert BENE not in response.text
        assert await phi_reads(session, staff.caseworker.tenant_id) == []
