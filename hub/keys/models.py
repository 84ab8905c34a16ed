"""HPMS API keys: the key, its (key ID, sealed secret) versions, contracts and designees."""

from __future__ import annotations

import enum
from datetime import date, datetime
from uuid import UUID

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.crypto import Sealed, SealedColumn
from hub.core.db import Base, Entity, TenantOwned, enum_column


class Environment(enum.StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"  # usable for syncs, uploads and hub tokens
    SUSPENDED = "suspended"  # paused by its RP or a tenant admin; not used until resumed
    NEEDS_REPLACEMENT = "needs_replacement"  # CMS refused it, or its RP left: a new key is due
    COMPROMISED = "compromised"  # reported; unusable; waits for the RP to deactivate in HPMS
    DEACTIVATED = "deactivated"  # retired by its RP; secrets destroyed, history kept


class VersionState(enum.StrEnum):
    CURRENT = "current"  # the version in use
    RETIRING = "retiring"  # replaced by a rotation; its secret is destroyed after a grace period
    RETIRED = "retired"  # secret destroyed


class ApiKey(Entity, TenantOwned, Base):
    __tablename__ = "api_keys"

    environment: Mapped[Environment] = mapped_column(enum_column(Environment))
    label: Mapped[str] = mapped_column(String(200))
    # Immutable: CMS forbids transferring a key to another person.
    responsible_party_id: Mapped[UUID] = mapped_column(
        ForeignKey("users.id", ondelete="RESTRICT"), index=True
    )
    hpms_user_id: Mapped[str] = mapped_column(String(100))
    technical_poc_name: Mapped[str] = mapped_column(String(200))
    technical_poc_email: Mapped[str] = mapped_column(String(320))
    status: Mapped[KeyStatus] = mapped_column(enum_column(KeyStatus), default=KeyStatus.ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(String(500))
    expected_rotation_on: Mapped[date | None]
    last_used_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_failure_reason: Mapped[str | None] = mapped_column(String(500))
    compromised_at: Mapped[datetime | None]
    deactivated_at: Mapped[datetime | None]
    # The key this one replaces (after a compromise, a lost access or an RP leaving).
    replaces_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )

    @property
    def is_usable(self) -> bool:
        return self.status is KeyStatus.ACTIVE


class ApiKeyVersion(Entity, TenantOwned, Base):
    """One (key ID, secret) pair of a key. The secret is sealed; destroyed means NULL."""

    __tablename__ = "api_key_versions"
    __table_args__ = (
        # A CMS key ID belongs to one key in one environment, across every tenant.
        UniqueConstraint("environment", "key_id"),
        Index("ix_api_key_versions_retiring", "state", "retire_after"),
    )

    api_key_id: Mapped[UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[Environment] = mapped_column(enum_column(Environment))
    key_id: Mapped[str] = mapped_column(String(200))
    secret: Mapped[Sealed | None] = mapped_column(SealedColumn())
    state: Mapped[VersionState] = mapped_column(
        enum_column(VersionState), default=VersionState.CURRENT
    )
    verified_at: Mapped[datetime | None]
    retire_after: Mapped[datetime | None]
    secret_destroyed_at: Mapped[datetime | None]


class Contract(Entity, TenantOwned, Base):
    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    number: Mapped[str] = mapped_column(String(5))


class ApiKeyContract(Entity, TenantOwned, Base):
    """A key covers a contract; `access_lost_at` is set when CMS answers 403 for it."""

    __tablename__ = "api_key_contracts"
    __table_args__ = (UniqueConstraint("api_key_id", "contract_id"),)

    api_key_id: Mapped[UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    contract_id: Mapped[UUID] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), index=True
    )
    access_lost_at: Mapped[datetime | None]
    access_lost_reason: Mapped[str | None] = mapped_column(String(500))


class ApiKeyDesignee(Entity, TenantOwned, Base):
    """A member, or a downstream API token, that may act with the key through the hub."""

    __tablename__ = "api_key_designees"
    __table_args__ = (
        UniqueConstraint("api_key_id", "user_id"),
        UniqueConstraint("api_key_id", "api_token_id"),
    )

    api_key_id: Mapped[UUID] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    api_token_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE")
    )
