"""`hub demo` starts a CTM simulator in its own process and points the sandbox URL at it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.ctm.layouts import Layout
from hub.ctm.parser import parse_bytes
from hub.ctm.simulator.data import encode_file
from hub.demo import DEMO_CONTRACTS, DemoLogins, banner, simulator_state


class TestDemoSimulatorState:
    def test_demo_contracts_receive_complaints(self) -> None:
        state = simulator_state()
        today = state.today()
        data = b"".join(
            encode_file(
                state.complaints(DEMO_CONTRACTS[0], today.replace(day=1), today), Layout.CURRENT
            )
        )
        records, summary = parse_bytes(data, allowed_contracts=set(DEMO_CONTRACTS))
        assert summary.quarantined == []
        assert records

    def test_banner_shows_the_simulator(self) -> None:
        text = banner("http://127.0.0.1:8000", DemoLogins(passwords={}), "http://127.0.0.1:8001")
        assert "CTM simulator (sandbox, HUB_CTM_SANDBOX_URL): http://127.0.0.1:8001" in text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_hub_demo_serves_the_simulator_beside_the_api(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(tmp_path / "var")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "demo", "--port", str(port),
         "--ctm-sim-port", str(sim_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    sim_url = f"http://127.0.0.1:{sim_port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None
            try:
                health = httpx.get(f"{sim_url}/_sim/health", timeout=1)
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                if health.status_code == ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "hub demo did not start"
            time.sleep(0.25)
        assert health.json()["environment"] == "sandbox"
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        assert f"CTM simulator (sandbox, HUB_CTM_SANDBOX_URL): {sim_url}" in output
        # The exit code belongs to tests/integration/test_demo.py: a worker job caught in
        # flight by Ctrl-C can still end the demo with 1 (arq's close re-raises the cancel).
        assert "Finished server process" in output
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
