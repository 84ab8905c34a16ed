"""/api/v1/complaints: list and read complaints, their history, and write resolutions."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.reads import PhiView, record_phi_read
from hub.auth.guards import scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.complaints import doubt_review, repository, resolutions
from hub.complaints.repository import BENE_MAX_CHARS, ComplaintFilter
from hub.complaints.resolutions import ResolutionInput, open_resolutions
from hub.complaints.schemas import (
    BeneficiarySearch,
    ChangeView,
    ComplaintDetail,
    ComplaintSummary,
    ResolutionCreate,
    ResolutionSettle,
    ResolutionView,
    SettledView,
    due_basis_note,
)
from hub.complaints.service import Deadlines, open_phi, status_of
from hub.core import crypto, csvexport
from hub.core.db import utcnow
from hub.core.errors import documented
from hub.core.text import NO_NUL
from hub.syncs.service import SyncPolicy

READ = scope(Scope.COMPLAINTS_READ)
WRITE = scope(Scope.COMPLAINTS_WRITE)
REPLAYED = 200
# OFFSET is a 64-bit integer in both databases: a larger one is refused here, not by them.
MAX_OFFSET = 2**63 - 1
REPLAYED_RESPONSE = ResponseSpec(
    ResolutionView,
    generate_examples=False,
    description="The same idempotency key and body again: the first resolution, unchanged",
)

# The list's filters, as the schema describes them (the portal's list has the same).
ISSUE_LEVEL = QueryParameter(
    max_length=100, pattern=NO_NUL,
    description="Only this issue level, exactly as CMS's file writes it (e.g. Immediate Need)",
)  # fmt: skip
COMPLAINT_ID = QueryParameter(
    max_length=64, pattern=NO_NUL,
    description="Only complaints whose complaint ID holds this text, any case",
)  # fmt: skip
RESOLUTION = QueryParameter(
    description="Only complaints whose resolution is in this state: none, queued, uploading, "
    "accepted or rejected",
)
NEEDS_PERSON = QueryParameter(
    description="true: only what a caseworker must act on: a resolution CMS rejected (and CMS "
    "does not show the complaint resolved), or an upload in doubt for longer than CMS takes "
    "to store a file, which a person who checked HPMS settles by hand",
)
SEARCH_DESCRIPTION = (
    "A beneficiary's complaints, found by exact identifier (any case) through its blind "
    "index, by due date and without PHI (the list's fields). A POST, so that the identifier "
    "stays out of URLs and access logs. Each search is audited as a PHI read: who searched "
    "and how many were found, never the identifier."
)

EXPORT_DESCRIPTION = (
    "Every complaint the list's filters match (the list's `status`, `environment`, "
    "`contract`, `due_before`, `issue_level`, `complaint_id`, `resolution`, `needs_person`), "
    "in the list's order, as a CSV file: UTF-8 with a byte-order mark (for Excel), a header "
    "row, then one row per complaint with the list's fields, the due basis, CMS's resolution "
    "date and the date of the latest resolution written here. No PHI. At most 100,000 rows: "
    "a longer export ends with a line starting `# cut at`. Cells a spreadsheet would run as "
    "a formula (starting with =, +, -, @, tab or CR) begin with a `'`. Named "
    "`complaints-<tenant>-<YYYYMMDD>.csv`."
)


def _deadlines(state: State) -> Deadlines:
    return SyncPolicy.from_settings(state.settings).deadlines


async def _listed(
    session: AsyncSession, principal: Principal, state: State, where: ComplaintFilter
) -> list[ComplaintSummary]:
    """The list's answer; a search by beneficiary puts whoever made it on record."""
    deadlines, now = _deadlines(state), utcnow()
    found = await repository.list_complaints(
        session, principal.tenant, where, now=now, deadlines=deadlines
    )
    if where.bene_index is not None:
        await record_phi_read(state.db, principal, PhiView.BENEFICIARY_SEARCH, matches=len(found))
    return [ComplaintSummary.of(c, status_of(c, now=now, deadlines=deadlines)) for c in found]


