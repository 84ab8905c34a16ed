"""Tenant keys, stored only wrapped by a master key: data keys (versioned) and the index key."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.db import Base, Entity, TenantOwned, enum_column


class KeyPurpose(enum.StrEnum):
    DATA = "data"  # seals values; rotated by `hub tenants rotate-key`
    INDEX = "index"  # keys blind indexes; not rotated with the data key


class KeyState(enum.StrEnum):
    ACTIVE = "active"  # new seals use it
    RETIRED = "retired"  # still opens what it sealed; kept until nothing names it
    DESTROYED = "destroyed"  # crypto-shredded: the wrapped bytes are gone


class TenantKey(Entity, TenantOwned, Base):
    __tablename__ = "tenant_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "purpose", "version"),)

    purpose: Mapped[KeyPurpose] = mapped_column(enum_column(KeyPurpose))
    version: Mapped[int]
    state: Mapped[KeyState] = mapped_column(enum_column(KeyState), default=KeyState.ACTIVE)
    # AES-256-GCM under the master key `master_key_version` (nonce ‖ ciphertext ‖ tag), with
    # the tenant id, purpose and version as associated data. Null once destroyed.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    master_key_version: Mapped[str | None] = mapped_column(String(64), index=True)
    destroyed_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return (
            f"TenantKey(tenant_id={self.tenant_id}, purpose={self.purpose}, "
            f"version={self.version}, state={self.state}, master={self.master_key_version})"
        )
