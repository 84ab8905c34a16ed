"""Tenant-scoped reads of complaints, their history and their resolutions.

Every query starts from `complaints(tenant_id)` (or its siblings), so a request for another
tenant's complaint finds nothing and answers 404.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from litestar.response import Stream
from sqlalchemy import ColumnElement, ScalarSelect, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from hub.complaints import doubt
from hub.complaints.models import Complaint, ComplaintChange, Resolution, ResolutionState
from hub.complaints.service import BENE_FIELD, ComplaintStatus, Deadlines, status_of
from hub.core import crypto, csvexport
from hub.core.db import Database, utcnow
from hub.core.db.postgres import among
from hub.core.errors import Invalid, NotFound, choice
from hub.core.ids import TenantID
from hub.keys.models import Environment
from hub.keys.service import normalise_contract
from hub.tenants.service import get_tenant

_LIKE_SPECIALS = re.compile(r"[\\%_]")
# The longest beneficiary identifier looked up (CMS's MBI is 11 characters, HICN up to 12).
BENE_MAX_CHARS = 100


def complaints(tenant_id: TenantID) -> Select[Complaint]:
    return select(Complaint).where(Complaint.tenant_id == tenant_id)


async def get_complaint(
    session: AsyncSession, tenant_id: TenantID, complaint_pk: UUID, *, lock: bool = False
) -> Complaint:
    """The complaint; with `lock`, held for this transaction (PostgreSQL) so that two
    concurrent resolutions of one complaint serialise and the second sees the first."""
    statement = complaints(tenant_id).where(Complaint.id == complaint_pk)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    complaint = await session.scalar(statement)
    if complaint is None:
        raise NotFound("complaint", complaint_pk)
    return complaint


def status_condition(
    status: ComplaintStatus, *, now: datetime, deadlines: Deadlines
) -> ColumnElement[bool]:
    """The SQL twin of `service.status_of`: which rows have the derived status now.

    A complaint due on day D breaches at the start of D + 1 (UTC), so it is overdue when
    D < today, and due soon when its breach moment falls within `due_soon` from now."""
    state = Complaint.resolution_state
    unresolved = and_(state == ResolutionState.NONE, Complaint.cms_resolution_date.is_(None))
    soon_through = (now + deadlines.due_soon).date() - timedelta(days=1)
    today = now.date()
    match status:
        case ComplaintStatus.ACCEPTED:
            return state == ResolutionState.ACCEPTED
        case ComplaintStatus.REJECTED:
            return and_(state == ResolutionState.REJECTED, Complaint.cms_resolution_date.is_(None))
        case ComplaintStatus.RESOLVED:
            return or_(
                state.in_([ResolutionState.QUEUED, ResolutionState.UPLOADING]),
                and_(
                    state.in_([ResolutionState.NONE, ResolutionState.REJECTED]),
                    Complaint.cms_resolution_date.is_not(None),
                ),
            )
        case ComplaintStatus.OVERDUE:
            return and_(unresolved, Complaint.due_date < today)
        case ComplaintStatus.DUE_SOON:
            return and_(unresolved, Complaint.due_date >= today, Complaint.due_date <= soon_through)
        case ComplaintStatus.OPEN:
            return and_(unresolved, Complaint.due_date >= today, Complaint.due_date > soon_through)


def needs_person_condition(*, now: datetime, deadlines: Deadlines) -> ColumnElement[bool]:
    """What a caseworker must act on: a resolution CMS rejected (and CMS does not show the
    complaint resolved), or an upload in doubt past `doubt.SETTLE_AFTER`, when a person who
    checked HPMS may settle it as accepted, resend or release."""
    stuck = (
        select(Resolution.id)
        .where(
            Resolution.tenant_id == Complaint.tenant_id,
            Resolution.complaint_pk == Complaint.id,
            Resolution.state == ResolutionState.UPLOADING,
            Resolution.in_doubt_since <= now - doubt.SETTLE_AFTER,
        )
        .exists()
    )
    rejected = status_condition(ComplaintStatus.REJECTED, now=now, deadlines=deadlines)
    return or_(rejected, stuck)


@dataclass(frozen=True, slots=True)
class ComplaintFilter:
    status: ComplaintStatus | None = None
    environment: Environment | None = None
    contract: str | None = None
    due_before: date | None = None
    bene_index: str | None = None  # the blind index of a beneficiary identifier
    issue_level: str | None = None  # exactly as CMS's file writes it
    complaint_id: str | None = None  # a part of the complaint ID, any case
    resolution: ResolutionState | None = None  # the state of the complaint's resolution
    needs_person: bool = False  # see `needs_person_condition`
    limit: int = 100
    offset: int = 0


def complaint_filter(
    *,
    status: str | None = None,
    environment: str | None = None,
    contract: str | None = None,
    issue_level: str | None = None,
    complaint_id: str | None = None,
    resolution: str | None = None,
    due_before: date | None = None,
    bene_index: str | None = None,
    needs_person: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> ComplaintFilter:
    """A list's filter from its query's words (API or portal); a 400 names a bad one."""
    contract = _text("contract", contract)
    return ComplaintFilter(
        status=choice("status", status, ComplaintStatus),
        environment=choice("environment", environment, Environment),
        contract=normalise_contract(contract, field="contract") if contract else None,
        issue_level=_text("issue_level", issue_level),
        complaint_id=_text("complaint_id", complaint_id),
        resolution=choice("resolution", resolution, ResolutionState),
        due_before=due_before, bene_index=bene_index, needs_person=needs_person,
        limit=limit, offset=offset,
    )  # fmt: skip


def _text(field: str, value: str | None) -> str | None:
    """A query's word trimmed; None when it is missing or blank. PostgreSQL cannot compare
    a NUL, so one is a 400 naming the field on every backend."""
    if value is not None and "\x00" in value:
        raise Invalid(field, "must not contain NUL")
    return value.strip() or None if value is not None else None


async def beneficiary_index(session: AsyncSession, tenant_id: TenantID, identifier: str) -> str:
    """The blind index a beneficiary's complaints are found by (exact identifier, any case);
    the identifier itself is neither stored nor compared. A 400 names `beneficiary`."""
    identifier = identifier.strip()
    if not identifier:
        raise Invalid("beneficiary", "must not be blank")
    if len(identifier) > BENE_MAX_CHARS or "\x00" in identifier:
        raise Invalid("beneficiary", f"is not an identifier (at most {BENE_MAX_CHARS} characters)")
    return await crypto.blind_index(session, identifier, tenant=tenant_id, field=BENE_FIELD)


_S = TypeVar("_S", bound=Select[*tuple[Any, ...]])

# A total order, so that pages neither repeat nor skip a complaint: one contract's complaint
# ID may be in both environments (the row id breaks any tie left).
LIST_ORDER = (
    Complaint.due_date, Complaint.contract, Complaint.complaint_id, Complaint.environment,
    Complaint.id,
)  # fmt: skip


def narrowed(statement: _S, where: ComplaintFilter, *, now: datetime, deadlines: Deadlines) -> _S:
    """`statement` (over complaints) narrowed to the filter's rows (limit and offset aside)."""
    if where.status is not None:
        statement = statement.where(status_condition(where.status, now=now, deadlines=deadlines))
    if where.environment is not None:
        statement = statement.where(Complaint.environment == where.environment)
    if where.contract is not None:
        statement = statement.where(Complaint.contract == where.contract)
    if where.due_before is not None:
        statement = statement.where(Complaint.due_date < where.due_before)
    if where.bene_index is not None:
        statement = statement.where(Complaint.bene_index == where.bene_index)
    if where.issue_level is not None:
        statement = statement.where(Complaint.issue_level == where.issue_level)
    if where.complaint_id is not None:
        pattern = "%" + _LIKE_SPECIALS.sub(r"\\\g<0>", where.complaint_id) + "%"
        statement = statement.where(Complaint.complaint_id.ilike(pattern, escape="\\"))
    if where.resolution is not None:
        statement = statement.where(Complaint.resolution_state == where.resolution)
    if where.needs_person:
        statement = statement.where(needs_person_condition(now=now, deadlines=deadlines))
    return statement


