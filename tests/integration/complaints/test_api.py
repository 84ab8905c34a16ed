"""/api/v1/complaints: list without PHI and its filters, detail with PHI for the tenant's
staff, due dates and derived status for each issue level, history, tenant isolation."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints.models import ComplaintChange, ResolutionState
from hub.core.db import utcnow
from hub.keys.models import Environment
from hub.syncs.models import RunOutcome, SyncRun
from tests.integration.complaints.conftest import Staff
from tests.integration.complaints.support import (
    IMMEDIATE,
    NO_ISSUE,
    URGENT,
    make_complaint,
)

BASE = "/api/v1/complaints"


def today() -> date:
    return utcnow().date()


async def listed(client: httpx.AsyncClient, staff: Staff, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(BASE, params=params, headers=staff.caseworker.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


class TestDueDates:
    async def test_each_issue_level_and_the_received_date_fallback(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        tid, assigned = staff.caseworker.tenant_id, today() - timedelta(days=1)
        immediate = await make_complaint(session, tid, issue_level=IMMEDIATE, assigned=assigned,
                                         received=assigned - timedelta(days=3))  # fmt: skip
        urgent = await make_complaint(session, tid, issue_level=URGENT, assigned=assigned,
                                      received=assigned - timedelta(days=3))  # fmt: skip
        plain = await make_complaint(session, tid, issue_level=NO_ISSUE, assigned=None,
                                     received=today() - timedelta(days=2))  # fmt: skip
        await session.commit()
        expected = {
            immediate.id: (
                assigned + timedelta(days=2),
                "assignment",
                "immediate need: assignment",
            ),
            urgent.id: (
                assigned + timedelta(days=7),
                "assignment",
                "standard: assignment date + 7",
            ),
            plain.id: (today() + timedelta(days=5), "received", "standard: received date + 7"),
        }
        for ident, (due, basis, note) in expected.items():
            response = await client.get(f"{BASE}/{ident}", headers=staff.caseworker.headers)
            assert response.status_code == 200, response.text
            detail = response.json()
            assert detail["complaint"]["due_date"] == due.isoformat()
            assert detail["complaint"]["due_basis"] == basis
            assert detail["due_basis_note"].startswith(note)
        fallback = (await client.get(f"{BASE}/{plain.id}", headers=staff.caseworker.headers)).json()
        assert "no assignment date" in fallback["due_basis_note"]

    async def test_derived_status_of_every_kind(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        tid, t = staff.caseworker.tenant_id, today()
        made = {
            "overdue": await make_complaint(session, tid, assigned=t - timedelta(days=8)),
            # Due today: it breaches at midnight UTC, within the default 24 hours.
            "due_soon": await make_complaint(
                session, tid, issue_level=IMMEDIATE, assigned=t - timedelta(days=2)
            ),
            "open": await make_complaint(session, tid, assigned=t),
            "resolved": await make_complaint(session, tid, assigned=t, cms_resolution_date=t),
            "accepted": await make_complaint(session, tid, assigned=t - timedelta(days=9),
                                             state=ResolutionState.ACCEPTED),
            "rejected": await make_complaint(
                session, tid, assigned=t, state=ResolutionState.REJECTED
            ),
        }  # fmt: skip
        queued = await make_complaint(session, tid, assigned=t, state=ResolutionState.QUEUED)
        # Our upload was rejected, and then CMS's file closed it (resolved in HPMS): nothing
        # is left to fix and resubmit.
        closed = await make_complaint(
            session, tid, assigned=t, state=ResolutionState.REJECTED, cms_resolution_date=t
        )
        await session.commit()
        also_resolved = {str(queued.id), str(closed.id)}
        everything = {c["id"]: c["status"] for c in await listed(client, staff)}
        assert everything[str(closed.id)] == "resolved"
        for status, complaint in made.items():
            assert everything[str(complaint.id)] == status
            only = await listed(client, staff, status=status)
            expected = {str(complaint.id)} | (also_resolved if status == "resolved" else set())
            assert {c["id"] for c in only} == expected, status


class TestList:
    async def test_list_has_no_phi_and_filters(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        tid, t = staff.caseworker.tenant_id, today()
        first = await make_complaint(session, tid, contract="H1234", assigned=t - timedelta(days=6),
                                     bene="1EG4-TE5-MK72")  # fmt: skip
        second = await make_complaint(
            session, tid, contract="S5678", assigned=t, bene="9ZZ9-ZZ9-ZZ99"
        )
        await make_complaint(session, staff.other.tenant_id, bene="1EG4-TE5-MK72")
        await session.commit()
        response = await client.get(BASE, headers=staff.caseworker.headers)
        assert response.status_code == 200
        assert "Canary PHI summary" not in response.text
        assert "1EG4" not in response.text
        assert [c["id"] for c in response.json()] == [str(first.id), str(second.id)]
        assert [c["id"] for c in await listed(client, staff, contract="s5678")] == [str(second.id)]
        before = (t + timedelta(days=3)).isoformat()
        assert [c["id"] for c in await listed(client, staff, due_before=before)] == [str(first.id)]
        by_bene = await listed(client, staff, beneficiary="1eg4-te5-mk72")
        assert [c["id"] for c in by_bene] == [str(first.id)], "exact match, normalised case"
        assert await listed(client, staff, beneficiary="1EG4-TE5-MK73") == []

    async def test_each_complaint_names_its_environment_and_one_can_be_kept(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        tid = staff.caseworker.tenant_id
        made = {
            environment: await make_complaint(
                session, tid, complaint_id="CTM-1", environment=environment
            )
            for environment in Environment
        }
        await session.commit()
        listed_all = await listed(client, staff)
        assert {c["id"]: c["environment"] for c in listed_all} == {
            str(c.id): environment.value for environment, c in made.items()
        }, "the same complaint ID in both environments: two complaints"
        for environment, complaint in made.items():
            for asked in (environment.value, environment.value.upper()):
                only = await listed(client, staff, environment=asked)
                assert [c["id"] for c in only] == [str(complaint.id)]

    async def test_bad_filters_answer_400_naming_the_field(
        self, client: httpx.AsyncClient, staff: Staff
    ) -> None:
        for params, name in [
            ({"status": "closed"}, "status"),
            ({"environment": "staging"}, "environment"),
            ({"contract": "Q1"}, "contract"),
            ({"due_before": "tomorrow"}, "due_before"),
            ({"limit": "0"}, "limit"),
        ]:
            response = await client.get(BASE, params=params, headers=staff.caseworker.headers)
            assert response.status_code == 400, params
            assert name in response.text

    async def test_an_offset_beyond_a_64_bit_integer_is_a_400_naming_it(
        self, client: httpx.AsyncClient, staff: Staff
    ) -> None:
        response = await client.get(
            BASE, params={"offset": str(2**63)}, headers=staff.caseworker.headers
        )
        assert response.status_code == 400, response.text
        [problem] = response.json()["extra"]
        assert (problem["key"], problem["source"]) == ("offset", "query")
        assert str(2**63 - 1) in problem["message"]
        last = await client.get(
            BASE, params={"offset": str(2**63 - 1)}, headers=staff.caseworker.headers
        )
        assert (last.status_code, last.json()) == (200, [])

    async def test_another_tenant_sees_nothing(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        mine = await make_complaint(session, staff.caseworker.tenant_id)
        await session.commit()
        other = staff.other.headers
        assert (await client.get(f"{BASE}/{mine.id}", headers=other)).status_code == 404
        assert (await client.get(f"{BASE}/{mine.id}/history", headers=other)).status_code == 404
        assert (await client.get(BASE, headers=other)).json() == []


class TestDetailAndHistory:
    async def test_detail_opens_phi_for_the_tenant_staff(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        complaint = await make_complaint(session, staff.caseworker.tenant_id)
        await session.commit()
        for member in (staff.caseworker, staff.viewer):
            response = await client.get(f"{BASE}/{complaint.id}", headers=member.headers)
            assert response.status_code == 200
            detail = response.json()
            assert detail["phi"]["COMPLAINT_SUMMARY"] == "Canary PHI summary"
            assert detail["fields"] == {"COMPLAINT_STATUS": "Open"}
            assert detail["complaint"]["complaint_id"] == complaint.complaint_id

    async def test_history_names_columns_and_runs_never_values(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        tid = staff.caseworker.tenant_id
        complaint = await make_complaint(session, tid)
        run = SyncRun(
            tenant_id=tid, contract="H1234", trigger="schedule", window_start=today(),
            window_end=today(), started_at=utcnow(), outcome=RunOutcome.SUCCEEDED,
        )  # fmt: skip
        session.add(run)
        await session.flush()
        session.add(ComplaintChange(tenant_id=tid, complaint_pk=complaint.id, sync_run_id=run.id,
                                    kind="updated", changed=["ISSUE_LEVEL", "phi"]))  # fmt: skip
        await session.commit()
        response = await client.get(f"{BASE}/{complaint.id}/history", headers=staff.viewer.headers)
        assert response.status_code == 200
        history = response.json()
        assert [h["kind"] for h in history] == ["created", "updated"]
        assert history[1]["changed"] == ["ISSUE_LEVEL", "phi"]
        assert history[1]["sync_run_id"] == str(run.id)
        assert "Canary" not in response.text

    async def test_unknown_complaint_is_404(self, client: httpx.AsyncClient, staff: Staff) -> None:
        response = await client.get(
            f"{BASE}/00000000-0000-7000-8000-000000000000", headers=staff.caseworker.headers
        )
        assert response.status_code == 404
