"""Every page a person can reach works in a real browser, for every role: one tenant with
realistic data (a key with contracts, complaints in each state, a sync run with a quarantined
row, alerts, a webhook endpoint with messages and attempts, members, tokens, audit entries),
then each role signs in and follows every same-origin link from the menu and the pages."""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import Alert, AlertKind, AlertState, Severity, SubjectType
from hub.auth import service as auth
from hub.auth.models import Role
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.resolutions import SUMMARY_FIELD
from hub.core import crypto
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID, uuid7
from hub.keys import service as keys
from hub.keys.models import ApiKey
from hub.keys.schemas import KeyCreate, TechnicalPoc
from hub.settings import Settings
from hub.syncs import service as syncs
from hub.syncs.models import QuarantinedRow, RunOutcome, SyncRun
from hub.webhooks import replay
from hub.webhooks import service as webhooks
from hub.webhooks.models import MessageStatus, WebhookAttempt
from hub.webhooks.schemas import EndpointCreate
from tests.integration.complaints.support import IMMEDIATE, make_complaint
from tests.portal.support import LOOPBACK_RECEIVERS
from tests.support import PASSWORD, Member, make_member, make_tenant

pytestmark = pytest.mark.slow

OPERATOR = "ops@vendor.test"
PAGES_PER_ROLE = 60
SAME_SHAPE = 8  # pages of one route (ids and query values aside) visited per role
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RAW = re.compile(r"\{\{|\}\}|\{%|%\}|\bNone\b|\bundefined\b|\bNaN\b|\[object Object\]")
# What each role may not open (the page guard's 403), though it may know the address.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "admin": ("/console/",),
    "caseworker": ("/portal/webhooks", "/portal/members", "/portal/audit", "/console/"),
    "viewer": (
        "/portal/webhooks", "/portal/members", "/portal/audit", "/portal/webhooks/new",
        "/console/",
    ),
    "operator": (),
}  # fmt: skip
EMAILS = {
    "admin": "admin@acme.test",
    "caseworker": "case@acme.test",
    "viewer": "viewer@acme.test",
    "operator": OPERATOR,
}


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update=LOOPBACK_RECEIVERS)


@dataclass
class Seeded:
    admin: Member
    caseworker: Member
    viewer: Member
    complaints: dict[str, Complaint] = field(default_factory=dict)


def day(offset: int) -> date:
    return utcnow().date() + timedelta(days=offset)


async def a_key(session: AsyncSession, rp: Member) -> ApiKey:
    body = KeyCreate(
        environment="sandbox", key_id="ACME-KEY-0001", secret="s3cret-never-shown",
        hpms_user_id="RPUSER01", technical_poc=TechnicalPoc("Toni Tech", "toni@acme.test"),
        contracts=["H1234", "S5678"], verify=False, expected_rotation_on=day(20),
    )  # fmt: skip
    return await keys.create_key(session, rp.principal, data=body, verifier=None)


async def a_resolution(
    session: AsyncSession, complaint: Complaint, state: ResolutionState, **extra: Any
) -> None:
    cipher = await crypto.cipher_for(session, TenantID(complaint.tenant_id))
    resolution = Resolution(
        id=uuid7(), tenant_id=complaint.tenant_id, complaint_pk=complaint.id,
        contract=complaint.contract, complaint_id=complaint.complaint_id,
        resolution_date=day(-1), state=state, idempotency_key=f"k-{complaint.complaint_id}",
        complainant_satisfied="Y", **extra,
    )  # fmt: skip
    resolution.summary = cipher.seal(
        "Called the member back.", field=SUMMARY_FIELD, row=resolution.id
    )
    session.add(resolution)
    complaint.resolution_state = state
    await session.flush()


async def complaints_of_each_state(
    session: AsyncSession, tid: TenantID, key: ApiKey
) -> dict[str, Complaint]:
    made = {
        "overdue": await make_complaint(
            session, tid, complaint_id="CTM-LATE", received=day(-20), assigned=day(-20),
            api_key_id=key.id,
        ),
        "immediate": await make_complaint(
            session, tid, complaint_id="CTM-NOW", contract="S5678", issue_level=IMMEDIATE,
            received=day(0), api_key_id=key.id,
        ),
        "resolved": await make_complaint(
            session, tid, complaint_id="CTM-DONE", received=day(-9), api_key_id=key.id,
            cms_resolution_date=day(-2),
        ),
    }  # fmt: skip
    for state in ("queued", "rejected", "accepted", "doubt"):
        made[state] = await make_complaint(
            session, tid, complaint_id=f"CTM-{state.upper()}", received=day(-3), api_key_id=key.id
        )
    await a_resolution(session, made["queued"], ResolutionState.QUEUED)
    await a_resolution(
        session, made["rejected"], ResolutionState.REJECTED,
        cms_errors=["RESOLUTION_DATE: before the received date"], decided_at=utcnow(),
    )  # fmt: skip
    await a_resolution(session, made["accepted"], ResolutionState.ACCEPTED, decided_at=utcnow())
    since = utcnow() - timedelta(hours=30)
    await a_resolution(
        session, made["doubt"], ResolutionState.UPLOADING, upload_batch=uuid7(),
        uploaded_at=since, in_doubt_since=since, note="in doubt: the upload did not finish",
    )  # fmt: skip
    return made


