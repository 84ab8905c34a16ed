"""`hub demo` as a user runs it: one process, ready on /readyz, two demos in two folders
never meet, the CLI works on a running demo's data, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    return env


def redis_processes(data_dir: Path) -> list[str]:
    found = subprocess.run(
        ["pgrep", "-f", str(data_dir / "redis.sock")], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


@contextmanager
def running_demo(data_dir: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "demo", "--port", str(port)],
        env=demo_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        else:
            pytest.fail("hub demo did not become ready")
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def interrupt(process: subprocess.Popen[str]) -> str:
    """Ctrl-C: SIGINT to the whole foreground process group."""
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    return output


class TestDemo:
    def test_starts_serves_and_stops_cleanly_on_ctrl_c(self, tmp_path: Path) -> None:
        first, second = tmp_path / "one", tmp_path / "two"
        with running_demo(first) as (process, url), running_demo(second) as (other, other_url):
            ready = httpx.get(f"{url}/readyz").json()
            assert ready["checks"] == {"database": "ok", "redis": "ok"}
            token = json.loads((first / "demo-logins.json").read_text())["api_token"]
            me = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200
            assert me.json()["email"] == "admin@demo.example"
            # The demo RP's sandbox key syncs from the simulator: complaints within a minute.
            deadline, complaints = time.monotonic() + 60, []
            while not complaints and time.monotonic() < deadline:
                time.sleep(1)
                listed = httpx.get(
                    f"{url}/api/v1/complaints", headers={"Authorization": f"Bearer {token}"}
                )
                assert listed.status_code == 200, listed.text
                complaints = listed.json()
            assert complaints, "no complaint arrived within a minute of start"
            assert {c["contract"] for c in complaints} <= {"H1234", "S5678"}
            # The printed logins open the portal (the caseworker sees those complaints) and
            # the operator's console.
            passwords = json.loads((first / "demo-logins.json").read_text())["passwords"]
            with httpx.Client(base_url=url) as browser:
                signed = browser.post(
                    "/portal/login",
                    data={"email": "caseworker@demo.example",
                          "password": passwords["caseworker@demo.example"]},
                )  # fmt: skip
                assert signed.status_code == 303, signed.text
                assert "Demo Health Plan" in browser.get("/portal/").text
            with httpx.Client(base_url=url) as browser:
                signed = browser.post(
                    "/portal/login",
                    data={"email": "operator@demo.example",
                          "password": passwords["operator@demo.example"]},
                )  # fmt: skip
                assert signed.headers["location"] == "/console/"
                assert 'href="/console/tenants/demo"' in browser.get("/console/").text
            # The other demo has its own database: this token means nothing there.
            there = httpx.get(
                f"{other_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
            )
            assert there.status_code == 401
            assert (first / "redis.sock").exists()
            assert (second / "redis.sock").exists()

            # The CLI pointed at the same data dir works on the running demo's data.
            listed = subprocess.run(
                [sys.executable, "-m", "hub.cli", "tenants", "list"],
                env=demo_env(first), capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            assert listed.stdout.startswith("demo\tactive\t")

            output = interrupt(process)
            assert process.returncode == 0, output
            assert "admin@demo.example" in output
            assert f"Portal: {url}/portal/" in output
            assert "Traceback" not in output
            assert redis_processes(first) == [], "the embedded Redis outlived the demo"
            assert not (first / "redis.sock").exists()
            # The other demo did not notice.
            assert httpx.get(f"{other_url}/readyz").status_code == 200
            interrupt(other)
            assert other.returncode == 0

    def test_restart_keeps_data_and_logins(self, tmp_path: Path) -> None:
        with running_demo(tmp_path) as (process, _):
            interrupt(process)
        logins = (tmp_path / "demo-logins.json").read_text()
        assert oct((tmp_path / "demo-logins.json").stat().st_mode & 0o777) == "0o600"
        with running_demo(tmp_path) as (process, url):
            assert httpx.get(f"{url}/readyz").status_code == 200
            output = interrupt(process)
        assert (tmp_path / "demo-logins.json").read_text() == logins
        assert "rp@demo.example" in output
