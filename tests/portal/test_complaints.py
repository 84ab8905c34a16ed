"""The complaints pages: the list and its filters, one complaint with its PHI (audited as
the API audits it), its history and resolutions, writing a resolution, settling one in doubt;
who may do what, and what another tenant's caller sees."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import AuditEntry
from hub.audit.reads import PHI_READ
from hub.auth.models import Role
from hub.complaints import portal as complaints_portal
from hub.complaints.models import Complaint, ComplaintChange, Resolution, ResolutionState
from hub.complaints.resolutions import SUMMARY_FIELD
from hub.core import crypto
from hub.core.db import utcnow
from hub.core.ids import TenantID, uuid7
from tests.integration.complaints.support import IMMEDIATE, URGENT, make_complaint
from tests.portal.support import csrf_of, post_form, sign_in
from tests.support import Member, make_member, make_tenant

BENE = "1EG4-TE5-MK72"  # make_complaint's beneficiary
CANARY = "Canary PHI summary"  # and its PHI summary


def day(offset: int) -> date:
    return utcnow().date() + timedelta(days=offset)


@dataclass
class Plan:
    caseworker: Member
    viewer: Member
    admin: Member
    overdue: Complaint  # H1234, urgent, due 13 days ago
    soon: Complaint  # S5678, immediate need, due today
    later: Complaint  # H1234, urgent, due in 6 days
    queued: Complaint  # H1234, a resolution on its way
    foreign: Complaint  # another tenant's

    @property
    def tenant_id(self) -> TenantID:
        return self.caseworker.tenant_id


@pytest.fixture
async def plan(session: AsyncSession) -> Plan:
    tenant = await make_tenant(session, "plan-a", "Plan A")
    caseworker = await make_member(session, tenant, email="case@plan-a.test", role=Role.CASEWORKER)
    viewer = await make_member(session, tenant, email="view@plan-a.test", role=Role.VIEWER)
    admin = await make_member(session, tenant, email="admin@plan-a.test", role=Role.ADMIN)
    other = await make_tenant(session, "plan-b", "Plan B")
    await make_member(session, other, email="case@plan-b.test", role=Role.CASEWORKER)
    tid = TenantID(tenant.id)
    made = Plan(
        caseworker, viewer, admin,
        overdue=await make_complaint(
            session, tid, complaint_id="CTM-1001", received=day(-21), assigned=day(-20)
        ),
        soon=await make_complaint(
            session, tid, complaint_id="CTM-2002", contract="S5678", issue_level=IMMEDIATE,
            received=day(-2), assigned=day(-2),
        ),
        later=await make_complaint(session, tid, complaint_id="CTM-3003", received=day(-1)),
        queued=await make_complaint(
            session, tid, complaint_id="CTM-4004", received=day(-3),
            state=ResolutionState.QUEUED,
        ),
        foreign=await make_complaint(session, TenantID(other.id), complaint_id="CTM-9009"),
    )  # fmt: skip
    await session.commit()
    return made


def ids_listed(page: httpx.Response) -> list[str]:
    return re.findall(r'<a href="/portal/complaints/[0-9a-f-]{36}">([^<]+)</a>', page.text)


async def phi_reads(session: AsyncSession, tenant_id: TenantID) -> Sequence[AuditEntry]:
    return (
        await session.scalars(
            select(AuditEntry)
            .where(AuditEntry.tenant_id == tenant_id, AuditEntry.action == PHI_READ)
            .order_by(AuditEntry.seq)
            .execution_options(populate_existing=True)
        )
    ).all()


async def resolutions_of(session: AsyncSession, complaint: Complaint) -> Sequence[Resolution]:
    return (
        await session.scalars(
            select(Resolution)
            .where(Resolution.complaint_pk == complaint.id)
            .execution_options(populate_existing=True)
        )
    ).all()


class TestList:
    async def test_lists_by_due_date_with_status_and_resolution(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get("/portal/complaints")
        assert page.status_code == 200
        assert ids_listed(page) == ["CTM-1001", "CTM-2002", "CTM-4004", "CTM-3003"]
        rows = page.text.split('data-testid="complaint-row"')[1:]
        assert '<span class="pill bad" data-testid="status">overdue</span>' in rows[0]
        assert '<span class="pill warn" data-testid="status">due soon</span>' in rows[1]
        assert '<span class="pill ok" data-testid="status">resolved</span>' in rows[2]
        assert '<td data-testid="resolution-state">queued</td>' in rows[2]
        assert "Immediate Need" in rows[1]
        assert "S5678" in rows[1]
        assert f"{plan.overdue.due_date:%Y-%m-%d}" in rows[0]

    async def test_shows_no_phi_and_no_other_tenants_complaint(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get("/portal/complaints")
        assert CANARY not in page.text
        assert BENE not in page.text
        assert "CTM-9009" not in page.text

    async def test_the_overviews_links_work(self, portal: httpx.AsyncClient, plan: Plan) -> None:
        await sign_in(portal, "view@plan-a.test")
        assert ids_listed(await portal.get("/portal/complaints?status=overdue")) == ["CTM-1001"]
        assert ids_listed(await portal.get("/portal/complaints?resolution=queued")) == ["CTM-4004"]

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ("contract=s5678", ["CTM-2002"]),
            ("issue_level=Immediate+Need", ["CTM-2002"]),
            (f"issue_level={URGENT}&status=open", ["CTM-3003"]),
            ("complaint_id=300", ["CTM-3003"]),
            ("complaint_id=ctm-", ["CTM-1001", "CTM-2002", "CTM-4004", "CTM-3003"]),
            ("complaint_id=%25", []),  # a wildcard is a character like any other
            ("status=due_soon", ["CTM-2002"]),
            ("environment=production", []),
        ],
    )
    async def test_filters(
        self, portal: httpx.AsyncClient, plan: Plan, query: str, expected: list[str]
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get(f"/portal/complaints?{query}")
        assert page.status_code == 200
        assert ids_listed(page) == expected
        if not expected:
            assert "No complaint matches these filters." in page.text

    async def test_the_form_keeps_the_filters_chosen(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get("/portal/complaints?status=overdue&contract=H1234")
        assert '<option value="overdue" selected>' in page.text
        assert "<option selected>H1234</option>" in page.text

    @pytest.mark.parametrize(
        ("query", "field", "words"),
        [
            ("status=late", "status", "must be one of open, due_soon"),
            ("resolution=gone", "resolution", "must be one of none, queued"),
            ("contract=ZZZ", "contract", "is not a contract number"),
        ],
    )
    async def test_a_bad_filter_names_its_field(
        self, portal: httpx.AsyncClient, plan: Plan, query: str, field: str, words: str
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get(f"/portal/complaints?{query}")
        assert page.status_code == 400
        errors = page.text.split('data-testid="filter-errors"')[1].split("</ul>")[0]
        assert f"<b>{field}</b>" in errors
        assert words in errors

    async def test_pages_through_by_due_date(
        self, portal: httpx.AsyncClient, plan: Plan, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(complaints_portal, "PAGE_SIZE", 3)
        await sign_in(portal, "view@plan-a.test")
        first = await portal.get("/portal/complaints?contract=&status=")
        assert ids_listed(first) == ["CTM-1001", "CTM-2002", "CTM-4004"]
        assert 'data-testid="previous"' not in first.text
        [after] = re.findall(r'href="([^"]+)"[^>]*data-testid="next"', first.text)
        assert after == "/portal/complaints?offset=3"
        second = await portal.get(after)
        assert ids_listed(second) == ["CTM-3003"]
        assert 'data-testid="next"' not in second.text
        assert 'href="/portal/complaints" hx-get="/portal/complaints"' in second.text

    async def test_an_htmx_request_gets_the_results_alone(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        part = await portal.get("/portal/complaints?status=overdue", headers={"HX-Request": "true"})
        assert part.status_code == 200
        assert "<html" not in part.text
        assert 'data-testid="filters"' not in part.text
        assert ids_listed(part) == ["CTM-1001"]
        bad = await portal.get("/portal/complaints?status=late", headers={"HX-Request": "true"})
        assert bad.status_code == 200  # htmx swaps only a 2xx: the message is in the results
        assert "must be one of" in bad.text

    async def test_menu_shows_complaints_and_a_signed_out_visitor_signs_in(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        answer = await portal.get("/portal/complaints?status=overdue")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/portal/login?next=/portal/complaints")
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get("/portal/complaints")
        assert '<a href="/portal/complaints" class="current" aria-current="page">' in page.text


class TestDetail:
    async def test_shows_fields_due_basis_phi_and_records_the_read(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get(f"/portal/complaints/{plan.overdue.id}")
        assert page.status_code == 200
        assert "Complaint CTM-1001" in page.text
        assert "standard: assignment date + 7 calendar days" in page.text
        assert f"{plan.overdue.due_date:%Y-%m-%d}" in page.text
        assert "COMPLAINT_STATUS" in page.text  # the file's other columns
        assert CANARY in page.text
        assert BENE in page.text
        [entry] = await phi_reads(session, plan.tenant_id)
        assert entry.details["view"] == "complaint"
        assert entry.details["complaint_id"] == "CTM-1001"
        assert entry.target_id == str(plan.overdue.id)
        assert entry.actor_label == "view@plan-a.test"
        assert CANARY not in str(entry.details)
        assert BENE not in str(entry.details)

    async def test_history_names_columns_never_values(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        session.add(
            ComplaintChange(
                tenant_id=plan.tenant_id, complaint_pk=plan.later.id, kind="updated",
                changed=["COMPLAINT_STATUS", "BENE_IDENTIFIER"], sync_run_id=uuid7(),
            )
        )  # fmt: skip
        await session.commit()
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get(f"/portal/complaints/{plan.later.id}")
        history = page.text.split('data-testid="history"')[1]
        assert "<td>created</td>" in history  # first seen stands in for a creation row
        assert "<td>updated</td><td>COMPLAINT_STATUS, BENE_IDENTIFIER</td>" in history
        assert BENE not in history
        assert CANARY not in history

    async def test_another_tenants_complaint_is_a_404_page_and_reads_nothing(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        await sign_in(portal, "case@plan-a.test")
        page = await portal.get(f"/portal/complaints/{plan.foreign.id}")
        assert page.status_code == 404
        assert "<html" in page.text
        assert CANARY not in page.text
        missing = await portal.get(f"/portal/complaints/{uuid7()}")
        assert missing.status_code == 404
        assert await phi_reads(session, plan.tenant_id) == []

    async def test_a_viewer_sees_no_form_a_caseworker_does(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        viewed = await portal.get(f"/portal/complaints/{plan.overdue.id}")
        assert 'data-testid="write-resolution"' not in viewed.text
        assert "/resolutions" not in viewed.text
        await portal.post("/portal/logout", data={"_csrf": csrf_of(viewed)})
        await sign_in(portal, "case@plan-a.test")
        worked = await portal.get(f"/portal/complaints/{plan.overdue.id}")
        assert 'data-testid="write-resolution"' in worked.text
        assert 'name="idempotency_key" value="portal:' in worked.text

    async def test_a_complaint_with_a_resolution_on_its_way_offers_no_form(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "case@plan-a.test")
        page = await portal.get(f"/portal/complaints/{plan.queued.id}")
        assert 'data-testid="write-resolution"' not in page.text
        assert "A resolution is on its way to CMS" in page.text

    async def test_a_rejected_resolution_shows_why_and_its_read_is_recorded(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        cipher = await crypto.cipher_for(session, plan.tenant_id)
        rejected = Resolution(
            id=uuid7(), tenant_id=plan.tenant_id, complaint_pk=plan.overdue.id,
            contract="H1234", complaint_id="CTM-1001", resolution_date=day(-2),
            state=ResolutionState.REJECTED, idempotency_key="k-rejected",
            cms_errors=["RESOLUTION_DATE: before the received date"], decided_at=utcnow(),
        )  # fmt: skip
        rejected.summary = cipher.seal(
            "Called the member back.", field=SUMMARY_FIELD, row=rejected.id
        )
        session.add(rejected)
        plan.overdue.resolution_state = ResolutionState.REJECTED
        await session.commit()
        await sign_in(portal, "view@plan-a.test")
        page = await portal.get(f"/portal/complaints/{plan.overdue.id}")
        shown = page.text.split('data-testid="resolutions"')[1]
        assert "Called the member back." in shown
        assert 'data-testid="resolution-pill">rejected</span>' in shown
        assert "RESOLUTION_DATE: before the received date" in shown
        views = [e.details["view"] for e in await phi_reads(session, plan.tenant_id)]
        assert views == ["complaint", "resolutions"]


class TestWriteResolution:
    async def form(self, portal: httpx.AsyncClient, complaint: Complaint) -> dict[str, str]:
        page = await portal.get(f"/portal/complaints/{complaint.id}")
        [key] = re.findall(r'name="idempotency_key" value="([^"]+)"', page.text)
        return {
            "_csrf": csrf_of(page), "idempotency_key": key,
            "resolution_date": day(0).isoformat(), "summary": "Refilled the prescription.",
            "casework_notes": "Pharmacy confirmed by phone.", "complainant_satisfied": "Y",
            "resolution_notification": "Phone",
        }  # fmt: skip

    async def test_queues_it_and_the_page_shows_it_queued(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        await sign_in(portal, "case@plan-a.test")
        form = await self.form(portal, plan.overdue)
        path = f"/portal/complaints/{plan.overdue.id}"
        answer = await portal.post(f"{path}/resolutions", data=form)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{path}?done=written"
        [stored] = await resolutions_of(session, plan.overdue)
        assert stored.state is ResolutionState.QUEUED
        assert stored.complainant_satisfied == "Y"
        assert stored.submitted_by == plan.caseworker.user.id
        assert stored.idempotency_key == form["idempotency_key"]
        page = await portal.get(answer.headers["location"])
        assert "Resolution queued" in page.text
        assert 'data-testid="resolution-pill">queued</span>' in page.text
        assert "Refilled the prescription." in page.text
        assert '<span class="pill ok" data-testid="status">resolved</span>' in page.text
        listed = await portal.get("/portal/complaints?resolution=queued")
        assert ids_listed(listed) == ["CTM-1001", "CTM-4004"]

    async def test_the_same_form_sent_twice_queues_one(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        await sign_in(portal, "case@plan-a.test")
        form = await self.form(portal, plan.later)
        for _ in range(2):
            answer = await portal.post(f"/portal/complaints/{plan.later.id}/resolutions", data=form)
            assert answer.status_code == 303
        assert len(await resolutions_of(session, plan.later)) == 1

    @pytest.mark.parametrize(
        ("change", "field", "words"),
        [
            ({"resolution_date": ""}, "resolution_date", "is required"),
            ({"resolution_date": "31/12/2026"}, "resolution_date", "is not a date"),
            ({"resolution_date": "2999-01-01"}, "resolution_date", "is in the future"),
            ({"summary": "   "}, "summary", "is required"),
            ({"summary": "x" * 4001}, "summary", "at most 4,000 allowed"),
            ({"complainant_satisfied": "maybe"}, "complainant_satisfied", "must be Y, N or blank"),
            ({"resolution_notification": "p" * 201}, "resolution_notification", "longer than"),
        ],
    )
    async def test_a_broken_rule_is_named_beside_its_field_and_the_form_kept(
        self,
        portal: httpx.AsyncClient,
        session: AsyncSession,
        plan: Plan,
        change: dict[str, str],
        field: str,
        words: str,
    ) -> None:
        await sign_in(portal, "case@plan-a.test")
        form = await self.form(portal, plan.later) | change
        page = await portal.post(f"/portal/complaints/{plan.later.id}/resolutions", data=form)
        assert page.status_code == 400
        [error] = re.findall(rf'data-testid="error-{field}">([^<]+)<', page.text)
        assert words in error
        assert "Pharmacy confirmed by phone." in page.text  # what was typed is kept
        assert f'value="{form["idempotency_key"]}"' in page.text
        assert await resolutions_of(session, plan.later) == []

    async def test_a_viewer_may_not_write_one(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "view@plan-a.test")
        answer = await post_form(
            portal, f"/portal/complaints/{plan.later.id}/resolutions", csrf,
            {"resolution_date": day(0).isoformat(), "summary": "Done."},
        )  # fmt: skip
        assert answer.status_code == 403
        assert "Your role (viewer) may not open this page" in answer.text
        assert await resolutions_of(session, plan.later) == []

    async def test_without_the_csrf_token_it_is_refused(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        await sign_in(portal, "case@plan-a.test")
        form = await self.form(portal, plan.later)
        del form["_csrf"]
        answer = await portal.post(f"/portal/complaints/{plan.later.id}/resolutions", data=form)
        assert answer.status_code == 403
        assert await resolutions_of(session, plan.later) == []

    async def test_another_tenants_complaint_is_a_404(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "case@plan-a.test")
        answer = await post_form(
            portal, f"/portal/complaints/{plan.foreign.id}/resolutions", csrf,
            {"resolution_date": day(0).isoformat(), "summary": "Done."},
        )  # fmt: skip
        assert answer.status_code == 404
        assert await resolutions_of(session, plan.foreign) == []

    async def test_one_already_on_its_way_is_a_409_page(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "case@plan-a.test")
        answer = await post_form(
            portal, f"/portal/complaints/{plan.queued.id}/resolutions", csrf,
            {"resolution_date": day(0).isoformat(), "summary": "Done."},
        )  # fmt: skip
        assert answer.status_code == 409
        assert "already on its way to CMS" in answer.text


class TestSettle:
    async def in_doubt(self, session: AsyncSession, plan: Plan, hours: int = 30) -> Resolution:
        cipher = await crypto.cipher_for(session, plan.tenant_id)
        since = utcnow() - timedelta(hours=hours)
        resolution = Resolution(
            id=uuid7(), tenant_id=plan.tenant_id, complaint_pk=plan.overdue.id,
            contract="H1234", complaint_id="CTM-1001", resolution_date=day(-1),
            state=ResolutionState.UPLOADING, idempotency_key="k-doubt", upload_batch=uuid7(),
            uploaded_at=since, in_doubt_since=since, note="in doubt: the upload did not finish",
        )  # fmt: skip
        resolution.summary = cipher.seal("Sent.", field=SUMMARY_FIELD, row=resolution.id)
        session.add(resolution)
        plan.overdue.resolution_state = ResolutionState.UPLOADING
        await session.commit()
        return resolution

    async def test_a_caseworker_settles_one_in_doubt_and_it_is_audited(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        resolution = await self.in_doubt(session, plan)
        await sign_in(portal, "case@plan-a.test")
        path = f"/portal/complaints/{plan.overdue.id}"
        page = await portal.get(path)
        assert 'data-testid="settle"' in page.text
        assert "in doubt" in page.text
        answer = await post_form(
            portal, f"{path}/resolutions/{resolution.id}/settle", csrf_of(page),
            {"outcome": "accepted"},
        )  # fmt: skip
        assert answer.status_code == 303
        await session.refresh(resolution)
        assert resolution.state is ResolutionState.ACCEPTED
        audited = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "resolution.settled")
        )
        assert audited == 1
        after = await portal.get(answer.headers["location"])
        assert "Resolution settled" in after.text
        assert 'data-testid="resolution-pill">accepted</span>' in after.text
        assert 'data-testid="settle"' not in after.text

    async def test_too_early_to_resend_is_a_409_and_a_bad_outcome_is_named(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        resolution = await self.in_doubt(session, plan, hours=0)
        csrf = await sign_in(portal, "case@plan-a.test")
        path = f"/portal/complaints/{plan.overdue.id}/resolutions/{resolution.id}/settle"
        early = await post_form(portal, path, csrf, {"outcome": "resend"})
        assert early.status_code == 409
        assert "CMS may still be storing this upload" in early.text
        bad = await post_form(portal, path, csrf, {"outcome": "maybe"})
        assert bad.status_code == 400
        assert "Not settled: must be one of accepted, resend, release." in bad.text

    async def test_a_viewer_sees_no_settle_buttons_and_may_not_settle(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        resolution = await self.in_doubt(session, plan)
        csrf = await sign_in(portal, "view@plan-a.test")
        page = await portal.get(f"/portal/complaints/{plan.overdue.id}")
        assert 'data-testid="settle"' not in page.text
        answer = await post_form(
            portal,
            f"/portal/complaints/{plan.overdue.id}/resolutions/{resolution.id}/settle",
            csrf,
            {"outcome": "accepted"},
        )
        assert answer.status_code == 403
        await session.refresh(resolution)
        assert resolution.state is ResolutionState.UPLOADING


class TestNeedsAPerson:
    async def test_lists_rejected_and_settleable_doubt_only_and_the_form_keeps_it(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        cipher = await crypto.cipher_for(session, plan.tenant_id)
        plan.later.resolution_state = ResolutionState.REJECTED
        for complaint, hours in ((plan.overdue, 2), (plan.soon, 0)):  # 0: CMS may be storing it
            since = utcnow() - timedelta(hours=hours)
            doubt = Resolution(
                id=uuid7(), tenant_id=plan.tenant_id, complaint_pk=complaint.id,
                contract=complaint.contract, complaint_id=complaint.complaint_id,
                resolution_date=day(-1), state=ResolutionState.UPLOADING,
                idempotency_key=f"k-{complaint.complaint_id}", uploaded_at=since,
                in_doubt_since=since,
            )  # fmt: skip
            doubt.summary = cipher.seal("Sent.", field=SUMMARY_FIELD, row=doubt.id)
            session.add(doubt)
            complaint.resolution_state = ResolutionState.UPLOADING
        await session.commit()
        await sign_in(portal, "view@plan-a.test")
        everything = await portal.get("/portal/complaints")
        [link] = re.findall(r'<a href="([^"]+)" data-testid="needs-person"', everything.text)
        page = await portal.get(link)
        assert page.status_code == 200
        assert ids_listed(page) == ["CTM-1001", "CTM-3003"]
        assert 'name="needs_person" value="true" checked' in page.text
        assert 'data-testid="needs-person" aria-current="page"' in page.text
        narrowed = await portal.get(f"{link}&contract=H1234&complaint_id=3003")
        assert ids_listed(narrowed) == ["CTM-3003"]
        assert 'value="true" checked' not in everything.text
        assert ids_listed(everything) == ["CTM-1001", "CTM-2002", "CTM-4004", "CTM-3003"]

    async def test_its_pages_keep_the_filter(
        self,
        portal: httpx.AsyncClient,
        session: AsyncSession,
        plan: Plan,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(complaints_portal, "PAGE_SIZE", 1)
        plan.overdue.resolution_state = ResolutionState.REJECTED
        plan.later.resolution_state = ResolutionState.REJECTED
        await session.commit()
        await sign_in(portal, "view@plan-a.test")
        first = await portal.get("/portal/complaints?needs_person=true")
        assert ids_listed(first) == ["CTM-1001"]
        [after] = re.findall(r'href="([^"]+)"[^>]*data-testid="next"', first.text)
        assert after == "/portal/complaints?needs_person=true&amp;offset=1"
        assert ids_listed(await portal.get(after.replace("&amp;", "&"))) == ["CTM-3003"]


class TestBeneficiarySearch:
    async def test_finds_their_complaints_records_the_search_and_echoes_no_phi(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        listing = await portal.get("/portal/complaints")
        form = listing.text.split('data-testid="beneficiary-search"')[1].split("</form>")[0]
        assert 'name="_csrf"' in form
        assert 'autocomplete="off"' in form
        found = await post_form(
            portal, "/portal/complaints/beneficiary", csrf_of(listing),
            {"beneficiary": BENE.lower()},
        )  # fmt: skip
        assert found.status_code == 200
        assert ids_listed(found) == ["CTM-1001", "CTM-2002", "CTM-4004", "CTM-3003"]
        assert "CTM-9009" not in found.text  # the same identifier in another tenant
        assert "4 complaint(s) of the beneficiary entered." in found.text
        assert BENE not in found.text.upper()
        assert CANARY not in found.text
        [entry] = await phi_reads(session, plan.tenant_id)
        assert entry.details == {"view": "beneficiary_search", "matches": 4}
        assert entry.actor_label == "view@plan-a.test"
        assert entry.target_id is None

    async def test_no_match_says_so_and_is_recorded(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "case@plan-a.test")
        missed = await post_form(
            portal, "/portal/complaints/beneficiary", csrf, {"beneficiary": "1EG4-TE5-MK73"}
        )
        assert missed.status_code == 200
        assert ids_listed(missed) == []
        assert "No complaint of this beneficiary." in missed.text
        [entry] = await phi_reads(session, plan.tenant_id)
        assert entry.details == {"view": "beneficiary_search", "matches": 0}

    async def test_an_htmx_search_gets_the_results_alone(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "view@plan-a.test")
        part = await post_form(
            portal, "/portal/complaints/beneficiary", csrf, {"beneficiary": BENE},
            headers={"HX-Request": "true"},
        )  # fmt: skip
        assert part.status_code == 200
        assert "<html" not in part.text
        assert ids_listed(part) == ["CTM-1001", "CTM-2002", "CTM-4004", "CTM-3003"]

    @pytest.mark.parametrize(
        ("typed", "words"),
        [("   ", "must not be blank"), ("x" * 101, "is not an identifier"), ("a\x00b", "is not")],
    )
    async def test_a_bad_identifier_is_named_and_nothing_is_recorded(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan, typed: str, words: str
    ) -> None:
        csrf = await sign_in(portal, "view@plan-a.test")
        page = await post_form(
            portal, "/portal/complaints/beneficiary", csrf, {"beneficiary": typed}
        )
        assert page.status_code == 400
        errors = page.text.split('data-testid="filter-errors"')[1].split("</ul>")[0]
        assert "<b>beneficiary</b>" in errors
        assert words in errors
        assert await phi_reads(session, plan.tenant_id) == []

    async def test_without_the_csrf_token_it_is_refused_and_not_recorded(
        self, portal: httpx.AsyncClient, session: AsyncSession, plan: Plan
    ) -> None:
        await sign_in(portal, "view@plan-a.test")
        answer = await portal.post("/portal/complaints/beneficiary", data={"beneficiary": BENE})
        assert answer.status_code == 403
        assert await phi_reads(session, plan.tenant_id) == []
