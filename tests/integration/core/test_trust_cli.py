"""`hub master-key`, `hub tenants rotate-key|discard-retired-keys|offboard` and `hub audit
verify` on embedded defaults: what they print, their exit codes, and that a refusal changes
nothing."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hub.cli import main
from hub.core.crypto import MasterKeyRing

NEW_KEY = base64.b64encode(bytes(range(1, 33))).decode()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    clean["HUB_DATA_DIR"] = str(tmp_path / "var")
    clean["HUB_LOG_LEVEL"] = "WARNING"
    return clean


def hub(env: dict[str, str], *args: str, input: str | None = None) -> Result:
    overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("HUB_")}
    overrides.update(env)
    return CliRunner().invoke(main, list(args), env=overrides, input=input, catch_exceptions=False)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def hub_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Migrated, with tenants acme and globex, an operator, and a member of acme."""
    ok(hub(env, "db", "upgrade"))
    ok(hub(env, "tenants", "create", "--name", "Acme", "--slug", "acme"))
    ok(hub(env, "tenants", "create", "--name", "Globex", "--slug", "globex"))
    ok(hub(env, "users", "create", "--email", "ops@vendor.example", "--operator"))
    ok(hub(env, "users", "create", "--email", "ann@acme.example", "--tenant", "acme",
           "--role", "admin"))  # fmt: skip
    return env


def local_key_entry(env: dict[str, str]) -> str:
    return (Path(env["HUB_DATA_DIR"]) / "master.key").read_text().strip()


def database(env: dict[str, str]) -> Path:
    return Path(env["HUB_DATA_DIR"]) / "hub.db"


class TestMasterKey:
    def test_generated_local_key_is_private(self, hub_env: dict[str, str]) -> None:
        path = Path(hub_env["HUB_DATA_DIR"]) / "master.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert local_key_entry(hub_env).startswith("local1:")

    def test_rotate_then_drop_the_old_key(self, hub_env: dict[str, str]) -> None:
        old = local_key_entry(hub_env)
        both = {**hub_env, "HUB_MASTER_KEYS": f"v2:{NEW_KEY},{old}"}
        output = ok(hub(both, "master-key", "rotate", "--batch-size", "3"))
        assert "re-wrapped 4 tenant keys under master key v2 in 2 batches" in output
        assert "(were under: local1: 4)" in output
        assert "re-wrapped 0 tenant keys" in ok(hub(both, "master-key", "rotate"))

        only_new = {**hub_env, "HUB_MASTER_KEYS": f"v2:{NEW_KEY}"}
        # Rotating a data key unwraps the tenant's keys: it works with the old key gone.
        rotated = ok(hub(only_new, "tenants", "rotate-key", "--slug", "acme",
                         "--settle-seconds", "0.2"))  # fmt: skip
        assert "waiting 0 s for other processes to let go of the old key" in rotated
        assert "data key v2 is active" in rotated
        assert "the late pass re-sealed 0 more" in rotated
        assert "chains verified" in ok(hub(only_new, "audit", "verify"))

    def test_ring_without_the_old_key_refuses_and_changes_nothing(
        self, hub_env: dict[str, str]
    ) -> None:
        only_new = {**hub_env, "HUB_MASTER_KEYS": f"v2:{NEW_KEY}"}
        result = hub(only_new, "master-key", "rotate")
        assert result.exit_code == 1
        assert "master key 'local1' is not in the key ring" in result.output
        with sqlite3.connect(database(hub_env)) as connection:
            versions = connection.execute("SELECT DISTINCT master_key_version FROM tenant_keys")
            assert versions.fetchall() == [("local1",)]

    def test_rotate_key_waits_by_default_for_the_cache_and_the_longest_job(
        self, env: dict[str, str]
    ) -> None:
        from hub.tenants.keys import SETTLE_SECONDS

        shown = ok(hub(env, "tenants", "rotate-key", "--help"))
        assert f"longest job: {SETTLE_SECONDS:.0f}" in " ".join(shown.split())

    def test_generate_prints_a_ring_entry(self, env: dict[str, str]) -> None:
        entry = ok(hub(env, "master-key", "generate", "--version", "v7")).strip()
        assert MasterKeyRing.parse(entry).versions == ["v7"]

    def test_wrong_key_under_the_right_name_is_a_clear_error(self, hub_env: dict[str, str]) -> None:
        impostor = {**hub_env, "HUB_MASTER_KEYS": f"local1:{NEW_KEY}"}
        result = hub(impostor, "tenants", "rotate-key", "--slug", "acme", "--settle-seconds", "0")
        assert result.exit_code == 1
        assert "master key 'local1' does not unwrap" in result.output