async def list_complaints(
    session: AsyncSession,
    tenant_id: TenantID,
    where: ComplaintFilter,
    *,
    now: datetime,
    deadlines: Deadlines,
) -> Sequence[Complaint]:
    statement = narrowed(complaints(tenant_id), where, now=now, deadlines=deadlines)
    statement = statement.order_by(*LIST_ORDER)
    return (await session.scalars(statement.limit(where.limit).offset(where.offset))).all()


async def list_changes(
    session: AsyncSession, tenant_id: TenantID, complaint_pk: UUID
) -> Sequence[ComplaintChange]:
    await get_complaint(session, tenant_id, complaint_pk)
    return (
        await session.scalars(
            select(ComplaintChange)
            .where(
                ComplaintChange.tenant_id == tenant_id,
                ComplaintChange.complaint_pk == complaint_pk,
            )
            .order_by(ComplaintChange.created_at, ComplaintChange.id)
        )
    ).all()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: str  # created | updated
    changed: list[str]  # column names, never values
    sync_run_id: UUID | None
    at: datetime


async def list_history(
    session: AsyncSession, tenant_id: TenantID, complaint_pk: UUID
) -> list[HistoryEntry]:
    """What changed and which sync saw it, oldest first: column names, never values."""
    complaint = await get_complaint(session, tenant_id, complaint_pk)
    changes = await list_changes(session, tenant_id, complaint_pk)
    entries = [
        HistoryEntry(c.kind, [str(name) for name in c.changed], c.sync_run_id, c.created_at)
        for c in changes
    ]
    if not any(c.kind == "created" for c in changes):
        # Creation is not always a history row: first seen says when it arrived.
        entries.insert(0, HistoryEntry("created", [], None, complaint.first_seen_at))
    return entries


