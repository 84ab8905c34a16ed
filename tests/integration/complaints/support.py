"""Complaints made directly in the database (the sync path is tested in tests/workers)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.complaints.models import Complaint, ResolutionState
from hub.complaints.service import BENE_FIELD, PHI_FIELD, Deadlines, due_date
from hub.core import crypto
from hub.core.db import utcnow
from hub.core.ids import TenantID, uuid7
from hub.keys.models import ApiKey, Environment

IMMEDIATE = "Immediate Need"
URGENT = "Urgent"
NO_ISSUE = "No Issue Level"


async def make_complaint(
    session: AsyncSession,
    tenant_id: TenantID,
    *,
    complaint_id: str | None = None,
    contract: str = "H1234",
    issue_level: str = URGENT,
    received: date | None = None,
    assigned: date | None = None,
    bene: str = "1EG4-TE5-MK72",
    cms_resolution_date: date | None = None,
    state: ResolutionState = ResolutionState.NONE,
    api_key_id: UUID | None = None,
    deadlines: Deadlines | None = None,
    environment: Environment | None = None,
) -> Complaint:
    """A complaint whose PHI document names a canary summary, sealed like a sync seals it;
    from its key's environment (sandbox without a key), unless `environment` says."""
    received = received or utcnow().date() - timedelta(days=1)
    if environment is None and api_key_id is not None:
        environment = await session.scalar(
            select(ApiKey.environment).where(ApiKey.id == api_key_id)
        )
    environment = environment or Environment.SANDBOX
    immediate = issue_level == IMMEDIATE
    due, basis = due_date(
        received, assigned, immediate=immediate, deadlines=deadlines or Deadlines()
    )
    cipher = await crypto.cipher_for(session, tenant_id)
    now = utcnow()
    complaint = Complaint(
        id=uuid7(), tenant_id=tenant_id, environment=environment, contract=contract,
        complaint_id=complaint_id or f"CTM-{uuid7().hex[-8:]}", api_key_id=api_key_id,
        issue_level=issue_level, is_immediate_need=immediate, received_date=received,
        assignment_date=assigned, due_date=due, due_basis=basis,
        cms_resolution_date=cms_resolution_date, category="Benefits", subcategory="Part D",
        fields={"COMPLAINT_STATUS": "Open"}, layout="current",
        bene_index=cipher.blind_index(bene, field=BENE_FIELD), content_hash="0" * 64,
        phi_hash="0" * 64, resolution_state=state, first_seen_at=now, last_changed_at=now,
        last_seen_at=now,
    )  # fmt: skip
    phi: dict[str, Any] = {"BENE_IDENTIFIER": bene, "COMPLAINT_SUMMARY": "Canary PHI summary"}
    complaint.phi = cipher.seal(json.dumps(phi), field=PHI_FIELD, row=complaint.id)
    session.add(complaint)
    await session.flush()
    return complaint