class TestStartup:
    """`hub serve` and `hub worker` check the ring against the stored keys before serving."""

    def check(self, env: dict[str, str], ring: str) -> None:
        from hub.runtime import check_database
        from hub.settings import load_settings

        asyncio.run(check_database(load_settings(data_dir=env["HUB_DATA_DIR"], master_keys=ring)))

    def test_the_right_ring_starts(self, hub_env: dict[str, str]) -> None:
        self.check(hub_env, local_key_entry(hub_env))

    def test_a_wrong_key_under_the_right_name_stops_it_naming_the_version(
        self, hub_env: dict[str, str]
    ) -> None:
        from hub.runtime import StartupError

        with pytest.raises(StartupError) as refused:
            self.check(hub_env, f"local1:{NEW_KEY}")
        assert "HUB_MASTER_KEYS: master key 'local1' does not unwrap" in str(refused.value)
        assert NEW_KEY[:8] not in str(refused.value)

    def test_a_ring_without_the_stored_keys_version_stops_it(self, hub_env: dict[str, str]) -> None:
        from hub.runtime import StartupError

        with pytest.raises(StartupError, match="master key 'local1' is not in the key ring"):
            self.check(hub_env, f"v2:{NEW_KEY}")

    def test_a_lost_key_file_is_not_papered_over(self, hub_env: dict[str, str]) -> None:
        """The embedded mode makes a new `master.key` when there is none: with tenants'
        keys in the database, starting must then stop, not run on the new one."""
        from hub.runtime import StartupError, check_database
        from hub.settings import load_settings

        (Path(hub_env["HUB_DATA_DIR"]) / "master.key").unlink()
        settings = load_settings(data_dir=hub_env["HUB_DATA_DIR"])
        with pytest.raises(StartupError, match="master key 'local1' does not unwrap"):
            asyncio.run(check_database(settings))


class TestDiscardRetiredKeys:
    def test_refused_while_young_then_erases_the_retired_key(self, hub_env: dict[str, str]) -> None:
        ok(hub(hub_env, "tenants", "rotate-key", "--slug", "acme", "--settle-seconds", "0"))
        young = hub(hub_env, "tenants", "discard-retired-keys", "--slug", "acme")
        assert young.exit_code == 1
        assert "data key v2 of tenant acme " in young.output, "named by the slug typed"
        assert "became active too recently" in young.output
        output = ok(hub(hub_env, "tenants", "discard-retired-keys", "--slug", "acme",
                        "--settle-seconds", "0"))  # fmt: skip
        assert "tenant acme: erased retired data keys v1; v2 is the only data key left" in output
        with sqlite3.connect(database(hub_env)) as connection:
            rows = connection.execute(
                "SELECT t.slug, k.version, k.state FROM tenant_keys k "
                "JOIN tenants t ON t.id = k.tenant_id WHERE k.purpose = 'data' ORDER BY t.slug"
            ).fetchall()
        assert rows == [("acme", 2, "active"), ("globex", 1, "active")]
        again = ok(hub(hub_env, "tenants", "discard-retired-keys", "--slug", "acme",
                       "--settle-seconds", "0"))  # fmt: skip
        assert "tenant acme: no retired data key; v2 is active" in again
        assert "chains verified" in ok(hub(hub_env, "audit", "verify"))

    def test_unknown_tenant_is_named(self, hub_env: dict[str, str]) -> None:
        result = hub(hub_env, "tenants", "discard-retired-keys", "--slug", "nobody")
        assert result.exit_code == 1
        assert "nobody" in result.output


