"""The complaints pages of the portal: the list with the API's filters (and what needs a
person), a beneficiary's complaints found by identifier, one complaint with its PHI (audited
as the API audits it), its history and resolutions, writing a resolution, and settling one
in doubt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter, URLEncodedBody
from litestar.response import Stream, Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.reads import PhiView, record_phi_read
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.complaints import doubt_review, repository, resolutions
from hub.complaints.models import Complaint, ResolutionState
from hub.complaints.resolutions import (
    NOTES_MAX_CHARS,
    NOTIFICATION_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    OpenedResolution,
    ResolutionInput,
    open_resolutions,
)
from hub.complaints.schemas import due_basis_note
from hub.complaints.service import ComplaintStatus, Deadlines, open_phi, status_of
from hub.core import crypto
from hub.core.db import Database, utcnow
from hub.core.errors import Invalid
from hub.core.ids import uuid7
from hub.core.text import Text
from hub.keys.models import Environment
from hub.portal import forms
from hub.portal.web import fragment, go, is_htmx, page, principal_of, render
from hub.syncs.service import SyncPolicy

PAGE_SIZE = 50
MAX_OFFSET = 2**63 - 1  # as the API: a larger OFFSET is refused here, not by the database
PILLS = {
    ComplaintStatus.OVERDUE: "bad",
    ComplaintStatus.REJECTED: "bad",
    ComplaintStatus.DUE_SOON: "warn",
    ComplaintStatus.RESOLVED: "ok",
    ComplaintStatus.ACCEPTED: "ok",
}
# What a redirect after an action says on the page it lands on (fixed words, never echoed).
DONE = {
    "written": "Resolution queued: it is uploaded to CMS with the contract's next upload.",
    "settled": "Resolution settled; its state below is what the hub now holds.",
}


def _deadlines(request: Request[Any, Any, Any]) -> Deadlines:
    return SyncPolicy.from_settings(request.app.state.settings).deadlines


def _can_write(principal: Principal) -> bool:
    return Scope.COMPLAINTS_WRITE in principal.scopes


# The list ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    complaint: Complaint
    status: ComplaintStatus

    @property
    def pill(self) -> str:
        return PILLS.get(self.status, "")


@dataclass(slots=True)
class Listing:
    asked: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    previous: str | None = None
    next: str | None = None
    # A search by beneficiary: its results are not paged (a link would carry the identifier).
    is_beneficiary_search: bool = False
    has_more: bool = False

    @property
    def csv_href(self) -> str:
        """The CSV of every complaint these filters match (the list's pages aside)."""
        query = {k: v for k, v in self.asked.items() if v}
        return "/portal/complaints.csv" + (f"?{urlencode(query)}" if query else "")


def _href(asked: dict[str, str], offset: int) -> str:
    query = {k: v for k, v in asked.items() if v} | ({"offset": str(offset)} if offset else {})
    return "/portal/complaints" + (f"?{urlencode(query)}" if query else "")


async def _listing(
    request: Request[Any, Any, Any], session: AsyncSession, asked: dict[str, str], offset: int
) -> Listing:
    principal, now, deadlines = principal_of(request), utcnow(), _deadlines(request)
    listing = Listing(asked)
    try:
        where = repository.complaint_filter(
            status=asked["status"], environment=asked["environment"], contract=asked["contract"],
            issue_level=asked["issue_level"], complaint_id=asked["complaint_id"],
            resolution=asked["resolution"], needs_person=asked["needs_person"] == "true",
            limit=PAGE_SIZE + 1, offset=offset,
        )  # fmt: skip
    except Invalid as error:
        listing.errors[error.field] = error.reason
        return listing
    found = await repository.list_complaints(
        session, principal.tenant, where, now=now, deadlines=deadlines
    )
    listing.rows = [Row(c, status_of(c, now=now, deadlines=deadlines)) for c in found]
    if len(listing.rows) > PAGE_SIZE:
        listing.rows = listing.rows[:PAGE_SIZE]
        listing.next = _href(asked, offset + PAGE_SIZE)
    if offset:
        listing.previous = _href(asked, max(0, offset - PAGE_SIZE))
    return listing


@get("/complaints", opt=page(Scope.COMPLAINTS_READ))
async def complaints_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    status: FromQuery[str] = "",
    environment: FromQuery[str] = "",
    contract: FromQuery[str] = "",
    issue_level: FromQuery[str] = "",
    complaint_id: Annotated[str, QueryParameter(max_length=64)] = "",
    resolution: FromQuery[str] = "",
    needs_person: FromQuery[bool] = False,
    offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
) -> Template:
    """Complaints by due date, filtered as the API filters them; no PHI. An htmx request
    (the filter form, the pager) gets the results alone."""
    asked = {
        "status": status, "environment": environment, "contract": contract,
        "issue_level": issue_level, "complaint_id": complaint_id, "resolution": resolution,
        "needs_person": "true" if needs_person else "",
    }  # fmt: skip
    listing = await _listing(request, db_session, asked, offset)
    return await _list_page(request, db_session, listing)


