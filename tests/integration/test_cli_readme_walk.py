"""The README's CLI walk-through, as an operator runs it: each case here once failed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.cli import DEMO_HTTP_HOSTS, demo_overrides
from hub.settings import LogFormat, load_settings
from tests.integration.test_cli import hub, last_line


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean HUB_* environment on a data dir of the test's own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    clean["HUB_DATA_DIR"] = str(tmp_path / "var")
    clean["HUB_LOG_LEVEL"] = "WARNING"
    return clean


@pytest.fixture
def migrated(env: dict[str, str]) -> dict[str, str]:
    result = hub(env, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, as `hub` runs: only the models the command imports are loaded."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def onboard(env: dict[str, str]) -> None:
    assert hub(env, "tenants", "create", "--name", "Acme", "--slug", "acme").exit_code == 0
    made = hub(
        env, "users", "create", "--email", "a@acme.example", "--tenant", "acme",
        "--role", "admin",
    )  # fmt: skip
    assert made.exit_code == 0, made.output


class TestTokensInAFreshProcess:
    def test_token_is_minted(self, migrated: dict[str, str]) -> None:
        onboard(migrated)
        result = run(
            migrated, "tokens", "create", "--tenant", "acme", "--user", "a@acme.example",
            "--scopes", "keys:read", "--expires-in", "30d",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("hub_")


class TestDb:
    def test_downgrade_one_step_then_upgrade(self, migrated: dict[str, str]) -> None:
        down = hub(migrated, "db", "downgrade", "-1")
        assert down.exit_code == 0, down.output
        assert hub(migrated, "db", "upgrade").exit_code == 0

    def test_unknown_revision_is_one_line(self, migrated: dict[str, str]) -> None:
        result = run(migrated, "db", "downgrade", "nonesuch")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert lines == ["error: migrations: Can't locate revision identified by 'nonesuch'"]


class TestExistingUsers:
    def test_operator_again_says_nothing_changed(self, migrated: dict[str, str]) -> None:
        hub(migrated, "users", "create", "--email", "ops@vendor.example", "--operator")
        again = hub(migrated, "users", "create", "--email", "ops@vendor.example", "--operator")
        assert again.exit_code == 0, again.output
        assert again.output.strip() == (
            "user ops@vendor.example already exists (a platform operator); nothing changed"
        )
        assert "None" not in again.output

    def test_member_is_not_made_an_operator(self, migrated: dict[str, str]) -> None:
        onboard(migrated)
        result = hub(migrated, "users", "create", "--email", "a@acme.example", "--operator")
        assert result.exit_code == 1
        assert last_line(result) == (
            "error: user a@acme.example already exists and is not a platform operator; "
            "--operator makes only a new user an operator"
        )

    def test_added_to_another_tenant(self, migrated: dict[str, str]) -> None:
        onboard(migrated)
        hub(migrated, "tenants", "create", "--name", "Globex", "--slug", "globex")
        result = hub(
            migrated, "users", "create", "--email", "A@acme.example", "--tenant", "globex",
            "--role", "viewer", "--password-stdin", input="another long password\n",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.output.strip() == (
            "user a@acme.example already exists; added to globex as viewer"
            " (its password is unchanged)"
        )


class TestDemoSettings:
    def test_demo_lets_webhooks_reach_this_machine(self) -> None:
        settings = load_settings(**demo_overrides({}, ctm_sandbox_url="http://127.0.0.1:9"))
        assert settings.webhook_allow_private_networks
        assert settings.webhook_http_hosts == frozenset(DEMO_HTTP_HOSTS.split(","))
        assert settings.log_format is LogFormat.CONSOLE
        assert settings.ctm_sandbox_url == "http://127.0.0.1:9"

    def test_the_environment_still_decides(self) -> None:
        environ = {
            "HUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "false",
            "HUB_WEBHOOK_ALLOW_HTTP_HOSTS": "",
            "HUB_LOG_FORMAT": "json",
        }
        overrides = demo_overrides(environ, ctm_sandbox_url="http://127.0.0.1:9")
        assert overrides == {"ctm_sandbox_url": "http://127.0.0.1:9"}


class TestOffboard:
    def test_says_which_keys_and_what_else(self, migrated: dict[str, str]) -> None:
        onboard(migrated)
        hub(migrated, "users", "create", "--email", "ops@vendor.example", "--operator")
        result = hub(
            migrated, "tenants", "offboard", "--slug", "acme",
            "--operator", "ops@vendor.example", "--yes",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.output.strip() == (
            "tenant acme offboarded: 2 keys destroyed (its data and index keys); its API "
            "tokens revoked, HPMS keys deactivated and webhook endpoints disabled; its sealed "
            "values are gone"
        )


class TestUnreachableRedis:
    @pytest.mark.parametrize("command", ["serve", "worker"])
    def test_ends_in_one_line_naming_the_variable(
        self, migrated: dict[str, str], command: str
    ) -> None:
        migrated["HUB_REDIS_URL"] = "redis://127.0.0.1:1/0"
        result = run(migrated, command)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: HUB_REDIS_URL: cannot reach Redis at redis://127.0.0.1:1/0")


class TestKeysAdd:
    def test_unverifiable_key_names_the_flag_and_the_url(self, migrated: dict[str, str]) -> None:
        onboard(migrated)
        assert hub(migrated, "contracts", "add", "--tenant", "acme", "H1234").exit_code == 0
        migrated["HUB_CTM_SANDBOX_URL"] = "http://127.0.0.1:9"
        result = hub(
            migrated, "keys", "add", "--tenant", "acme", "--rp", "a@acme.example",
            "--environment", "sandbox", "--key-id", "KEY-1", "--contracts", "H1234",
            "--hpms-user", "RP01", "--poc-name", "Pat", "--poc-email", "pat@acme.example",
            input="a-secret\n",
        )  # fmt: skip
        assert result.exit_code == 1
        line = last_line(result)
        assert "retry, or pass --no-verify (CMS sandbox URL: http://127.0.0.1:9)" in line
        assert "verify=false" not in line
