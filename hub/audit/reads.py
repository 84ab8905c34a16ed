"""Reads of PHI, audited: who opened which complaint's PHI, when, and from where.

Every answer that carries PHI in clear (a complaint's PHI document, its resolutions'
summaries and notes, a quarantined row's raw cells) and every search by beneficiary
identifier appends one `phi.read` entry to the tenant's chain: the view, its target, and
how many records it opened, never a value. The request's own session only reads (GET), so
the entry is written in a transaction of its own and committed before the answer leaves:
a read that cannot be recorded is not answered.
"""

from __future__ import annotations

import enum
from typing import Any
from uuid import UUID

from hub.audit import service
from hub.auth.principal import Principal
from hub.core.db import Database

PHI_READ = "phi.read"


class PhiView(enum.StrEnum):
    COMPLAINT = "complaint"  # one complaint's PHI document
    RESOLUTIONS = "resolutions"  # a complaint's resolutions: summaries and casework notes
    BENEFICIARY_SEARCH = "beneficiary_search"  # complaints found by beneficiary identifier
    QUARANTINED_ROWS = "quarantined_rows"  # a sync run's refused rows, raw cells opened
    GATEWAY_DOWNLOAD = "gateway_download"  # CMS's download file, passed on by the CTM gateway


async def record_phi_read(
    db: Database,
    principal: Principal,
    view: PhiView,
    *,
    target_type: str | None = None,
    target_id: UUID | None = None,
    **details: Any,
) -> None:
    """Append and commit the `phi.read` entry of one answer (raises if it cannot)."""
    async with db.transaction() as session:
        await service.record(
            session,
            actor=service.Actor.of_principal(principal),
            action=PHI_READ,
            tenant_id=principal.tenant,
            target_type=target_type,
            target_id=target_id,
            details={"view": view.value, **details},
        )