async def distinct_values(
    session: AsyncSession, tenant_id: TenantID
) -> tuple[list[str], list[str]]:
    """The tenant's contracts and issue levels, sorted: what a list can be filtered by."""
    contracts = await session.scalars(
        select(Complaint.contract).where(Complaint.tenant_id == tenant_id).distinct()
    )
    levels = await session.scalars(
        select(Complaint.issue_level).where(Complaint.tenant_id == tenant_id).distinct()
    )
    return sorted(contracts), sorted(levels)


async def list_resolutions(
    session: AsyncSession, tenant_id: TenantID, complaint_pk: UUID
) -> Sequence[Resolution]:
    await get_complaint(session, tenant_id, complaint_pk)
    return (
        await session.scalars(
            select(Resolution)
            .where(Resolution.tenant_id == tenant_id, Resolution.complaint_pk == complaint_pk)
            .order_by(Resolution.created_at, Resolution.id)
        )
    ).all()


async def find_by_idempotency_key(
    session: AsyncSession, tenant_id: TenantID, key: str
) -> Resolution | None:
    return await session.scalar(
        select(Resolution).where(
            Resolution.tenant_id == tenant_id, Resolution.idempotency_key == key
        )
    )


# The export -------------------------------------------------------------------------------

# What the list shows, and how each due date was reached and when it was resolved; no PHI
# column is even loaded (the PHI document and beneficiary index stay in the database).
EXPORT_COLUMNS = (
    "complaint_id", "environment", "contract", "issue_level", "is_immediate_need", "category",
    "subcategory", "received_date", "assignment_date", "due_date", "due_basis", "status",
    "resolution_state", "cms_resolution_date", "hub_resolution_date", "first_seen_at",
    "last_changed_at", "id",
)  # fmt: skip
_EXPORT_LOADS = (
    Complaint.id, Complaint.tenant_id, Complaint.complaint_id, Complaint.environment,
    Complaint.contract, Complaint.issue_level, Complaint.is_immediate_need, Complaint.category,
    Complaint.subcategory, Complaint.received_date, Complaint.assignment_date,
    Complaint.due_date, Complaint.due_basis, Complaint.resolution_state,
    Complaint.cms_resolution_date, Complaint.first_seen_at, Complaint.last_changed_at,
)  # fmt: skip