@get("/complaints.csv", opt=page(Scope.COMPLAINTS_READ))
async def complaints_csv(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    status: FromQuery[str] = "",
    environment: FromQuery[str] = "",
    contract: FromQuery[str] = "",
    issue_level: FromQuery[str] = "",
    complaint_id: Annotated[str, QueryParameter(max_length=64)] = "",
    resolution: FromQuery[str] = "",
    needs_person: FromQuery[bool] = False,
) -> Stream:
    """Every complaint the list's filters match, as the API's CSV file: no PHI."""
    where = repository.complaint_filter(
        status=status, environment=environment, contract=contract, issue_level=issue_level,
        complaint_id=complaint_id, resolution=resolution, needs_person=needs_person,
    )  # fmt: skip
    return await repository.export_file(
        db_session, request.app.state.db, principal_of(request).tenant, where,
        deadlines=_deadlines(request),
    )  # fmt: skip


async def _list_page(
    request: Request[Any, Any, Any], session: AsyncSession, listing: Listing
) -> Template:
    status_code = 400 if listing.errors else 200
    if is_htmx(request):  # htmx swaps only a 2xx answer: the errors are in the results
        return fragment(request, "complaints/_results.html", listing=listing)
    contracts, levels = await repository.distinct_values(session, principal_of(request).tenant)
    return await render(
        request, session, "complaints/list.html", title="Complaints", status_code=status_code,
        listing=listing, contracts=contracts, levels=levels,
        statuses=list(ComplaintStatus), states=list(ResolutionState),
        environments=list(Environment), bene_max=repository.BENE_MAX_CHARS,
    )  # fmt: skip


class BeneficiaryForm(msgspec.Struct):
    beneficiary: str = ""


NO_FILTERS = dict.fromkeys(
    ("status", "environment", "contract", "issue_level", "complaint_id", "resolution"), ""
) | {"needs_person": ""}


@post("/complaints/beneficiary", opt=page(Scope.COMPLAINTS_READ), status_code=200)
async def beneficiary_search(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[BeneficiaryForm],
) -> Template:
    """A beneficiary's complaints by exact identifier, through its blind index: posted, so
    the identifier stays out of the URL, the history and access logs, and never echoed back.
    The list shows what the normal list shows; the search is on record as the API's is."""
    principal, now, deadlines = principal_of(request), utcnow(), _deadlines(request)
    listing = Listing(dict(NO_FILTERS), is_beneficiary_search=True)
    try:
        bene_index = await repository.beneficiary_index(
            db_session, principal.tenant, data.beneficiary
        )
    except Invalid as error:
        listing.errors[error.field] = error.reason
        return await _list_page(request, db_session, listing)
    where = repository.complaint_filter(bene_index=bene_index, limit=PAGE_SIZE + 1)
    found = await repository.list_complaints(
        db_session, principal.tenant, where, now=now, deadlines=deadlines
    )
    await record_phi_read(
        request.app.state.db, principal, PhiView.BENEFICIARY_SEARCH, matches=len(found)
    )
    listing.rows = [Row(c, status_of(c, now=now, deadlines=deadlines)) for c in found]
    listing.has_more = len(listing.rows) > PAGE_SIZE
    listing.rows = listing.rows[:PAGE_SIZE]
    return await _list_page(request, db_session, listing)


# One complaint ----------------------------------------------------------------------------


class ResolutionForm(msgspec.Struct):
    resolution_date: Text = ""
    summary: Text = ""
    casework_notes: Text = ""
    complainant_satisfied: Text = ""
    resolution_notification: Text = ""
    # Made with the form: sending it twice (a double click, a retry) queues one resolution.
    idempotency_key: Text = ""


class SettleForm(msgspec.Struct):
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class Limits:
    summary: int = SUMMARY_MAX_CHARS
    notes: int = NOTES_MAX_CHARS
    notification: int = NOTIFICATION_MAX_CHARS


def _takes_resolution(complaint: Complaint) -> bool:
    """Whether the service would queue a new resolution (else the form is not offered)."""
    return (
        complaint.resolution_state in {ResolutionState.NONE, ResolutionState.REJECTED}
        and complaint.cms_resolution_date is None
    )


def _blank_form() -> ResolutionForm:
    return ResolutionForm(
        resolution_date=utcnow().date().isoformat(), idempotency_key=f"portal:{uuid7()}"
    )


