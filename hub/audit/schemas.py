"""Response bodies of the audit API."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.audit.models import AuditEntry


class AuditEntryView(msgspec.Struct):
    id: UUID
    seq: int
    occurred_at: datetime
    actor_kind: str
    actor_id: UUID | None
    actor_label: str
    action: str
    target_type: str | None
    target_id: str | None
    request_id: str | None
    ip: str | None
    outcome: str
    details: dict[str, Any]
    hash: str  # lets an integrator anchor the chain elsewhere

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        return cls(
            id=entry.id,
            seq=entry.seq,
            occurred_at=entry.occurred_at,
            actor_kind=entry.actor_kind.value,
            actor_id=entry.actor_id,
            actor_label=entry.actor_label,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            request_id=entry.request_id,
            ip=entry.ip,
            outcome=entry.outcome.value,
            details=entry.details,
            hash=entry.hash,
        )