class ComplaintController(Controller):
    path = "/"  # handlers name whole paths: /complaints.csv sits beside /complaints
    tags = ["complaints"]

    @get("/complaints", opt=READ, responses=documented(400, 401, 403))
    async def list_complaints(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        status: FromQuery[str | None] = None,
        environment: FromQuery[str | None] = None,
        contract: FromQuery[str | None] = None,
        due_before: FromQuery[date | None] = None,
        issue_level: Annotated[str | None, ISSUE_LEVEL] = None,
        complaint_id: Annotated[str | None, COMPLAINT_ID] = None,
        resolution: Annotated[str | None, RESOLUTION] = None,
        needs_person: Annotated[bool, NEEDS_PERSON] = False,
        beneficiary: Annotated[str | None, QueryParameter(max_length=BENE_MAX_CHARS)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> list[ComplaintSummary]:
        """Complaints by due date, without PHI. `environment` (sandbox or production) keeps
        one CMS environment's; `issue_level` one issue level, exactly as CMS writes it;
        `complaint_id` those whose complaint ID holds the text, any case; `resolution` those
        whose resolution is in one state (none, queued, uploading, accepted, rejected);
        `needs_person=true` those a caseworker must act on (a resolution CMS rejected, or
        an upload in doubt long enough to be settled by hand). `beneficiary` finds a
        beneficiary's complaints by exact identifier through its blind index (audited);
        prefer `POST /api/v1/complaints/search`, which keeps the identifier out of URLs."""
        tenant_id = principal.tenant
        bene_index = None
        if beneficiary is not None:
            bene_index = await repository.beneficiary_index(db_session, tenant_id, beneficiary)
        where = repository.complaint_filter(
            status=status, environment=environment, contract=contract, due_before=due_before,
            issue_level=issue_level, complaint_id=complaint_id, resolution=resolution,
            needs_person=needs_person, bene_index=bene_index, limit=limit, offset=offset,
        )  # fmt: skip
        return await _listed(db_session, principal, state, where)

    @get(
        "/complaints.csv",
        opt=READ,
        media_type=csvexport.MEDIA_TYPE,
        responses=documented(400, 401, 403),
        description=EXPORT_DESCRIPTION,
    )
    async def export_complaints(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        status: FromQuery[str | None] = None,
        environment: FromQuery[str | None] = None,
        contract: FromQuery[str | None] = None,
        due_before: FromQuery[date | None] = None,
        issue_level: Annotated[str | None, ISSUE_LEVEL] = None,
        complaint_id: Annotated[str | None, COMPLAINT_ID] = None,
        resolution: Annotated[str | None, RESOLUTION] = None,
        needs_person: Annotated[bool, NEEDS_PERSON] = False,
    ) -> Stream:
        """Every complaint the list's filters match, as a CSV file (see EXPORT_DESCRIPTION)."""
        where = repository.complaint_filter(
            status=status, environment=environment, contract=contract, due_before=due_before,
            issue_level=issue_level, complaint_id=complaint_id, resolution=resolution,
            needs_person=needs_person,
        )  # fmt: skip
        return await repository.export_file(
            db_session, state.db, principal.tenant, where, deadlines=_deadlines(state)
        )

    @post(
        "/complaints/search",
        opt=READ,
        status_code=200,
        description=SEARCH_DESCRIPTION,
        responses=documented(400, 401, 403),
    )
    async def search_complaints(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        data: JSONBody[BeneficiarySearch],
    ) -> list[ComplaintSummary]:
        """A beneficiary's complaints by identifier, audited (see SEARCH_DESCRIPTION)."""
        bene_index = await repository.beneficiary_index(
            db_session, principal.tenant, data.beneficiary
        )
        where = repository.complaint_filter(bene_index=bene_index, limit=data.limit)
        return await _listed(db_session, principal, state, where)

    @get("/complaints/{complaint_id:uuid}", opt=READ, responses=documented(401, 403, 404))
    async def get_complaint(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        complaint_id: FromPath[UUID],
    ) -> ComplaintDetail:
        """One complaint with its PHI opened, its derived status, due date and due basis."""
        complaint = await repository.get_complaint(db_session, principal.tenant, complaint_id)
        deadlines = _deadlines(state)
        cipher = await crypto.cipher_for(db_session, principal.tenant)
        phi = open_phi(cipher, complaint)
        await record_phi_read(
            state.db, principal, PhiView.COMPLAINT,
            target_type="complaint", target_id=complaint.id, contract=complaint.contract,
            environment=complaint.environment.value, complaint_id=complaint.complaint_id,
        )  # fmt: skip
        return ComplaintDetail(
            complaint=ComplaintSummary.of(
                complaint, status_of(complaint, now=utcnow(), deadlines=deadlines)
            ),
            due_basis_note=due_basis_note(complaint, deadlines),
            fields=dict(complaint.fields), layout=complaint.layout,
            api_key_id=complaint.api_key_id, last_sync_run_id=complaint.last_sync_run_id,
            phi=phi,
        )  # fmt: skip

    @get("/complaints/{complaint_id:uuid}/history", opt=READ, responses=documented(401, 403, 404))
    async def get_history(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        complaint_id: FromPath[UUID],
    ) -> list[ChangeView]:
        """What changed and which sync saw it: column names, never values."""
        history = await repository.list_history(db_session, principal.tenant, complaint_id)
        return [ChangeView(h.kind, h.changed, h.sync_run_id, h.at) for h in history]

    @get(
        "/complaints/{complaint_id:uuid}/resolutions", opt=READ, responses=documented(401, 403, 404)
    )
    async def list_resolutions(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        complaint_id: FromPath[UUID],
    ) -> list[ResolutionView]:
        """Every resolution written for the complaint, rejected ones kept as history."""
        found = await repository.list_resolutions(db_session, principal.tenant, complaint_id)
        opened = await open_resolutions(db_session, principal.tenant, list(found))
        if opened:
            await record_phi_read(
                state.db, principal, PhiView.RESOLUTIONS,
                target_type="complaint", target_id=complaint_id, resolutions=len(opened),
            )  # fmt: skip
        return [ResolutionView.of(o) for o in opened]

    @post(
        "/complaints/{complaint_id:uuid}/resolutions",
        opt=WRITE,
        status_code=201,
        responses={REPLAYED: REPLAYED_RESPONSE, **documented(400, 401, 403, 404, 409)},
    )
    async def write_resolution(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        complaint_id: FromPath[UUID],
        data: JSONBody[ResolutionCreate],
        idempotency_key: Annotated[str | None, HeaderParameter(name="Idempotency-Key")] = None,
    ) -> Response[ResolutionView]:
        """Queue a resolution for CMS (201). Repeating a request with the same idempotency key
        and the same body answers 200 with the first resolution; another body answers 409."""
        written = await resolutions.write_resolution(
            db_session, principal, complaint_pk=complaint_id,
            data=ResolutionInput(
                resolution_date=data.resolution_date, summary=data.summary,
                casework_notes=data.casework_notes,
                complainant_satisfied=data.complainant_satisfied,
                resolution_notification=data.resolution_notification,
            ),
            idempotency_header=idempotency_key, idempotency_body=data.idempotency_key,
        )  # fmt: skip
        [opened] = await open_resolutions(db_session, principal.tenant, [written.resolution])
        return Response(ResolutionView.of(opened), status_code=201 if written.is_new else REPLAYED)

    @post(
        "/complaints/{complaint_id:uuid}/resolutions/{resolution_id:uuid}/settle",
        opt=WRITE,
        status_code=200,
        responses=documented(400, 401, 403, 404, 409),
    )
    async def settle_resolution(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        complaint_id: FromPath[UUID],
        resolution_id: FromPath[UUID],
        data: JSONBody[ResolutionSettle],
    ) -> SettledView:
        """Settle a resolution whose upload is in doubt, as you found it in HPMS (audited):
        `accepted` (CMS has it), `resend` (it does not: upload it again) or `release` (it
        does not, and it is not to be sent: write a new one). 409 for one not in doubt, and
        for `resend`/`release` while CMS may still be storing the upload."""
        settled = await doubt_review.settle_by_hand(
            db_session, principal, complaint_pk=complaint_id, resolution_id=resolution_id,
            outcome=data.outcome,
        )  # fmt: skip
        return SettledView.of(settled)
