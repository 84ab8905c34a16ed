"""POST/GET /api/v1/complaints/{id}/resolutions: validation naming the field, sealed
storage, idempotency keys, refusals (409), resubmission after a rejection, the upload
job queued after commit, and a resolution in doubt settled by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.core.db import utcnow
from hub.core.ids import uuid7
from hub.events.models import Event
from hub.keys import service as keys
from hub.keys.models import ApiKey
from hub.keys.schemas import KeyCreate, TechnicalPoc
from tests.integration.complaints.conftest import Staff
from tests.integration.complaints.support import make_complaint
from tests.support import Member, RecordingQueue, make_member

BASE = "/api/v1/complaints"
SUMMARY = "Canary-7731: called Mrs. Example; refill approved at the pharmacy."


def body(**overrides: Any) -> dict[str, Any]:
    return {
        "resolution_date": (utcnow().date() - timedelta(days=1)).isoformat(),
        "summary": SUMMARY,
        "casework_notes": "Canary-7731 notes",
        "complainant_satisfied": "Y",
        "resolution_notification": "Letter",
        **overrides,
    }


async def sandbox_key(session: AsyncSession, staff: Staff) -> ApiKey:
    """A sandbox key serving H1234 (created by an admin of the caseworker's tenant)."""
    admin = await make_member(session, staff.caseworker.tenant, email="rp@plan-a.example")
    await keys.add_contract(session, admin.principal, number="H1234")
    return await keys.create_key(
        session, admin.principal,
        data=KeyCreate(
            environment="sandbox", key_id="RES-KEY-1", secret="s3cret-value",
            hpms_user_id="PLANA01", technical_poc=TechnicalPoc("Pat", "pat@plan-a.example"),
            contracts=["H1234"], verify=False,
        ),
        verifier=None,
    )  # fmt: skip


@pytest.fixture
async def complaint(session: AsyncSession, staff: Staff) -> Complaint:
    key = await sandbox_key(session, staff)
    made = await make_complaint(
        session, staff.caseworker.tenant_id, api_key_id=key.id,
        received=utcnow().date() - timedelta(days=3),
    )  # fmt: skip
    await session.commit()
    return made


async def post(
    client: httpx.AsyncClient, member: Member, complaint: Complaint, json: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        f"{BASE}/{complaint.id}/resolutions", json=json, headers=member.headers | headers
    )


class TestValidation:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"resolution_date": None}, "resolution_date"),
            ({"resolution_date": "2026-13-01"}, "resolution_date"),
            ({"resolution_date": "FUTURE"}, "resolution_date"),
            ({"resolution_date": "BEFORE"}, "resolution_date"),
            ({"summary": "   "}, "summary"),
            ({"summary": "é" * 4001}, "summary"),
            ({"complainant_satisfied": "maybe"}, "complainant_satisfied"),
            ({"resolution_notification": "x" * 201}, "resolution_notification"),
            ({"casework_notes": "x" * 10_001}, "casework_notes"),
            ({"colour": "red"}, "colour"),
            ({"resolution_notification": "Let\x00ter"}, "resolution_notification"),  # no U+0000
            ({"summary": "Called\x00"}, "summary"),
        ],
    )
    async def test_bad_field_is_400_naming_it(
        self,
        client: httpx.AsyncClient,
        staff: Staff,
        complaint: Complaint,
        overrides: dict[str, Any],
        field: str,
    ) -> None:
        if overrides.get("resolution_date") == "FUTURE":
            overrides = {"resolution_date": (utcnow().date() + timedelta(days=1)).isoformat()}
        if overrides.get("resolution_date") == "BEFORE":
            overrides = {
                "resolution_date": (complaint.received_date - timedelta(days=1)).isoformat()
            }
        response = await post(client, staff.caseworker, complaint, body(**overrides))
        assert response.status_code == 400, response.text
        assert field in response.text
        assert SUMMARY not in response.text

    async def test_summary_limit_counts_characters_not_bytes(
        self, client: httpx.AsyncClient, staff: Staff, complaint: Complaint
    ) -> None:
        summary = "é" * 4000  # 8,000 bytes in UTF-8, 4,000 characters: allowed
        response = await post(client, staff.caseworker, complaint, body(summary=summary))
        assert response.status_code == 201, response.text
        assert response.json()["summary"] == summary

    async def test_viewer_may_not_write_and_other_tenant_gets_404(
        self, client: httpx.AsyncClient, staff: Staff, complaint: Complaint
    ) -> None:
        assert (await post(client, staff.viewer, complaint, body())).status_code == 403
        assert (await post(client, staff.other, complaint, body())).status_code == 404
        listed = await client.get(f"{BASE}/{complaint.id}/resolutions", headers=staff.other.headers)
        assert listed.status_code == 404


