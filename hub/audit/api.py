"""/api/v1/audit: the caller's tenant's audit log, oldest first, paged by sequence number."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import repository
from hub.audit.schemas import AuditEntryView
from hub.auth.guards import scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.errors import documented
from hub.core.text import NO_NUL

# `seq` is a 32-bit INTEGER column: a larger `after` is refused here, not sent to the database
# (which fails on it).
MAX_SEQ = 2**31 - 1


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]

    @get("/", opt=scope(Scope.AUDIT_READ), responses=documented(400, 401, 403))
    async def list_audit_entries(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        action: Annotated[str | None, QueryParameter(max_length=100, pattern=NO_NUL)] = None,
        after: Annotated[int, QueryParameter(ge=0, le=MAX_SEQ)] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
        actor: Annotated[str | None, QueryParameter(max_length=320, pattern=NO_NUL)] = None,
        target: Annotated[str | None, QueryParameter(max_length=100, pattern=NO_NUL)] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> list[AuditEntryView]:
        """Entries oldest first; pass the last `seq` seen as `after` to page. `action`
        filters by prefix (e.g. `token.`); `actor` is an actor's email, label or id;
        `target` a target type or id; `since` and `until` a time range (until excluded)."""
        where = repository.EntryFilter(
            action=action, actor=actor, target=target, since=since, until=until
        )
        found = await repository.list_entries(
            db_session, principal.tenant, after=after, limit=limit, where=where
        )
        return [AuditEntryView.of(e) for e in found]