async def a_sync_run(session: AsyncSession, key: ApiKey) -> None:
    now = utcnow()
    run = SyncRun(
        tenant_id=key.tenant_id, api_key_id=key.id, contract="H1234", trigger="schedule",
        window_start=day(-28), window_end=day(0), layout="v3", rows_read=12, rows_new=7,
        rows_changed=2, rows_unchanged=2, rows_quarantined=1,
        started_at=now - timedelta(minutes=1), finished_at=now, duration_ms=850,
        outcome=RunOutcome.SUCCEEDED,
    )  # fmt: skip
    failed = SyncRun(
        tenant_id=key.tenant_id, api_key_id=key.id, contract="S5678", trigger="manual",
        window_start=day(-28), window_end=day(0), started_at=now - timedelta(minutes=5),
        finished_at=now - timedelta(minutes=4), duration_ms=120, outcome=RunOutcome.FAILED,
        error="CMS answered 503",
    )  # fmt: skip
    session.add_all([run, failed])
    await session.flush()
    row = QuarantinedRow(
        tenant_id=key.tenant_id, sync_run_id=run.id, contract="H1234",
        file_name="H1234_20261128.csv", row_number=9, reason="received date is not a date",
    )  # fmt: skip
    row.raw = await crypto.seal(
        session, json.dumps(["PHI-CELL", "x"]), tenant=key.tenant_id, field=syncs.RAW_FIELD,
        row=row.id,
    )  # fmt: skip
    session.add(row)
    await session.flush()


def alerts_of(tid: TenantID, key: ApiKey) -> list[Alert]:
    now = utcnow()

    def alert(kind: AlertKind, severity: Severity, state: AlertState, label: str) -> Alert:
        return Alert(
            tenant_id=tid, kind=kind, severity=severity, state=state,
            dedupe_key=f"{kind.value}:{label}", subject_type=SubjectType.KEY,
            subject_id=key.id, subject_label=label, message=f"{label} needs a look",
            next_action="check it", details={}, raised_at=now - timedelta(hours=2),
            resolved_at=now if state is AlertState.RESOLVED else None,
            resolved_reason="cleared" if state is AlertState.RESOLVED else None,
        )  # fmt: skip

    return [
        alert(AlertKind.KEY_INVALID, Severity.CRITICAL, AlertState.OPEN, "ACME-KEY-0001"),
        alert(AlertKind.SYNC_FAILING, Severity.WARNING, AlertState.ACKNOWLEDGED, "S5678"),
        alert(AlertKind.KEY_ROTATION_DUE, Severity.INFO, AlertState.RESOLVED, "ACME-KEY-OLD"),
    ]


async def an_endpoint(session: AsyncSession, admin: Member, settings: Settings) -> None:
    endpoint, _ = await webhooks.create_endpoint(
        session, admin.principal, rules=webhooks.UrlRules.from_settings(settings),
        data=EndpointCreate(url="http://127.0.0.1:9/hook", event_types=["complaint.*"],
                            description="CRM"),
    )  # fmt: skip
    delivered = await replay.send_test(session, admin.tenant_id, endpoint_id=endpoint.id, note="a")
    failed = await replay.send_test(session, admin.tenant_id, endpoint_id=endpoint.id, note="b")
    delivered.status, delivered.attempts, delivered.delivered_at = (
        MessageStatus.SUCCEEDED,
        1,
        utcnow(),
    )
    failed.status, failed.attempts, failed.last_error = MessageStatus.FAILED, 2, "HTTP 500"
    for message, number, code in ((delivered, 1, 200), (failed, 1, 500), (failed, 2, 500)):
        session.add(
            WebhookAttempt(
                tenant_id=admin.tenant_id, message_id=message.id, endpoint_id=endpoint.id,
                number=number, status_code=code, duration_ms=42, response_body="ok",
                error_class=None if code == 200 else "HttpStatus", is_success=code == 200,
            )
        )  # fmt: skip
    await session.flush()


async def seed(committed_db: Database, settings: Settings) -> Seeded:
    """One tenant as a plan would have it after a few weeks, and an operator."""
    async with committed_db.transaction() as session:
        tenant = await make_tenant(session, "acme", "Acme Health")
        admin = await make_member(session, tenant, email=EMAILS["admin"], role=Role.ADMIN)
        caseworker = await make_member(
            session, tenant, email=EMAILS["caseworker"], role=Role.CASEWORKER
        )
        viewer = await make_member(session, tenant, email=EMAILS["viewer"], role=Role.VIEWER)
        await auth.create_user(session, email=OPERATOR, password=PASSWORD, is_operator=True)
        for number in ("H1234", "S5678"):
            await keys.add_contract(session, admin.principal, number=number)
        key = await a_key(session, caseworker)
        seeded = Seeded(admin, caseworker, viewer)
        seeded.complaints = await complaints_of_each_state(session, admin.tenant_id, key)
        await a_sync_run(session, key)
        session.add_all(alerts_of(admin.tenant_id, key))
        await an_endpoint(session, admin, settings)
        await make_tenant(session, "beta", "Beta Plan")  # the console lists more than one
    return seeded


