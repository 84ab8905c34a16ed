"""The CTM simulator itself: deterministic data, the admin API, CMS-like upload checks,
seed files, and running as its own process (`hub ctm-sim`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from hub.ctm import modeled
from hub.ctm.layouts import Layout
from hub.ctm.parser import parse_bytes
from hub.ctm.simulator import (
    ContractPlan,
    RunningSimulator,
    SimState,
    SimulatorError,
    load_seed_file,
)
from hub.ctm.simulator.data import FIRST_NAMES, LAST_NAMES, encode_file
from hub.ctm.upload import ResolutionRow, write_upload_file
from tests.integration.ctm.conftest import TODAY

HUB = Path(sys.executable).with_name("hub")


def file_of(state: SimState, contract: str = "H1234") -> bytes:
    start = TODAY - timedelta(days=20)
    return b"".join(encode_file(state.complaints(contract, start, TODAY), state.file_version))


def busy_state(seed: int) -> SimState:
    state = SimState(seed=seed, start_day=TODAY)
    state.contracts["H1234"] = ContractPlan(daily_min=2, daily_max=4)
    return state


class TestGeneratedComplaints:
    def test_same_seed_same_file_other_seed_other_file(self) -> None:
        assert file_of(busy_state(5)) == file_of(busy_state(5))
        assert file_of(busy_state(5)) != file_of(busy_state(6))

    def test_complaints_look_real_and_names_are_clearly_fake(self) -> None:
        records, summary = parse_bytes(file_of(busy_state(5)))
        assert summary.quarantined == []
        assert summary.warnings == []
        assert {r.issue_level for r in records} <= {"Immediate Need", "Urgent", "Standard"}
        assert len({r.text("COMPLAINT_CATEGORY") for r in records}) > 2
        for record in records:
            assert record.text("CONTACT_FIRST_NAME") in FIRST_NAMES
            assert record.text("CONTACT_LAST_NAME") in LAST_NAMES
            assert re.fullmatch(r"\([2-9]\d\d\) 555-01\d\d", record.text("CONTACT_PHONE_NUMBER"))
            assert record.text("BENE_IDENTIFIER").startswith("SIM")

    def test_legacy_file_version(self) -> None:
        state = busy_state(5)
        state.file_version = Layout.LEGACY
        data = file_of(state)
        assert b"CMS_ISSUE_CHANGE_REQUESTS" in data.splitlines()[0]
        assert parse_bytes(data)[1].layout is Layout.LEGACY

    def test_the_clock_can_tick_by_itself(self) -> None:
        now = [0.0]
        state = SimState(start_day=TODAY, tick_seconds=60, clock=lambda: now[0])
        state._started = 0.0
        now[0] = 125
        assert state.today() == TODAY + timedelta(days=2)


async def admin(
    sim: RunningSimulator, method: str, path: str, body: object = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        return await http.request(method, path, json=body)


async def token_status(sim: RunningSimulator, key_id: str, secret: str, user: str = "RP01") -> int:
    body = {"userName": user, "keyId": key_id, "keySecret": secret, "scopes": "ctm"}
    return (await admin(sim, "POST", modeled.TOKEN_PATH, body)).status_code


class TestAdminApi:
    async def test_register_rotate_deactivate(self, sim: RunningSimulator) -> None:
        created = await admin(
            sim, "POST", "/_sim/keys", {"hpms_user": "RP01", "contracts": ["H1234"]}
        )
        assert created.status_code == 201
        key = created.json()
        assert await token_status(sim, key["key_id"], key["secret"]) == 200
        rotated = (await admin(sim, "POST", f"/_sim/keys/{key['key_id']}/rotate")).json()
        assert rotated["contracts"] == ["H1234"]
        assert rotated["replaces"] == key["key_id"]
        assert await token_status(sim, key["key_id"], key["secret"]) == 403
        assert await token_status(sim, rotated["key_id"], rotated["secret"]) == 200
        await admin(sim, "POST", f"/_sim/keys/{rotated['key_id']}/deactivate")
        assert await token_status(sim, rotated["key_id"], rotated["secret"]) == 403
        listed = (await admin(sim, "GET", "/_sim/keys")).json()
        assert [k["status"] for k in listed] == ["rotated", "deactivated"]
        assert "secret" not in json.dumps(listed)

    async def test_wrong_user_scope_or_secret_is_403(self, sim: RunningSimulator) -> None:
        sim.state.add_key(hpms_user="RP01", contracts={"H1234"}, key_id="k", secret="s")
        assert await token_status(sim, "k", "sécret ✓") == 403  # non-ASCII: still a 403
        assert await token_status(sim, "k", "s", user="SOMEONE") == 403
        sim.state.scope = "other"
        assert await token_status(sim, "k", "s") == 403

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                {"hpms_user": "RP01", "contracts": ["H12"]},
                "key.contracts: 'H12' is not a contract number",
            ),
            ({"hpms_user": "RP01"}, "key.contracts: must be a non-empty list"),
            ({"contracts": ["H1234"]}, "hpms_user: must be a non-empty string"),
            (
                {"hpms_user": "RP01", "contracts": ["H1234"], "environment": "prod"},
                "environment: must be",
            ),
        ],
    )
    async def test_bad_key_registration_names_the_field(
        self, sim: RunningSimulator, body: dict[str, object], message: str
    ) -> None:
        response = await admin(sim, "POST", "/_sim/keys", body)
        assert response.status_code == 400
        assert message in response.json()["error"]

    async def test_faults_settings_clock_and_logs(self, sim: RunningSimulator) -> None:
        faults = {"retry_after": 9, "script": [{"route": "token", "fault": "429"}]}
        assert (await admin(sim, "PUT", "/_sim/faults", faults)).status_code == 200
        sim.state.add_key(hpms_user="RP01", contracts={"H1234"}, key_id="k", secret="s")
        async with httpx.AsyncClient(base_url=sim.url) as http:
            body = {"userName": "RP01", "keyId": "k", "keySecret": "s", "scopes": "ctm"}
            limited = await http.post(modeled.TOKEN_PATH, json=body)
        assert (limited.status_code, limited.headers["Retry-After"]) == (429, "9")
        bad = await admin(sim, "PUT", "/_sim/faults", {"rate_500": 2})
        assert bad.json() == {"error": "rate_500: must be between 0 and 1"}
        for path, body in (
            ("/_sim/faults", {"bogus": 1}),
            ("/_sim/settings", {"scop": "other"}),
        ):
            unknown = await admin(sim, "PUT", path, body)
            assert unknown.status_code == 400, path
            assert "unknown field" in unknown.json()["error"]
        settings = await admin(
            sim, "PUT", "/_sim/settings", {"file_version": "legacy", "token_lifetime": 60}
        )
        assert settings.json() == {"file_version": "legacy", "token_lifetime": 60}
        assert (await admin(sim, "POST", "/_sim/advance", {"days": 2})).json() == {
            "today": "2025-03-05"
        }
        assert (await admin(sim, "GET", "/_sim/requests")).json()[0]["status"] == 429


class TestUploads:
    async def upload(self, sim: RunningSimulator, data: bytes) -> httpx.Response:
        key = sim.state.add_key(hpms_user="RP01", contracts={"H1234"})
        token = sim.state.issue_token(key)
        headers = {"Authorization": f"Bearer {token}", modeled.CONSUMER_ID_HEADER: key.key_id}
        async with httpx.AsyncClient(base_url=sim.url) as http:
            files = {"file": ("c.csv", data, "text/csv")}
            return await http.post(modeled.UPLOAD_PATH, files=files, headers=headers)

    async def test_rows_are_checked_like_cms_and_kept(self, sim: RunningSimulator) -> None:
        known = next(sim.state.complaints("H1234", TODAY - timedelta(days=10), TODAY))
        rows = [
            ResolutionRow(known.complaint_id, "H1234", TODAY, "resolved"),
            ResolutionRow("424242", "H1234", TODAY, "unknown complaint"),
            ResolutionRow(known.complaint_id, "S5678", TODAY, "wrong contract"),
            ResolutionRow(known.complaint_id, "H1234", None, "missing date"),
            ResolutionRow(known.complaint_id, "H1234", TODAY, "x" * 4001),
        ]
        response = await self.upload(sim, write_upload_file(rows, check=False))
        assert response.status_code == 200
        body = response.json()
        assert body["accepted"] == [known.complaint_id]
        assert [r["errors"] for r in body["rejected"]] == [
            ["complaint 424242 is not a complaint of H1234"],
            ["contract S5678 is not covered by this key"],
            ["RESOLUTION_DATE is missing"],
            ["RESOLUTION_SUMMARY is 4001 characters; at most 4000"],
        ]
        (kept,) = sim.state.uploads
        assert [row["RESOLUTION_SUMMARY"] for row in kept.rows][:2] == [
            "resolved",
            "unknown complaint",
        ]

    async def test_a_file_without_the_layout_is_400(self, sim: RunningSimulator) -> None:
        response = await self.upload(sim, b"COMPLAINT_ID\r\n1\r\n")
        assert response.status_code == 400
        assert "missing required column CONTRACT_ID" in response.json()["error"]

    async def test_no_token_is_401_with_cms_body(self, sim: RunningSimulator) -> None:
        response = await admin(sim, "GET", modeled.DOWNLOAD_PATH + "?contractId=H1234")
        assert (response.status_code, response.json()) == (401, modeled.INVALID_TOKEN_BODY)


class TestSeedFile:
    def test_seed_file_builds_keys_contracts_and_faults(self, tmp_path: Path) -> None:
        path = tmp_path / "seed.json"
        path.write_text(json.dumps({
            "seed": 3, "start_day": "2025-03-03", "file_version": "legacy", "token_lifetime": 600,
            "keys": [{"key_id": "k1", "secret": "s1", "hpms_user": "RP01", "contracts": ["H1234"]}],
            "contracts": {"H1234": {"daily_min": 1, "daily_max": 2}},
            "faults": {"latency_ms": 5, "rate_429": 0.1},
        }))  # fmt: skip
        state = load_seed_file(path)
        assert (state.seed, state.today(), state.file_version) == (
            3,
            date(2025, 3, 3),
            Layout.LEGACY,
        )
        assert state.keys["k1"].contracts == {"H1234"}
        assert state.contracts["H1234"] == ContractPlan(1, 2)
        assert (state.faults.latency_ms, state.faults.rate_429) == (5, 0.1)

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("{not json", "not JSON"),
            ('{"start_day": "03/03/2025"}', "start_day: must be a date"),
            ('{"keys": [{"hpms_user": "u", "contracts": ["Q1"]}]}', "keys[0].contracts: 'Q1'"),
            ('{"contracts": {"H1234": {"daily_max": 5000}}}', "contracts.H1234.daily_max"),
            # A misspelt field would be ignored, and the simulator run without it.
            ('{"sed": 7}', "seed file: unknown field 'sed'"),
            ('{"faults": {"rate500": 0.5}}', "faults: unknown field 'rate500'"),
            (
                '{"keys": [{"hpms_user": "u", "contracts": ["H1234"], "secrte": "x"}]}',
                "keys[0]: unknown field 'secrte'",
            ),
            ('{"contracts": {"H1234": {"daily": 5}}}', "contracts.H1234: unknown field 'daily'"),
        ],
    )
    def test_bad_seed_file_names_the_field(
        self, tmp_path: Path, content: str, message: str
    ) -> None:
        path = tmp_path / "seed.json"
        path.write_text(content)
        with pytest.raises(SimulatorError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_seed_file(path)


@pytest.mark.slow
class TestStandalone:
    def test_hub_ctm_sim_serves_until_terminated(self, tmp_path: Path) -> None:
        seed = tmp_path / "seed.json"
        seed.write_text(
            json.dumps(
                {
                    "keys": [
                        {
                            "key_id": "k1",
                            "secret": "s1",
                            "hpms_user": "RP01",
                            "contracts": ["H1234"],
                        }
                    ]
                }
            )
        )
        process = subprocess.Popen(
            [str(HUB), "ctm-sim", "--port", "0", "--seed-file", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("CTM simulator (sandbox) on http://127.0.0.1:"), first
            url = first.split(" on ")[1].strip()
            assert "key k1 (RP01): H1234" in process.stdout.readline()
            body = {"userName": "RP01", "keyId": "k1", "keySecret": "s1", "scopes": "ctm"}
            deadline = time.monotonic() + 10
            while True:
                try:
                    response = httpx.post(url + modeled.TOKEN_PATH, json=body)
                    break
                except httpx.ConnectError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            assert response.status_code == 200
            assert response.json()["expires"] == 1800
        finally:
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down gracefully, then re-raises the signal it caught.
            assert process.wait(timeout=10) in (0, -signal.SIGTERM)
        assert process.stderr is not None
        assert "Finished server process" in process.stderr.read()

    def test_bad_seed_file_exits_1_naming_the_problem(self, tmp_path: Path) -> None:
        seed = tmp_path / "seed.json"
        seed.write_text('{"environment": "staging"}')
        result = subprocess.run(
            [str(HUB), "ctm-sim", "--port", "0", "--seed-file", str(seed)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert "environment: must be 'sandbox' or 'production'" in result.stderr
