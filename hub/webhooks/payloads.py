"""What a receiver gets: the event envelope, without PHI unless the endpoint may have it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from hub.core.db import zulu
from hub.events.models import Event
from hub.events.service import SCHEMA_VERSION

# Fields that carry PHI. Events put PHI under `data.phi`; the named fields are removed
# wherever they appear as a second guard.
PHI_KEY = "phi"
PHI_FIELDS = frozenset(
    {
        "mbi", "hicn", "ssn", "beneficiary_name", "beneficiary_first_name",
        "beneficiary_last_name", "date_of_birth", "dob", "narrative", "complaint_narrative",
        "beneficiary_address", "beneficiary_phone", "beneficiary_email",
    }
)  # fmt: skip


def public_data(data: Any, *, include_phi: bool) -> Any:
    """The event data an endpoint may see: without PHI unless it has `include_phi`."""
    if include_phi:
        return data
    if isinstance(data, dict):
        return {
            key: public_data(value, include_phi=False)
            for key, value in data.items()
            if key != PHI_KEY and key.lower() not in PHI_FIELDS
        }
    if isinstance(data, list):
        return [public_data(item, include_phi=False) for item in data]
    return data


def body_of(event: Event, tenant_slug: str, *, include_phi: bool) -> bytes:
    return body_for(
        event.id, event.type, event.occurred_at, event.payload, tenant_slug, include_phi=include_phi
    )


def body_for(
    event_id: UUID,
    event_type: str,
    occurred_at: datetime,
    payload: Any,
    tenant_slug: str,
    *,
    include_phi: bool,
) -> bytes:
    """The envelope of `hub.events.service.envelope`, from an event's columns (the drainer
    reads columns, not entities)."""
    return msgspec.json.encode(
        {
            "id": str(event_id),
            "type": event_type,
            "timestamp": zulu(occurred_at),
            "tenant": tenant_slug,
            "schema_version": SCHEMA_VERSION,
            "data": public_data(payload, include_phi=include_phi),
        }
    )
