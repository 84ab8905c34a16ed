"""The `hub` CLI on embedded defaults: clear one-line errors, exit codes, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hub.cli import main


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean HUB_* environment on a data dir of the test's own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    clean["HUB_DATA_DIR"] = str(tmp_path / "var")
    clean["HUB_LOG_LEVEL"] = "WARNING"
    return clean


def hub(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    names = [k for k in os.environ if k.startswith("HUB_")]
    overrides: dict[str, str | None] = {k: None for k in names}
    overrides.update(env)
    return CliRunner().invoke(main, list(args), env=overrides, input=input, catch_exceptions=False)


def last_line(result: Result) -> str:
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def migrated(env: dict[str, str]) -> dict[str, str]:
    result = hub(env, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return env


class TestTenantsAndUsers:
    def test_create_tenant_then_list_it(self, migrated: dict[str, str]) -> None:
        created = hub(migrated, "tenants", "create", "--name", "Acme Health", "--slug", "acme")
        assert created.exit_code == 0, created.output
        assert "tenant acme created" in created.output
        assert "acme\tactive\tAcme Health" in hub(migrated, "tenants", "list").output

    def test_existing_slug_is_a_clear_error_and_writes_nothing(
        self, migrated: dict[str, str]
    ) -> None:
        hub(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme")
        again = hub(migrated, "tenants", "create", "--name", "Other name", "--slug", "acme")
        assert again.exit_code == 1
        assert again.stdout == ""
        assert last_line(again) == "error: a tenant with slug 'acme' already exists"
        listed = hub(migrated, "tenants", "list").output.strip().splitlines()
        assert listed == ["acme\tactive\tAcme"]

    def test_bad_slug_names_the_rule(self, migrated: dict[str, str]) -> None:
        result = hub(migrated, "tenants", "create", "--name", "X", "--slug", "Not A Slug")
        assert result.exit_code == 1
        assert last_line(result).startswith("error: slug: use 1-63 lower-case letters")

    def test_user_with_generated_password_shown_once(self, migrated: dict[str, str]) -> None:
        hub(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme")
        result = hub(
            migrated, "users", "create", "--email", "Ann@Acme.example", "--tenant", "acme",
            "--role", "caseworker",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "user ann@acme.example created" in result.output
        assert "password (shown once): " in result.output

    def test_user_password_from_stdin_is_not_echoed(self, migrated: dict[str, str]) -> None:
        hub(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme")
        result = hub(
            migrated, "users", "create", "--email", "b@acme.example", "--tenant", "acme",
            "--role", "viewer", "--password-stdin", input="a very long password indeed\n",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "a very long password indeed" not in result.output

    def test_short_password_is_refused(self, migrated: dict[str, str]) -> None:
        hub(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme")
        result = hub(
            migrated, "users", "create", "--email", "c@acme.example", "--tenant", "acme",
            "--role", "viewer", "--password-stdin", input="short\n",
        )  # fmt: skip
        assert result.exit_code == 1
        assert "password: must be at least 12 characters" in result.output

    def test_unknown_tenant_is_named(self, migrated: dict[str, str]) -> None:
        result = hub(
            migrated, "users", "create", "--email", "d@x.example", "--tenant", "nope",
            "--role", "viewer",
        )  # fmt: skip
        assert result.exit_code == 1
        assert "tenant nope not found" in result.output
        # Nothing half-written: the user was not created without its membership.
        hub(migrated, "tenants", "create", "--name", "Nope", "--slug", "nope")
        retry = hub(
            migrated, "users", "create", "--email", "d@x.example", "--tenant", "nope",
            "--role", "viewer",
        )  # fmt: skip
        assert "user d@x.example created" in retry.output


class TestTokens:
    def test_token_is_printed_and_works_for_its_scopes(self, migrated: dict[str, str]) -> None:
        hub(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme")
        hub(
            migrated,
            "users",
            "create",
            "--email",
            "e@acme.example",
            "--tenant",
            "acme",
            "--role",
            "admin",
        )
        result = hub(
            migrated, "tokens", "create", "--tenant", "acme", "--user", "e@acme.example",
            "--scopes", "complaints:read,keys:read", "--expires-in", "30d",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert result.output.strip().startswith("hub_")

    @pytest.mark.parametrize(
        ("scopes", "expires", "says"),
        [
            ("complaints:eat", "30d", "unknown scope 'complaints:eat'"),
            ("keys:read", "soon", "expires_in: use a number and a unit"),
        ],
    )
    def test_bad_token_options_are_named(
        self, migrated: dict[str, str], scopes: str, expires: str, says: str
    ) -> None:
        hub(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme")
        hub(
            migrated,
            "users",
            "create",
            "--email",
            "f@acme.example",
            "--tenant",
            "acme",
            "--role",
            "admin",
        )
        result = hub(
            migrated, "tokens", "create", "--tenant", "acme", "--user", "f@acme.example",
            "--scopes", scopes, "--expires-in", expires,
        )  # fmt: skip
        assert result.exit_code == 1
        assert says in result.output


class TestStartupErrors:
    """Run as real processes: the user sees one line and an exit code, no traceback."""

    def run(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub.cli", *args],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def test_malformed_database_url(self, env: dict[str, str]) -> None:
        env["HUB_DATABASE_URL"] = "postgres//nope"
        result = self.run(env, "serve")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "error: HUB_DATABASE_URL: is not a database URL (expected postgresql://… or sqlite:///…)"
        ]

    def test_unreachable_database(self, env: dict[str, str]) -> None:
        env["HUB_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
        result = self.run(env, "serve")
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: HUB_DATABASE_URL: cannot connect to the database")

    def test_production_without_master_key(self, env: dict[str, str]) -> None:
        env.update(
            HUB_ENV="production",
            HUB_DATABASE_URL="postgresql://u@127.0.0.1/db",
            HUB_REDIS_URL="redis://127.0.0.1:6379/0",
        )
        result = self.run(env, "serve")
        assert result.returncode == 1
        assert result.stderr.strip() == (
            "error: HUB_MASTER_KEYS: required when HUB_ENV=production (or HUB_MASTER_KEY_FILE)"
        )

    def test_schema_behind_the_code(self, env: dict[str, str]) -> None:
        result = self.run(env, "serve")
        assert result.returncode == 1
        assert "run `hub db upgrade`" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


class TestKeys:
    def onboard(self, env: dict[str, str]) -> None:
        hub(env, "tenants", "create", "--name", "Acme", "--slug", "acme")
        hub(
            env,
            "users",
            "create",
            "--email",
            "rp@acme.example",
            "--tenant",
            "acme",
            "--role",
            "caseworker",
        )
        assert hub(env, "contracts", "add", "--tenant", "acme", "H1234", "s5678").exit_code == 0

    def add(self, env: dict[str, str], *extra: str, secret: str = "cli-canary-secret\n") -> Result:
        return hub(
            env, "keys", "add", "--tenant", "acme", "--rp", "rp@acme.example",
            "--environment", "sandbox", "--key-id", "KEY-CLI-1", "--contracts", "H1234,S5678",
            "--hpms-user", "RPUSER", "--poc-name", "Pat", "--poc-email", "pat@acme.example",
            *extra, input=secret,
        )  # fmt: skip

    def test_secret_from_stdin_registers_a_key_listed_without_it(
        self, migrated: dict[str, str]
    ) -> None:
        self.onboard(migrated)
        added = self.add(migrated, "--no-verify")
        assert added.exit_code == 0, added.output
        assert "registered (sandbox, key ID KEY-CLI-1)" in added.output
        listed = hub(migrated, "keys", "list", "--tenant", "acme")
        assert "KEY-CLI-1\tH1234,S5678\trp@acme.example" in listed.output
        assert "\tactive\t" in listed.output
        assert "cli-canary-secret" not in added.output + listed.output

    def test_there_is_no_secret_flag(self, migrated: dict[str, str]) -> None:
        self.onboard(migrated)
        result = self.add(migrated, "--no-verify", "--secret", "in-shell-history")
        assert result.exit_code == 2
        assert "No such option '--secret'" in result.output

    def test_empty_secret_is_refused(self, migrated: dict[str, str]) -> None:
        self.onboard(migrated)
        result = self.add(migrated, "--no-verify", secret="   \n")
        assert result.exit_code == 1
        assert "secret: must not be empty or only whitespace" in result.output

    def test_verification_against_an_unreachable_cms_fails_cleanly(
        self, migrated: dict[str, str]
    ) -> None:
        self.onboard(migrated)
        migrated["HUB_CTM_SANDBOX_URL"] = "http://127.0.0.1:9"
        result = self.add(migrated)
        assert result.exit_code == 1
        assert "did not answer" in last_line(result)
        assert hub(migrated, "keys", "list", "--tenant", "acme").output.strip() == ""


class TestTenantsHealth:
    def test_a_table_and_json(self, migrated: dict[str, str]) -> None:
        assert hub(migrated, "tenants", "create", "--name", "Acme", "--slug", "acme").exit_code == 0
        table = hub(migrated, "tenants", "health")
        assert table.exit_code == 0, table.output
        header, row = table.output.strip().splitlines()
        assert header.startswith("tenant\tstatus\t")
        assert row.startswith("acme\tactive\t0/0\t0/0\t-\t0\t")
        assert row.endswith("\tok")
        as_json = hub(migrated, "tenants", "health", "--json")
        assert json.loads(as_json.output)[0]["slug"] == "acme"

    def test_an_unknown_slug_is_one_clear_line(self, migrated: dict[str, str]) -> None:
        result = CliRunner().invoke(main, ["tenants", "health", "--slug", "nosuch"], env=migrated)
        assert result.exit_code != 0
        assert "nosuch" in result.output