class TestWrite:
    async def test_stored_sealed_queued_and_upload_enqueued_after_commit(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        complaint: Complaint,
        queue: RecordingQueue,
    ) -> None:
        response = await post(client, staff.caseworker, complaint, body())
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["state"] == "queued"
        assert created["summary"] == SUMMARY
        stored = await session.scalar(
            select(Resolution).where(Resolution.id == UUID(created["id"]))
        )
        assert stored is not None
        assert b"Canary-7731" not in stored.summary.token, "summary is sealed"
        assert stored.casework_notes is not None
        assert b"Canary-7731" not in stored.casework_notes.token
        await session.refresh(complaint)
        assert complaint.resolution_state is ResolutionState.QUEUED
        assert [j.job_id for j in queue.sent if j.function == "resolutions.upload"] == [
            f"resolutions:{stored.api_key_id}:H1234"
        ]
        detail = await client.get(f"{BASE}/{complaint.id}", headers=staff.viewer.headers)
        assert detail.json()["complaint"]["status"] == "resolved"

    async def test_same_key_same_body_returns_the_same_resolution(
        self, client: httpx.AsyncClient, staff: Staff, complaint: Complaint
    ) -> None:
        first = await post(
            client, staff.caseworker, complaint, body(), **{"Idempotency-Key": "k-1"}
        )
        again = await post(
            client, staff.caseworker, complaint, body(), **{"Idempotency-Key": "k-1"}
        )
        in_body = await post(client, staff.caseworker, complaint, body(idempotency_key="k-1"))
        assert (first.status_code, again.status_code, in_body.status_code) == (201, 200, 200)
        assert first.json()["id"] == again.json()["id"] == in_body.json()["id"]
        listed = await client.get(
            f"{BASE}/{complaint.id}/resolutions", headers=staff.caseworker.headers
        )
        assert len(listed.json()) == 1

    async def test_same_key_other_body_is_409(
        self, client: httpx.AsyncClient, staff: Staff, complaint: Complaint
    ) -> None:
        first = await post(
            client, staff.caseworker, complaint, body(), **{"Idempotency-Key": "k-2"}
        )
        assert first.status_code == 201
        changed = await post(
            client, staff.caseworker, complaint, body(summary="Another text"),
            **{"Idempotency-Key": "k-2"},
        )  # fmt: skip
        assert changed.status_code == 409
        assert "idempotency_key" in changed.text

    async def test_header_and_body_keys_must_agree(
        self, client: httpx.AsyncClient, staff: Staff, complaint: Complaint
    ) -> None:
        response = await post(
            client, staff.caseworker, complaint, body(idempotency_key="a"),
            **{"Idempotency-Key": "b"},
        )  # fmt: skip
        assert response.status_code == 400
        assert "idempotency_key" in response.text

    async def test_second_resolution_while_one_is_queued_is_409(
        self, client: httpx.AsyncClient, staff: Staff, complaint: Complaint
    ) -> None:
        assert (await post(client, staff.caseworker, complaint, body())).status_code == 201
        second = await post(client, staff.caseworker, complaint, body(summary="Other"))
        assert second.status_code == 409

    async def test_accepted_complaint_is_409_and_rejected_one_takes_a_new_resolution(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        complaint: Complaint,
    ) -> None:
        first = await post(client, staff.caseworker, complaint, body(), **{"Idempotency-Key": "r1"})
        assert first.status_code == 201
        # CMS refuses it (what the upload job records).
        resolution = await session.get(Resolution, UUID(first.json()["id"]))
        assert resolution is not None
        resolution.state, resolution.cms_errors = ResolutionState.REJECTED, ["bad date"]
        complaint.resolution_state = ResolutionState.REJECTED
        await session.commit()
        fixed = await post(client, staff.caseworker, complaint, body(summary="Fixed text"))
        assert fixed.status_code == 201, fixed.text
        listed = (
            await client.get(f"{BASE}/{complaint.id}/resolutions", headers=staff.viewer.headers)
        ).json()
        assert [r["state"] for r in listed] == ["rejected", "queued"], "the old one is history"
        assert listed[0]["cms_errors"] == ["bad date"]
        # CMS accepts the fix: nothing more may be written.
        complaint.resolution_state = ResolutionState.ACCEPTED
        await session.commit()
        refused = await post(client, staff.caseworker, complaint, body(summary="Third"))
        assert refused.status_code == 409
        assert "already accepted" in refused.text
        replay = await post(
            client, staff.caseworker, complaint, body(), **{"Idempotency-Key": "r1"}
        )
        assert replay.status_code == 200, "a replay still answers with the first resolution"

    async def test_complaint_closed_in_cms_file_is_409(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff
    ) -> None:
        closed = await make_complaint(
            session, staff.caseworker.tenant_id, cms_resolution_date=utcnow().date()
        )
        await session.commit()
        response = await post(client, staff.caseworker, closed, body())
        assert response.status_code == 409

    async def test_without_a_serving_key_it_waits_in_the_queue(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        queue: RecordingQueue,
    ) -> None:
        keyless = await make_complaint(session, staff.caseworker.tenant_id, contract="S5678")
        await session.commit()
        response = await post(client, staff.caseworker, keyless, body())
        assert response.status_code == 201
        assert response.json()["state"] == "queued"
        assert "no active sandbox key serves contract S5678" in response.json()["note"]
        assert "resolutions.upload" not in queue.functions()


