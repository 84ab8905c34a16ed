"""Audit entries, chained per tenant (and one platform chain), and each chain's head."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.db import Base, enum_column, utcnow
from hub.core.ids import TenantID, uuid7

# Entries that belong to no tenant (operator actions such as a master-key rotation) form
# their own chain under this id.
PLATFORM_CHAIN = UUID(int=0)
GENESIS_HASH = "0" * 64


class ActorKind(enum.StrEnum):
    USER = "user"  # a member acting through the portal or an API token
    OPERATOR = "operator"  # a platform operator
    SYSTEM = "system"  # the hub itself: a worker, a cron, a migration
    CLI = "cli"  # someone at a shell running `hub …` (labelled with the OS user)


class AuditOutcome(enum.StrEnum):
    SUCCESS = "success"
    DENIED = "denied"  # refused by a permission check (e.g. a secret reveal attempt)
    FAILED = "failed"  # attempted and failed


class AuditEntry(Base):
    """One audited action. Never updated or deleted: `hash` covers every column below and
    the previous entry's hash in the same chain."""

    __tablename__ = "audit_log"
    __table_args__ = (UniqueConstraint("chain_id", "seq"),)

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid7)
    chain_id: Mapped[UUID] = mapped_column(Uuid())
    seq: Mapped[int]
    # No cascade: deleting a tenant must not erase its audit trail.
    tenant_id: Mapped[TenantID | None] = mapped_column(Uuid(), ForeignKey("tenants.id"), index=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_kind: Mapped[ActorKind] = mapped_column(enum_column(ActorKind))
    actor_id: Mapped[UUID | None]
    actor_label: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    outcome: Mapped[AuditOutcome] = mapped_column(enum_column(AuditOutcome))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last entry of each chain. Writers lock this row, which serialises a chain; the
    verifier compares it with the chain's last entry, so a deleted tail is detected too."""

    __tablename__ = "audit_chain_heads"

    chain_id: Mapped[UUID] = mapped_column(Uuid(), primary_key=True)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
