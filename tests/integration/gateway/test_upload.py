"""The gateway's upload: a casework file checked with the hub's upload layout, then sent to
CMS as it came through the key; CMS's answer passed back; the hub's own queue untouched."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints.models import Resolution
from hub.ctm.simulator.state import Faults
from hub.ctm.upload import ResolutionRow, write_upload_file
from hub.keys.models import ApiKey, KeyStatus
from tests.integration.gateway.conftest import TODAY, World, mapping

HEADER = (
    "COMPLAINT_ID,CONTRACT_ID,RESOLUTION_DATE,RESOLUTION_SUMMARY,CMS_PLAN_CASEWORK_NOTES,"
    "COMPLAINANT_SATISFIED,RESOLUTION_NOTIFICATION\r\n"
)


def known_complaint(world: World, contract: str = "H1234") -> str:
    found = world.sim.state.complaints(contract, TODAY - timedelta(days=20), TODAY)
    return next(iter(found)).complaint_id


def casework(*rows: tuple[str, str]) -> bytes:
    return write_upload_file(
        ResolutionRow(
            complaint_id=complaint,
            contract_id=contract,
            resolution_date=date(2025, 3, 2),
            resolution_summary="Called the member, the refill went through.",
            complainant_satisfied=True,
        )
        for complaint, contract in rows
    )


class TestRoundTrip:
    async def test_cms_answer_is_passed_back_and_the_file_reaches_it_unchanged(
        self, world: World, session: AsyncSession
    ) -> None:
        complaint = known_complaint(world)
        body = casework((complaint, "H1234"), ("CTM-NOPE", "H1234"))
        response = await world.upload(world.designee.token, body)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["accepted"] == [complaint]
        assert answer["rejected"][0]["complaintId"] == "CTM-NOPE"
        assert "not a complaint of H1234" in answer["rejected"][0]["errors"][0]
        [upload] = world.sim.state.uploads
        assert upload.key_id == world.sim_key.key_id
        assert [row["COMPLAINT_ID"] for row in upload.rows] == [complaint, "CTM-NOPE"]
        # Outside the hub's own resolution tracking: nothing queued, nothing recorded.
        assert await session.scalar(select(func.count()).select_from(Resolution)) == 0

    async def test_a_key_bound_token_uploads_with_its_key(self, world: World) -> None:
        bound = await world.bound_token(world.designee)
        response = await world.upload(bound, casework((known_complaint(world), "H1234")))
        assert response.status_code == 200
        assert len(response.json()["accepted"]) == 1

    async def test_the_header_chooses_the_key(self, world: World) -> None:
        newer = await world.create_key(world.rp, {"H1234"})
        body = casework((known_complaint(world), "H1234"))
        assert (await world.upload(world.rp.token, body, consumer=newer.key_id)).status_code == 200
        assert [u.key_id for u in world.sim.state.uploads] == [newer.key_id]


class TestChecks:
    async def test_a_bad_row_is_400_naming_row_and_column_and_nothing_is_sent(
        self, world: World
    ) -> None:
        good = f"{known_complaint(world)},H1234,03/02/2025,Fixed,,Y,\r\n"
        bad = "CTM-2,H1234,2025-03-02,Fixed,,Y,\r\n"
        response = await world.upload(world.rp.token, (HEADER + good + bad).encode())
        assert response.status_code == 400
        [problem] = response.json()["extra"]
        assert problem["key"] == "file"
        assert problem["message"] == "row 2: RESOLUTION_DATE is not MM/DD/YYYY"
        assert world.sim.state.uploads == []

    async def test_a_file_missing_a_column_or_empty_or_absent_is_400(self, world: World) -> None:
        missing = b"COMPLAINT_ID,CONTRACT_ID\r\nCTM-1,H1234\r\n"
        for body, says in (
            (missing, "missing required column"),
            (b"", "empty file"),
            (HEADER.encode(), "no resolution rows"),
            (None, "multipart/form-data"),
        ):
            response = await world.upload(world.rp.token, body)
            assert response.status_code == 400, body
            assert response.json()["extra"][0]["key"] == "file"
            assert says in response.json()["detail"]
        assert world.sim.state.uploads == []

    async def test_a_row_of_a_contract_the_key_does_not_cover_is_400_naming_the_row(
        self, world: World
    ) -> None:
        body = casework((known_complaint(world), "H1234"), ("CTM-9", "R0001"))
        named = await world.upload(world.rp.token, body, consumer=world.sim_key.key_id)
        assert named.status_code == 400
        assert named.json()["extra"][0]["message"].startswith("row 2: contract R0001")
        # Without the header, no key of the tenant serves R0001 at all.
        assert (await world.upload(world.rp.token, body)).status_code == 403
        assert world.sim.state.uploads == []

    async def test_contracts_served_by_different_keys_need_the_header(self, world: World) -> None:
        await world.create_key(world.rp, {"R0001"})
        body = casework((known_complaint(world), "H1234"), ("CTM-9", "R0001"))
        response = await world.upload(world.rp.token, body)
        assert response.status_code == 400
        assert "different keys" in response.json()["detail"]

    async def test_a_member_not_designated_is_403(self, world: World) -> None:
        response = await world.upload(world.outsider.token, casework(("CTM-1", "H1234")))
        assert response.status_code == 403
        assert world.sim.state.uploads == []


class TestCmsFaults:
    async def test_a_contract_refused_by_cms_is_403_and_marked_lost(
        self, world: World, session: AsyncSession
    ) -> None:
        world.sim.state.faults = Faults(script=[("upload", "403")])
        response = await world.upload(world.rp.token, casework(("CTM-1", "S5678")))
        assert response.status_code == 403
        assert (await mapping(session, world, "S5678")).access_lost_at is not None
        assert (await mapping(session, world, "H1234")).access_lost_at is None

    async def test_a_refused_key_is_502_and_needs_replacement(
        self, world: World, session: AsyncSession
    ) -> None:
        world.sim.state.deactivate(world.sim_key.key_id)
        response = await world.upload(world.rp.token, casework(("CTM-1", "H1234")))
        assert response.status_code == 502
        key = await session.get(ApiKey, UUID(world.key["id"]), populate_existing=True)
        assert key is not None
        assert key.status is KeyStatus.NEEDS_REPLACEMENT

    async def test_a_file_cms_refuses_whole_is_502_saying_so(self, world: World) -> None:
        world.sim.state.faults = Faults(script=[("upload", "422")])
        response = await world.upload(world.rp.token, casework(("CTM-1", "H1234")))
        assert response.status_code == 502
        assert "refused the whole file (422)" in response.json()["detail"]

    async def test_an_answer_lost_on_the_way_is_502_warning_not_to_resend(
        self, world: World
    ) -> None:
        world.sim.state.faults = Faults(script=[("upload", "502")])
        response = await world.upload(world.rp.token, casework(("CTM-1", "H1234")))
        assert response.status_code == 502
        assert "do not send it again" in response.json()["detail"]

    async def test_rate_limit_and_unavailability(self, world: World) -> None:
        world.sim.state.faults = Faults(retry_after=60, script=[("upload", "429")])
        limited = await world.upload(world.rp.token, casework(("CTM-1", "H1234")))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "60"
        world.sim.state.faults = Faults(script=[("upload", "503"), ("upload", "503")])
        assert (await world.upload(world.rp.token, casework(("CTM-1", "H1234")))).status_code == 503