class TestSettleByHand:
    """A resolution whose upload is in doubt can be settled by a person who checked HPMS:
    `accepted` (CMS has it), `resend` (it does not: upload it again) or `release` (it does
    not, and it is not to be sent: write a new one). Audited; never for one not in doubt."""

    async def in_doubt(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        staff: Staff,
        complaint: Complaint,
        since: timedelta = timedelta(hours=30),
    ) -> Resolution:
        written = await post(client, staff.caseworker, complaint, body())
        assert written.status_code == 201, written.text
        resolution = await session.get(Resolution, UUID(written.json()["id"]))
        assert resolution is not None
        resolution.state, resolution.upload_batch = ResolutionState.UPLOADING, uuid7()
        resolution.uploaded_at = resolution.in_doubt_since = utcnow() - since
        resolution.note = "in doubt: the upload did not finish"
        complaint.resolution_state = ResolutionState.UPLOADING
        await session.commit()
        return resolution

    async def settle(
        self, client: httpx.AsyncClient, member: Member, resolution: Resolution, outcome: str
    ) -> httpx.Response:
        return await client.post(
            f"{BASE}/{resolution.complaint_pk}/resolutions/{resolution.id}/settle",
            json={"outcome": outcome}, headers=member.headers,
        )  # fmt: skip

    async def audited(self, session: AsyncSession, staff: Staff) -> list[AuditEntry]:
        return list(
            (
                await session.scalars(
                    select(AuditEntry)
                    .where(
                        AuditEntry.tenant_id == staff.caseworker.tenant_id,
                        AuditEntry.action == "resolution.settled",
                    )
                    .execution_options(populate_existing=True)
                )
            ).all()
        )

    async def test_accepted_when_hpms_shows_it(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff,
        complaint: Complaint,
    ) -> None:  # fmt: skip
        resolution = await self.in_doubt(client, session, staff, complaint)
        response = await self.settle(client, staff.caseworker, resolution, "accepted")
        assert response.status_code == 200, response.text
        settled = response.json()
        assert (settled["state"], settled["in_doubt_since"]) == ("accepted", None)
        assert SUMMARY not in response.text, "no PHI in the answer"
        assert "case@plan-a.example" in settled["note"]
        await session.refresh(complaint)
        assert complaint.resolution_state is ResolutionState.ACCEPTED
        [event] = (
            await session.scalars(select(Event).where(Event.type == "resolution.accepted"))
        ).all()
        assert event.payload["confirmed_by"] == "person"
        assert event.payload["resolution_id"] == str(resolution.id)
        [entry] = await self.audited(session, staff)
        assert (entry.target_id, entry.actor_label) == (str(resolution.id), "case@plan-a.example")
        assert entry.details["outcome"] == "accepted"
        assert entry.details["in_doubt_since"] is not None
        again = await self.settle(client, staff.caseworker, resolution, "resend")
        assert again.status_code == 409, "no longer in doubt"
        assert again.json()["extra"][0]["key"] == "resolution"

    async def test_resend_queues_it_again(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff,
        complaint: Complaint, queue: RecordingQueue,
    ) -> None:  # fmt: skip
        resolution = await self.in_doubt(client, session, staff, complaint)
        queue.sent.clear()  # the job of its writing (as if it had run)
        response = await self.settle(client, staff.caseworker, resolution, "resend")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "queued"
        await session.refresh(resolution)
        assert (resolution.upload_batch, resolution.in_doubt_since) == (None, None)
        await session.refresh(complaint)
        assert complaint.resolution_state is ResolutionState.QUEUED
        assert queue.functions() == ["resolutions.upload"], "uploaded by the next job"
        assert [e.details["outcome"] for e in await self.audited(session, staff)] == ["resend"]

    async def test_release_lets_the_caseworker_write_a_new_one(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff,
        complaint: Complaint,
    ) -> None:  # fmt: skip
        resolution = await self.in_doubt(client, session, staff, complaint)
        refused = await post(client, staff.caseworker, complaint, body(summary="Another"))
        assert refused.status_code == 409, "while in doubt, nothing new"
        response = await self.settle(client, staff.caseworker, resolution, "release")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "rejected"
        [event] = (
            await session.scalars(select(Event).where(Event.type == "resolution.rejected"))
        ).all()
        assert event.payload["confirmed_by"] == "person"
        assert SUMMARY not in repr(event.payload)
        written = await post(client, staff.caseworker, complaint, body(summary="Another"))
        assert written.status_code == 201, written.text

    async def test_not_while_cms_may_still_be_storing_it(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff,
        complaint: Complaint,
    ) -> None:  # fmt: skip
        resolution = await self.in_doubt(
            client, session, staff, complaint, since=timedelta(seconds=10)
        )
        response = await self.settle(client, staff.caseworker, resolution, "resend")
        assert response.status_code == 409, response.text
        assert "after" in response.json()["detail"]
        assert await self.audited(session, staff) == []

    async def test_bad_outcome_viewer_and_other_tenant(
        self, client: httpx.AsyncClient, session: AsyncSession, staff: Staff,
        complaint: Complaint,
    ) -> None:  # fmt: skip
        resolution = await self.in_doubt(client, session, staff, complaint)
        bad = await self.settle(client, staff.caseworker, resolution, "maybe")
        assert bad.status_code == 400
        assert bad.json()["extra"][0]["key"] == "outcome"
        viewer = await self.settle(client, staff.viewer, resolution, "accepted")
        assert viewer.status_code == 403
        other = await self.settle(client, staff.other, resolution, "accepted")
        assert other.status_code == 404
        assert await self.audited(session, staff) == []
