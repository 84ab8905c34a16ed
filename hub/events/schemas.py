"""The event envelope as the API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.events.models import Event


class EventView(msgspec.Struct):
    id: UUID
    type: str
    occurred_at: datetime
    dispatched_at: datetime | None
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventView:
        return cls(
            id=event.id,
            type=event.type,
            occurred_at=event.occurred_at,
            dispatched_at=event.dispatched_at,
            data=event.payload,
        )
