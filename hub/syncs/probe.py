"""The daily access probe: does CMS serve a lost contract to its key again?

A contract CMS refused a key (403) is marked lost and no longer synced; it comes back when
HPMS restores the association. The RP may say so by hand (`POST …/contracts/{n}/restore`);
this probe notices by itself. Once a day each lost (key, contract) of an active key is asked
for a one-day download: if CMS now serves it, the mark goes as if restored by hand (event
`key.access_restored`, its alert resolves) and the pair syncs at once; a 403 leaves it lost,
quietly; a refused key is marked invalid, as syncs do. The probe's download is read to its
end and dropped: nothing of it is stored (the sync that follows stores what it finds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import select

from hub.core.db import Database
from hub.core.ids import TenantID
from hub.ctm.client import CtmClient, CtmEnvironment
from hub.ctm.errors import ContractAccessDenied, CtmError, FileRejected, KeyRejected
from hub.keys import service as keys
from hub.keys.models import ApiKey, ApiKeyContract, Contract, KeyStatus
from hub.syncs.service import KEY_REFUSED
from hub.syncs.slots import key_slot
from hub.tenants.models import Tenant, TenantStatus

log = structlog.get_logger(__name__)


@dataclass
class Probed:
    restored: int = 0
    still_lost: int = 0
    skipped: int = 0  # the key busy, or CMS not answering: tomorrow again


async def _lost(db: Database) -> list[tuple[TenantID, UUID, str]]:
    async with db.transaction(read_only=True) as session:
        rows = await session.execute(
            select(ApiKey.tenant_id, ApiKey.id, Contract.number)
            .join(ApiKeyContract, ApiKeyContract.api_key_id == ApiKey.id)
            .join(Contract, Contract.id == ApiKeyContract.contract_id)
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .where(
                ApiKeyContract.access_lost_at.is_not(None),
                ApiKey.status == KeyStatus.ACTIVE,
                Tenant.status == TenantStatus.ACTIVE,
            )
            .order_by(ApiKey.tenant_id, ApiKey.id, Contract.number)
        )
        return [(TenantID(tenant), key, number) for tenant, key, number in rows]


async def probe_lost_access(
    db: Database, clients: Mapping[CtmEnvironment, CtmClient], redis: Any, *, now: datetime
) -> Probed:
    probed = Probed()
    for tenant_id, key_id, contract in await _lost(db):
        async with key_slot(redis, str(key_id)) as has_slot:
            if not has_slot:  # the key is busy with syncs: not worth waiting for
                probed.skipped += 1
                continue
            served = await _asks(db, clients, tenant_id, key_id, contract, now=now)
        if served is None:
            probed.skipped += 1
        elif not served:
            probed.still_lost += 1
        else:
            async with db.transaction() as session:
                restored = await keys.restore_access_served(
                    session, tenant_id=tenant_id, key_id=key_id, contract=contract
                )
            probed.restored += int(restored)
            log.info("contract access restored by the probe", key=str(key_id), contract=contract)
    return probed


async def _asks(
    db: Database,
    clients: Mapping[CtmEnvironment, CtmClient],
    tenant_id: TenantID,
    key_id: UUID,
    contract: str,
    *,
    now: datetime,
) -> bool | None:
    """True when CMS serves the contract to the key, False when it refuses it; None when it
    could not tell (the key changed meanwhile, CMS not answering)."""
    async with db.transaction(read_only=True) as session:
        key = await session.get(ApiKey, key_id)
        if key is None or key.tenant_id != tenant_id or not key.is_usable:
            return None  # retired or removed meanwhile
        credentials = await keys.credentials_for(session, key)
    client = clients[CtmEnvironment(key.environment.value)]
    today = now.date()
    try:
        async for _batch in client.download_complaints(credentials, contract, today, today):
            pass
    except ContractAccessDenied:
        return False
    except FileRejected:  # CMS served a file, if not one the parser takes: access is back
        return True
    except KeyRejected as error:
        async with db.transaction() as session:
            await keys.mark_invalid(
                session, tenant_id=tenant_id, key_id=key_id, reason=KEY_REFUSED,
                refused_key_id=error.key_id,
            )  # fmt: skip
        return None
    except CtmError as error:
        log.info(
            "access probe could not tell", key=str(key_id), contract=contract,
            error_class=type(error).__name__,
        )  # fmt: skip
        return None
    return True