def _latest_resolution_date() -> ScalarSelect[date]:
    """The date of the complaint's latest resolution written here (the one its
    `resolution_state` describes), whatever CMS made of it."""
    return (
        select(Resolution.resolution_date)
        .where(Resolution.tenant_id == Complaint.tenant_id, Resolution.complaint_pk == Complaint.id)
        .order_by(Resolution.created_at.desc(), Resolution.id.desc())
        .limit(1)
        .correlate(Complaint)
        .scalar_subquery()
    )


def _export_values(
    c: Complaint, ours: date | None, *, now: datetime, deadlines: Deadlines
) -> tuple[Any, ...]:
    return (
        c.complaint_id, c.environment.value, c.contract, c.issue_level, c.is_immediate_need,
        c.category, c.subcategory, c.received_date, c.assignment_date, c.due_date,
        c.due_basis.value, status_of(c, now=now, deadlines=deadlines).value,
        c.resolution_state.value, c.cms_resolution_date, ours, c.first_seen_at,
        c.last_changed_at, c.id,
    )  # fmt: skip


async def export_pages(
    db: Database,
    tenant_id: TenantID,
    where: ComplaintFilter,
    *,
    now: datetime,
    deadlines: Deadlines,
    page_rows: int,
    max_rows: int,
) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The filter's complaints in the list's order, `page_rows` at a time (the filter's
    limit and offset aside; at most `max_rows` and one more, which tells a longer export).

    Which complaints, and in which order, is read once, at the start (their ids); each
    page's rows are then read in a short transaction of its own, so a slow download holds
    no connection between pages. A complaint that changes meanwhile (a sync moving its due
    date, which orders the list) still comes exactly once, in its place, with its values
    as its page is read; one gone meanwhile (its tenant offboarded) is left out."""
    chosen = narrowed(
        select(Complaint.id).where(Complaint.tenant_id == tenant_id),
        where, now=now, deadlines=deadlines,
    ).order_by(*LIST_ORDER).limit(max_rows + 1)  # fmt: skip
    async with db.transaction(read_only=True) as session:
        ids = list((await session.scalars(chosen)).all())
    rows = (
        select(Complaint, _latest_resolution_date())
        .where(Complaint.tenant_id == tenant_id)
        .options(load_only(*_EXPORT_LOADS))
    )
    for start in range(0, len(ids), page_rows):
        wanted = ids[start : start + page_rows]
        async with db.transaction(read_only=True) as session:
            page = rows.where(among(session, Complaint.id, wanted))
            found = {c.id: (c, ours) for c, ours in (await session.execute(page)).all()}
        yield [
            _export_values(c, ours, now=now, deadlines=deadlines)
            for c, ours in (found[i] for i in wanted if i in found)
        ]


async def export_file(
    session: AsyncSession,
    db: Database,
    tenant_id: TenantID,
    where: ComplaintFilter,
    *,
    deadlines: Deadlines,
) -> Stream:
    """The filter's complaints as a CSV download (`hub.core.csvexport`), named after the
    tenant and today; pages are read as the file is sent, not before."""
    now = utcnow()
    tenant = await get_tenant(session, tenant_id)
    pages = export_pages(
        db, tenant_id, where, now=now, deadlines=deadlines, page_rows=csvexport.PAGE_ROWS,
        max_rows=csvexport.MAX_ROWS,
    )  # fmt: skip
    chunks = csvexport.stream(EXPORT_COLUMNS, pages, limit=csvexport.MAX_ROWS)
    return csvexport.download(csvexport.file_name("complaints", tenant.slug, now.date()), chunks)
