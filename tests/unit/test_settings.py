"""Settings come from HUB_* variables and a bad one is refused with its name."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from hub.settings import Environment, SettingsError, load_settings, parse_master_keys

KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)


class TestDefaults:
    def test_nothing_configured_means_embedded_defaults(self, tmp_path: Path) -> None:
        settings = load_settings(data_dir=tmp_path)
        assert settings.env is Environment.DEVELOPMENT
        assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        assert settings.effective_redis_url == f"unix://{tmp_path / 'redis.sock'}"
        assert settings.uses_embedded_redis

    def test_values_are_read_from_hub_variables(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://u:p@db.internal:5432/hub")
        monkeypatch.setenv("HUB_REDIS_URL", "redis://cache:6379/2")
        monkeypatch.setenv("HUB_LOG_LEVEL", "debug")
        monkeypatch.setenv("HUB_LOG_FORMAT", "console")
        monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
        settings = load_settings()
        assert settings.effective_database_url == "postgresql+asyncpg://u:p@db.internal:5432/hub"
        assert settings.effective_redis_url == "redis://cache:6379/2"
        assert settings.log_level.value == "DEBUG"
        assert settings.log_format.value == "console"
        assert settings.resolved_data_dir == tmp_path.resolve()


class TestRefusals:
    @pytest.mark.parametrize(
        ("variable", "value", "says"),
        [
            ("HUB_DATABASE_URL", "not a url", "HUB_DATABASE_URL"),
            ("HUB_DATABASE_URL", "mysql://u@h/db", "HUB_DATABASE_URL: database 'mysql'"),
            ("HUB_DATABASE_URL", "postgresql+psycopg2://u@h/db", "use postgresql+asyncpg"),
            ("HUB_DATABASE_URL", "postgresql://u@h", "names no database"),
            ("HUB_REDIS_URL", "http://cache", "HUB_REDIS_URL: must start with redis://"),
            ("HUB_LOG_FORMAT", "xml", "HUB_LOG_FORMAT"),
            ("HUB_LOG_LEVEL", "loud", "HUB_LOG_LEVEL"),
            ("HUB_CTM_SANDBOX_URL", "ftp://x", "HUB_CTM_SANDBOX_URL: must be an http"),
            ("HUB_PUBLIC_URL", "example.org", "HUB_PUBLIC_URL"),
            ("HUB_ENV", "staging", "HUB_ENV"),
            ("HUB_SYNC_OVERLAP_DAYS", "0", "greater than or equal to 1"),
            ("HUB_MASTER_KEYS", "v1:" + base64.b64encode(b"short").decode(), "is 5 bytes"),
            ("HUB_MASTER_KEYS", "v1:***notbase64***", "not valid base64"),
            ("HUB_MASTER_KEYS", f"{KEY}", "must look like 'v1:"),
            ("HUB_MASTER_KEYS", f"v1:{KEY},v1:{KEY}", "appears twice"),
        ],
    )
    def test_bad_value_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
    ) -> None:
        monkeypatch.setenv(variable, value)
        with pytest.raises(SettingsError) as caught:
            load_settings()
        message = str(caught.value)
        assert message.startswith(variable), message
        assert says in message
        assert "\n" not in message

    def test_master_key_error_never_echoes_the_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        secret = base64.b64encode(b"x" * 31).decode()
        monkeypatch.setenv("HUB_MASTER_KEYS", f"v1:{secret}")
        with pytest.raises(SettingsError) as caught:
            load_settings()
        assert secret not in str(caught.value)

    @pytest.mark.parametrize(
        ("missing", "given"),
        [
            ("HUB_DATABASE_URL", {}),
            ("HUB_REDIS_URL", {"HUB_DATABASE_URL": "postgresql://u@h/db"}),
            (
                "HUB_MASTER_KEYS",
                {"HUB_DATABASE_URL": "postgresql://u@h/db", "HUB_REDIS_URL": "redis://r"},
            ),
        ],
    )
    def test_production_refuses_embedded_defaults(
        self, monkeypatch: pytest.MonkeyPatch, missing: str, given: dict[str, str]
    ) -> None:
        monkeypatch.setenv("HUB_ENV", "production")
        for name, value in given.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SettingsError, match=rf"^{missing}: required when HUB_ENV=production"):
            load_settings()

    def test_production_with_everything_set_starts(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HUB_ENV", "production")
        monkeypatch.setenv("HUB_DATABASE_URL", "postgresql://u@h/db")
        monkeypatch.setenv("HUB_REDIS_URL", "redis://r")
        monkeypatch.setenv("HUB_MASTER_KEYS", f"v1:{KEY}")
        assert load_settings().is_production

    def test_too_long_data_dir_for_the_redis_socket(self, tmp_path: Path) -> None:
        deep = tmp_path / ("d" * 120)
        with pytest.raises(SettingsError, match=r"^HUB_DATA_DIR: path too long"):
            load_settings(data_dir=deep)


class TestMasterKeyRing:
    def test_ring_keeps_order_newest_first(self) -> None:
        other = base64.b64encode(b"\x01" * 32).decode()
        ring = parse_master_keys(f"v2:{KEY}, v1:{other}")
        assert [version for version, _ in ring] == ["v2", "v1"]
        assert ring[0][1] == bytes(range(32))
