"""/api/v1/audit: the caller's tenant's audit log, oldest first, paged by sequence number."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import repository
from hub.audit.schemas import AuditEntryView
from hub.auth.guards import scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core import csvexport
from hub.core.errors import Invalid, documented
from hub.core.text import NO_NUL

# `seq` is a 32-bit INTEGER column: a larger `after` is refused here, not sent to the database
# (which fails on it).
MAX_SEQ = 2**31 - 1
EXPORT_DESCRIPTION = (
    "The tenant's audit log as the list's filters narrow it (`action` prefix, `actor`, "
    "`target`, `since`, `until`), newest first, as a CSV file: UTF-8 with a byte-order mark "
    "(for Excel), a header row, then one row per entry with its details as JSON text in one "
    "column and its chain hash. It covers the log as it stood when asked (later entries are "
    "left out). At most 100,000 rows: a longer export ends with a line starting `# cut at`. "
    "Cells a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) begin "
    "with a `'`. Each export is itself audited as `audit.exported` (who, the filters, how "
    "many rows) before the file is sent. Named `audit-<tenant>-<YYYYMMDD>.csv`."
)


_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d*)?([eE][-+]?\d+)?\s*$")


def _times_as_written(request: Request[Any, Any, Any]) -> None:
    """`since` and `until` are ISO 8601 times, as the schema says: a bare number (which the
    query parser would read as seconds since 1970) is refused, naming the parameter."""
    for name in ("since", "until"):
        raw = request.query_params.get(name)
        if raw is not None and _NUMBER.fullmatch(raw):
            raise Invalid(name, "is not a time: write it as ISO 8601, e.g. 2026-11-01T00:00:00Z")


class AuditController(Controller):
    path = "/"  # handlers name whole paths, so /audit.csv sits beside /audit
    tags = ["audit"]

    @get("/audit", opt=scope(Scope.AUDIT_READ), responses=documented(400, 401, 403))
    async def list_audit_entries(
        self,
        request: Request[Any, Any, Any],
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
        _times_as_written(request)
        where = repository.EntryFilter(
            action=action, actor=actor, target=target, since=since, until=until
        )
        found = await repository.list_entries(
            db_session, principal.tenant, after=after, limit=limit, where=where
        )
        return [AuditEntryView.of(e) for e in found]

    @get(
        "/audit.csv",
        opt=scope(Scope.AUDIT_READ),
        media_type=csvexport.MEDIA_TYPE,
        responses=documented(400, 401, 403),
        description=EXPORT_DESCRIPTION,
    )
    async def export_audit_entries(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        action: Annotated[str | None, QueryParameter(max_length=100, pattern=NO_NUL)] = None,
        actor: Annotated[str | None, QueryParameter(max_length=320, pattern=NO_NUL)] = None,
        target: Annotated[str | None, QueryParameter(max_length=100, pattern=NO_NUL)] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> Stream:
        """The log as a CSV file, newest first, itself audited (see EXPORT_DESCRIPTION)."""
        _times_as_written(request)
        where = repository.EntryFilter(
            action=action, actor=actor, target=target, since=since, until=until
        )
        return await repository.export_file(db_session, state.db, principal, where)