# The crawl -------------------------------------------------------------------------------


@dataclass
class Visit:
    url: str
    status: int
    problems: list[str]
    expected: int | None = None  # the 403 of a page the role may not open, asked directly


def shape(url: str) -> str:
    parts = urlsplit(url)
    keys_ = sorted({pair.split("=")[0] for pair in parts.query.split("&") if pair})
    return UUID.sub("{id}", parts.path) + "?" + "&".join(keys_)


def worth_following(href: str, origin: str) -> bool:
    parts = urlsplit(href)
    if f"{parts.scheme}://{parts.netloc}" != origin:
        return False
    if not (parts.path.startswith("/portal") or parts.path.startswith("/console")):
        return False
    return not (parts.path.endswith(".csv") or "logout" in parts.path)


async def sign_in(page: Any, email: str) -> None:
    await page.goto("/portal/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    assert "/login" not in page.url, await page.content()


async def check_page(page: Any, url: str, problems: list[str]) -> Visit:
    """Open `url`; what the browser saw go wrong, and the answer's status."""
    problems.clear()
    answer = await page.goto(url)  # the load event: the page's own script and style are in
    status = answer.status if answer is not None else 0
    found = list(problems)
    if (
        await page.locator("header.top").count() != 1
        or await page.locator("main#content").count() != 1
    ):
        found.append("the layout (header.top, main#content) is missing")
    text = await page.inner_text("body")
    for raw in RAW.findall(text):
        found.append(f"raw text {raw!r} on the page")
    return Visit(url, status, found)


async def crawl(browser: Any, live_url: str, role: str) -> list[Visit]:
    context = await browser.new_context(base_url=live_url)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on(
        "response",
        lambda response: (
            problems.append(f"{response.status} {response.url}")
            if response.status >= 400 and response.request.resource_type != "document"
            else None
        ),
    )
    try:
        await sign_in(page, EMAILS[role])
        start = page.url
        seen, shapes, visits = {start}, {shape(start): 1}, list[Visit]()
        todo = deque([start])
        while todo and len(visits) < PAGES_PER_ROLE:
            url = todo.popleft()
            visit = await check_page(page, url, problems)
            visits.append(visit)
            if visit.status >= 400:
                continue
            hrefs: list[str] = await page.eval_on_selector_all(
                "a[href]", "els => els.map(e => e.href)"
            )
            for href in hrefs:
                href = href.split("#")[0]
                if href in seen or not worth_following(href, live_url):
                    continue
                seen.add(href)
                if shapes.get(shape(href), 0) >= SAME_SHAPE:
                    continue
                shapes[shape(href)] = shapes.get(shape(href), 0) + 1
                todo.append(href)
        for path in FORBIDDEN[role]:
            visit = await check_page(page, live_url + path, problems)
            visit.problems = [p for p in visit.problems if not p.startswith("403 ")]
            visit.expected = 403
            visits.append(visit)
    finally:
        await context.close()
    return visits


class TestCrawl:
    async def test_every_page_reachable_works_for_every_role(
        self, browser: Any, live_url: str, committed_db: Database, settings: Settings
    ) -> None:
        seeded = await seed(committed_db, settings)
        failures: list[str] = []
        crawled: dict[str, list[str]] = {}
        for role in ("admin", "caseworker", "viewer", "operator"):
            visits = await crawl(browser, live_url, role)
            crawled[role] = [
                urlsplit(v.url).path
                + (f"?{urlsplit(v.url).query}" if urlsplit(v.url).query else "")
                for v in visits
            ]
            for visit in visits:  # a link to a page the role may not open is a fault too
                if visit.expected is not None and visit.status != visit.expected:
                    failures.append(f"{role} {visit.url}: {visit.status}, not {visit.expected}")
                if visit.expected is None and not 200 <= visit.status < 400:
                    failures.append(f"{role} {visit.url}: {visit.status}")
                failures.extend(f"{role} {visit.url}: {p}" for p in visit.problems)
        print(json.dumps({role: len(urls) for role, urls in crawled.items()}))
        for role, urls in crawled.items():
            print(role, *urls, sep="\n  ")
        assert not failures, "\n".join(failures)
        # The crawl reached the data, not only the menu.
        assert any(str(seeded.complaints["rejected"].id) in url for url in crawled["viewer"])
        assert any("/portal/syncs/runs/" in url for url in crawled["caseworker"])
        assert any("/portal/webhooks/messages/" in url for url in crawled["admin"])
        assert any("/console/tenants/" in url for url in crawled["operator"])