async def _opened(
    request: Request[Any, Any, Any], session: AsyncSession, complaint_pk: UUID
) -> tuple[Complaint, dict[str, Any], list[OpenedResolution]]:
    """The complaint, its PHI and its resolutions opened, each read on record exactly as
    the API's detail and resolutions answers record theirs."""
    principal = principal_of(request)
    database: Database = request.app.state.db
    complaint = await repository.get_complaint(session, principal.tenant, complaint_pk)
    cipher = await crypto.cipher_for(session, principal.tenant)
    phi = open_phi(cipher, complaint)
    await record_phi_read(
        database, principal, PhiView.COMPLAINT,
        target_type="complaint", target_id=complaint.id, contract=complaint.contract,
        environment=complaint.environment.value, complaint_id=complaint.complaint_id,
    )  # fmt: skip
    found = await repository.list_resolutions(session, principal.tenant, complaint_pk)
    opened = await open_resolutions(session, principal.tenant, list(found))
    if opened:
        await record_phi_read(
            database, principal, PhiView.RESOLUTIONS,
            target_type="complaint", target_id=complaint.id, resolutions=len(opened),
        )  # fmt: skip
    return complaint, phi, opened


async def _detail(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    complaint_pk: UUID,
    *,
    form: ResolutionForm | None = None,
    errors: dict[str, str] | None = None,
    flash: str = "",
    flash_kind: str = "ok",
    status_code: int = 200,
) -> Template:
    principal, deadlines = principal_of(request), _deadlines(request)
    complaint, phi, opened = await _opened(request, session, complaint_pk)
    history = await repository.list_history(session, principal.tenant, complaint_pk)
    status = status_of(complaint, now=utcnow(), deadlines=deadlines)
    return await render(
        request, session, "complaints/detail.html", title=f"Complaint {complaint.complaint_id}",
        status_code=status_code, flash=flash, flash_kind=flash_kind,
        complaint=complaint, row=Row(complaint, status), basis=due_basis_note(complaint, deadlines),
        phi=phi, history=history, resolutions=opened, can_write=_can_write(principal),
        takes_resolution=_takes_resolution(complaint),
        form=form or _blank_form(), errors=errors or {}, limits=Limits(),
        outcomes=list(doubt_review.HandOutcome),
    )  # fmt: skip


@get("/complaints/{complaint_pk:uuid}", opt=page(Scope.COMPLAINTS_READ))
async def complaint_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    complaint_pk: FromPath[UUID],
    done: FromQuery[str] = "",
) -> Template:
    """One complaint: its fields, due date and basis, PHI, history and resolutions."""
    return await _detail(request, db_session, complaint_pk, flash=DONE.get(done, ""))


@post(
    "/complaints/{complaint_pk:uuid}/resolutions",
    opt=page(Scope.COMPLAINTS_WRITE),
    status_code=200,
)
async def write_resolution(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    complaint_pk: FromPath[UUID],
    data: URLEncodedBody[ResolutionForm],
) -> Response[Any]:
    """Queue a resolution for CMS, validated by the API's own service."""
    try:
        await resolutions.write_resolution(
            db_session, principal_of(request), complaint_pk=complaint_pk,
            data=ResolutionInput(
                resolution_date=forms.day("resolution_date", data.resolution_date),
                summary=data.summary,
                casework_notes=data.casework_notes,
                complainant_satisfied=data.complainant_satisfied,
                resolution_notification=data.resolution_notification,
            ),
            idempotency_body=data.idempotency_key,
        )  # fmt: skip
    except Invalid as error:
        return await _detail(
            request, db_session, complaint_pk, form=data, errors={error.field: error.reason},
            flash="The resolution was not queued: see the field marked below.",
            flash_kind="error", status_code=400,
        )  # fmt: skip
    return go(request, f"/portal/complaints/{complaint_pk}?done=written")


@post(
    "/complaints/{complaint_pk:uuid}/resolutions/{resolution_id:uuid}/settle",
    opt=page(Scope.COMPLAINTS_WRITE),
    status_code=200,
)
async def settle_resolution(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    complaint_pk: FromPath[UUID],
    resolution_id: FromPath[UUID],
    data: URLEncodedBody[SettleForm],
) -> Response[Any]:
    """Settle a resolution in doubt as the person found it in HPMS (audited by the service)."""
    try:
        await doubt_review.settle_by_hand(
            db_session, principal_of(request), complaint_pk=complaint_pk,
            resolution_id=resolution_id, outcome=data.outcome,
        )  # fmt: skip
    except Invalid as error:
        return await _detail(
            request, db_session, complaint_pk, flash=f"Not settled: {error.reason}.",
            flash_kind="error", status_code=400,
        )  # fmt: skip
    return go(request, f"/portal/complaints/{complaint_pk}?done=settled")


PAGES: list[Any] = [
    complaints_page, complaints_csv, beneficiary_search, complaint_page, write_resolution,
    settle_resolution,
]  # fmt: skip
