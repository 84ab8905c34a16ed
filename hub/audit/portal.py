"""The audit pages of the portal: the tenant's audit log, newest first, filtered and paged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import repository
from hub.audit.api import MAX_SEQ
from hub.audit.models import AuditEntry
from hub.audit.schemas import AuditEntryView
from hub.auth.models import Scope
from hub.core.errors import Invalid
from hub.portal import forms
from hub.portal.web import page, principal_of, render

PAGE_SIZE = 50
MAX_FILTER = 320


@dataclass(frozen=True, slots=True)
class EntryRow:
    """An entry as the page lists it; `details` as the API shows them (JSON)."""

    entry: AuditEntryView
    details: str

    @classmethod
    def of(cls, entry: AuditEntry) -> EntryRow:
        view = AuditEntryView.of(entry)
        return cls(view, json.dumps(view.details, sort_keys=True, ensure_ascii=False))


def entry_filter(
    action: str, actor: str, target: str, since: str, until: str
) -> repository.EntryFilter:
    for field, value in (("action", action), ("actor", actor), ("target", target)):
        if len(value) > MAX_FILTER or "\x00" in value:
            raise Invalid(field, f"must be at most {MAX_FILTER} characters of text")
    first, last = forms.day("since", since), forms.day("until", until)
    if first and last and last < first:
        raise Invalid("until", "must not be before the first day")
    start = datetime(first.year, first.month, first.day, tzinfo=UTC) if first else None
    # The last day is included: the range ends at the start of the day after it.
    end = (
        datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1) if last else None
    )
    return repository.EntryFilter(
        action=action.strip() or None, actor=actor.strip() or None,
        target=target.strip() or None, since=start, until=end,
    )  # fmt: skip


@get("/audit", opt=page(Scope.AUDIT_READ))
async def audit_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    action: FromQuery[str] = "",
    actor: FromQuery[str] = "",
    target: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
    before: FromQuery[int | None] = None,
) -> Template:
    """The tenant's audit log, newest first; `before` pages on from the last `seq` seen."""
    principal = principal_of(request)
    filters = {"action": action, "actor": actor, "target": target, "since": since, "until": until}
    try:
        if before is not None and not 0 < before <= MAX_SEQ:
            raise Invalid("before", "is not an entry of this log")
        where = entry_filter(action, actor, target, since, until)
    except Invalid as error:
        return await render(
            request, db_session, "audit/log.html", title="Audit log", status_code=400,
            rows=[], filters=filters, errors={error.field: error.detail}, next_before=None,
            before=None,
        )  # fmt: skip
    found = await repository.list_newest(
        db_session, principal.tenant, where=where, before=before, limit=PAGE_SIZE + 1
    )
    rows = [EntryRow.of(entry) for entry in found[:PAGE_SIZE]]
    next_before = rows[-1].entry.seq if len(found) > PAGE_SIZE else None
    return await render(
        request, db_session, "audit/log.html", title="Audit log", rows=rows, filters=filters,
        errors={}, next_before=next_before, before=before, csv_href=_csv_href(filters),
    )  # fmt: skip


def _csv_href(filters: dict[str, str]) -> str:
    query = {name: value for name, value in filters.items() if value}
    return "/portal/audit.csv" + (f"?{urlencode(query)}" if query else "")


@get("/audit.csv", opt=page(Scope.AUDIT_READ))
async def audit_csv(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    action: FromQuery[str] = "",
    actor: FromQuery[str] = "",
    target: FromQuery[str] = "",
    since: FromQuery[str] = "",
    until: FromQuery[str] = "",
) -> Stream:
    """The log as the page's filters narrow it, as the API's CSV file (audited likewise)."""
    where = entry_filter(action, actor, target, since, until)
    return await repository.export_file(
        db_session, request.app.state.db, principal_of(request), where
    )


PAGES = [audit_page, audit_csv]