class TestOffboard:
    def test_typed_slug_must_match(self, hub_env: dict[str, str]) -> None:
        result = hub(hub_env, "tenants", "offboard", "--slug", "acme",
                     "--operator", "ops@vendor.example", input="acme-typo\n")  # fmt: skip
        assert result.exit_code == 1
        assert "does not match; nothing was changed" in result.output
        assert "acme\tactive" in ok(hub(hub_env, "tenants", "list"))

    def test_confirmed_offboarding_destroys_the_keys(self, hub_env: dict[str, str]) -> None:
        output = ok(hub(hub_env, "tenants", "offboard", "--slug", "acme",
                        "--operator", "ops@vendor.example", input="acme\n"))  # fmt: skip
        assert "tenant acme offboarded: 2 keys destroyed" in output
        listed = ok(hub(hub_env, "tenants", "list"))
        assert "acme\toffboarded" in listed
        assert "globex\tactive" in listed
        with sqlite3.connect(database(hub_env)) as connection:
            rows = connection.execute(
                "SELECT t.slug, k.state, k.wrapped_key IS NULL FROM tenant_keys k "
                "JOIN tenants t ON t.id = k.tenant_id ORDER BY t.slug"
            ).fetchall()
        assert rows == [("acme", "destroyed", 1)] * 2 + [("globex", "active", 0)] * 2
        again = hub(hub_env, "tenants", "rotate-key", "--slug", "acme", "--settle-seconds", "0")
        assert again.exit_code == 1
        assert "destroyed" in again.output

    def test_only_an_operator_may_offboard(self, hub_env: dict[str, str]) -> None:
        result = hub(hub_env, "tenants", "offboard", "--slug", "acme",
                     "--operator", "ann@acme.example", "--yes")  # fmt: skip
        assert result.exit_code == 1
        assert "ann@acme.example is not a platform operator" in result.output


class TestAuditVerify:
    def test_intact_log_exits_zero(self, hub_env: dict[str, str]) -> None:
        output = ok(hub(hub_env, "audit", "verify"))
        assert "ok      acme: 2 entries" in output  # tenant created, member added
        assert "ok      globex: 1 entries" in output

    def test_one_tenant(self, hub_env: dict[str, str]) -> None:
        output = ok(hub(hub_env, "audit", "verify", "--tenant", "globex"))
        assert output.splitlines() == ["ok      globex: 1 entries", "1 chains verified"]

    def test_tampering_is_located_and_exits_one(self, hub_env: dict[str, str]) -> None:
        with sqlite3.connect(database(hub_env)) as connection:
            connection.execute(
                "UPDATE audit_log SET actor_label = 'nobody' WHERE seq = 2 AND tenant_id = "
                "(SELECT id FROM tenants WHERE slug = 'acme')"
            )
        result = hub(hub_env, "audit", "verify")
        assert result.exit_code == 1
        assert "BROKEN  acme: at entry 2 (" in result.output
        assert "content does not match its hash (edited)" in result.output
        assert "ok      globex" in result.output

    def test_runs_beside_a_writer_without_waiting_for_it(self, hub_env: dict[str, str]) -> None:
        """A long log takes a while to walk: the walk must not hold (or wait for) the
        embedded database's write lock, or every sync and request writing meanwhile fails
        with "database is locked" after the 15 s busy timeout."""
        writer = sqlite3.connect(database(hub_env), isolation_level=None)
        try:
            writer.execute("BEGIN IMMEDIATE")  # a sync writing a large file, say
            output = ok(hub(hub_env, "audit", "verify"))
        finally:
            writer.rollback()
            writer.close()
        assert "3 chains verified" in output

    def test_unknown_tenant_is_named(self, hub_env: dict[str, str]) -> None:
        result = hub(hub_env, "audit", "verify", "--tenant", "nope")
        assert result.exit_code == 1
        assert "tenant nope not found" in result.output
