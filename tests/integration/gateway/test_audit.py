"""Every gateway call is audited, and a download's PHI read is recorded before its body
leaves; no entry holds a secret, a token or a PHI value."""

from __future__ import annotations

import csv
import io
import json
from contextlib import AsyncExitStack
from typing import Any

import pytest
from litestar.exceptions import LitestarException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry, AuditOutcome
from hub.ctm.simulator.state import Faults
from hub.gateway import passthrough
from hub.syncs.slots import PER_KEY_CONCURRENCY, key_slot
from tests.integration.gateway.conftest import World
from tests.integration.gateway.test_upload import casework, known_complaint

PHI_COLUMNS = ("BENE_IDENTIFIER", "CONTACT_FIRST_NAME", "CONTACT_LAST_NAME", "COMPLAINT_SUMMARY")


async def entries(session: AsyncSession, *actions: str) -> list[AuditEntry]:
    found = await session.scalars(
        select(AuditEntry).where(AuditEntry.action.in_(actions)).order_by(AuditEntry.seq)
    )
    return list(found)


def phi_values(body: bytes) -> set[str]:
    rows = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    return {row[column] for row in rows for column in PHI_COLUMNS if len(row[column]) > 3}


class TestDownloadAudit:
    async def test_the_phi_read_comes_first_then_the_call_with_its_bytes(
        self, world: World, session: AsyncSession
    ) -> None:
        bound = await world.bound_token(world.designee)
        response = await world.download(bound)
        assert response.status_code == 200
        read, call = await entries(session, "phi.read", "ctm.gateway.download")
        assert read.seq < call.seq
        assert read.details["view"] == "gateway_download"
        assert read.details["contract"] == "H1234"
        assert read.target_id == world.key["id"]
        assert call.actor_id == world.designee.user.id
        assert call.outcome is AuditOutcome.SUCCESS
        assert call.target_id == world.key["id"]
        details = call.details
        assert details["key_id"] == world.sim_key.key_id
        assert details["contract"] == "H1234"
        assert details["window"] == ["2025-02-01", "2025-03-03"]
        assert details["cms_status"] == 200
        assert details["bytes"] == len(response.content)
        assert details["complete"] is True
        written = json.dumps([read.details, call.details])
        assert world.sim_key.secret not in written
        assert bound not in written
        values = phi_values(response.content)
        assert values
        assert not [value for value in values if value in written]

    async def test_a_refused_call_is_audited_as_denied(
        self, world: World, session: AsyncSession
    ) -> None:
        assert (await world.download(world.outsider.token)).status_code == 403
        [call] = await entries(session, "ctm.gateway.download")
        assert call.outcome is AuditOutcome.DENIED
        assert call.details["status"] == 403
        assert call.actor_id == world.outsider.user.id
        assert await entries(session, "phi.read") == []

    async def test_a_cms_refusal_is_audited_with_cms_status(
        self, world: World, session: AsyncSession
    ) -> None:
        world.sim.state.faults = Faults(retry_after=90, script=[("download", "429")])
        assert (await world.download(world.rp.token)).status_code == 429
        [call] = await entries(session, "ctm.gateway.download")
        assert call.outcome is AuditOutcome.FAILED
        assert (call.details["status"], call.details["cms_status"]) == (429, 429)

    async def test_a_cut_download_is_audited_as_incomplete(
        self, world: World, session: AsyncSession
    ) -> None:
        world.sim.state.faults = Faults(script=[("download", "cut")])
        with pytest.raises(LitestarException):
            await world.download(world.rp.token)
        read, call = await entries(session, "phi.read", "ctm.gateway.download")
        assert read.seq < call.seq  # the read was recorded: part of the file did leave
        assert call.details["complete"] is False
        assert call.details["cms_error"] == "TruncatedDownload"
        assert call.outcome is AuditOutcome.FAILED

    async def test_a_read_that_cannot_be_recorded_is_not_answered(
        self, world: World, session: AsyncSession, redis: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def refuse(*_: Any, **__: Any) -> None:
            raise RuntimeError("the audit log is unreachable")

        monkeypatch.setattr(passthrough, "record_phi_read", refuse)
        response = await world.download(world.rp.token)
        assert response.status_code == 500
        assert "COMPLAINT_ID" not in response.text
        async with AsyncExitStack() as held:  # CMS's answer closed, the key's slot given back
            for _ in range(PER_KEY_CONCURRENCY):
                assert await held.enter_async_context(key_slot(redis, world.key["id"]))


class TestUploadAudit:
    async def test_rows_and_counts_are_audited_never_the_text(
        self, world: World, session: AsyncSession
    ) -> None:
        body = casework((known_complaint(world), "H1234"), ("CTM-NOPE", "H1234"))
        assert (await world.upload(world.designee.token, body)).status_code == 200
        [call] = await entries(session, "ctm.gateway.upload")
        assert call.outcome is AuditOutcome.SUCCESS
        details = call.details
        assert details["contracts"] == ["H1234"]
        assert (details["accepted"], details["rejected"], details["cms_status"]) == (1, 1, 200)
        assert details["bytes"] == len(body)
        assert "refill" not in json.dumps(details)
        assert world.sim_key.secret not in json.dumps(details)

    async def test_a_bad_file_is_audited_naming_the_field_not_the_row(
        self, world: World, session: AsyncSession
    ) -> None:
        body = b"COMPLAINT_ID,CONTRACT_ID\r\nCTM-1,H1234\r\n"
        assert (await world.upload(world.rp.token, body)).status_code == 400
        [call] = await entries(session, "ctm.gateway.upload")
        assert call.details["field"] == "file"
        assert "CTM-1" not in json.dumps(call.details)
