"""The alerts page: unresolved alerts first, filters, acknowledging (the API's 403 and 409
rules), resolved ones on request, other tenants' alerts as 404; the alert email choice."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import (
    Alert,
    AlertKind,
    AlertPreference,
    AlertRecipient,
    AlertState,
    EmailMode,
    Severity,
    SubjectType,
)
from hub.audit.models import AuditEntry
from hub.auth.models import Role
from hub.core.db import utcnow
from hub.core.ids import TenantID
from tests.portal.support import csrf_of, post_form, sign_in
from tests.support import Member, make_member, make_tenant


def an_alert(
    tenant_id: TenantID,
    label: str,
    *,
    kind: AlertKind = AlertKind.SYNC_FAILING,
    severity: Severity = Severity.WARNING,
    state: AlertState = AlertState.OPEN,
    hours_ago: int = 1,
) -> Alert:
    now = utcnow()
    return Alert(
        tenant_id=tenant_id, kind=kind, severity=severity, state=state,
        dedupe_key=f"{kind.value}:{label}", subject_type=SubjectType.CONTRACT,
        subject_id=uuid4(), subject_label=label, message=f"{label} needs a look",
        next_action="check it", details={}, raised_at=now - timedelta(hours=hours_ago),
        resolved_at=now if state is AlertState.RESOLVED else None,
        resolved_reason="cleared" if state is AlertState.RESOLVED else None,
    )  # fmt: skip


class Plan:
    def __init__(self, admin: Member, caseworker: Member, viewer: Member, alerts: dict[str, Alert]):
        self.admin, self.caseworker, self.viewer, self.alerts = admin, caseworker, viewer, alerts


@pytest.fixture
async def plan(session: AsyncSession) -> Plan:
    tenant = await make_tenant(session, "acme", "Acme Health")
    admin = await make_member(session, tenant, email="admin@acme.test", role=Role.ADMIN)
    caseworker = await make_member(session, tenant, email="cw@acme.test", role=Role.CASEWORKER)
    viewer = await make_member(session, tenant, email="viewer@acme.test", role=Role.VIEWER)
    tid = admin.tenant_id
    alerts = {
        "acked": an_alert(tid, "H1111", state=AlertState.ACKNOWLEDGED, hours_ago=0),
        "open": an_alert(tid, "H2222", hours_ago=5),
        "critical": an_alert(
            tid, "KEY-CRIT", kind=AlertKind.KEY_INVALID, severity=Severity.CRITICAL, hours_ago=3
        ),
        "resolved": an_alert(tid, "H3333", state=AlertState.RESOLVED),
    }
    session.add_all(alerts.values())
    await session.flush()
    session.add(
        AlertRecipient(
            tenant_id=tid, alert_id=alerts["critical"].id, user_id=viewer.user.id,
            email="viewer@acme.test", reason="technical_poc",
        )
    )  # fmt: skip
    await session.commit()
    return Plan(admin, caseworker, viewer, alerts)


def labels_in_order(page: httpx.Response, *labels: str) -> list[str]:
    return sorted((lb for lb in labels if lb in page.text), key=page.text.index)


class TestAlertsPage:
    async def test_shows_unresolved_open_ones_first_and_not_resolved_ones(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        page = await portal.get("/portal/alerts")
        assert page.status_code == 200
        # Open ones (newest first) before the acknowledged one, though it is the newest.
        assert labels_in_order(page, "H1111", "H2222", "KEY-CRIT") == ["KEY-CRIT", "H2222", "H1111"]
        assert "H3333" not in page.text
        assert 'class="pill bad">critical' in page.text
        assert "key.invalid" in page.text
        assert 'href="/portal/alerts/preferences"' in page.text

    async def test_resolved_ones_on_request(self, portal: httpx.AsyncClient, plan: Plan) -> None:
        await sign_in(portal, "admin@acme.test")
        page = await portal.get("/portal/alerts", params={"state": "resolved"})
        assert "H3333" in page.text
        assert "cleared" in page.text
        assert "H2222" not in page.text

    async def test_filters_by_kind(self, portal: httpx.AsyncClient, plan: Plan) -> None:
        await sign_in(portal, "admin@acme.test")
        page = await portal.get("/portal/alerts", params={"kind": "key.invalid"})
        assert "KEY-CRIT" in page.text
        assert "H2222" not in page.text

    async def test_an_unknown_state_is_a_400_naming_the_field(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        page = await portal.get("/portal/alerts", params={"state": "sleeping"})
        assert page.status_code == 400
        assert "state: must be one of open, acknowledged, resolved" in page.text

    async def test_the_header_badge_counts_and_links_here(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "viewer@acme.test")
        page = await portal.get("/portal/alerts")
        assert 'href="/portal/alerts" data-testid="alerts-badge"' in page.text
        assert "Alerts <b>2</b>" in page.text  # the open ones


class TestAcknowledge:
    async def test_admin_acknowledges_and_the_page_shows_it(
        self, portal: httpx.AsyncClient, plan: Plan, session: AsyncSession
    ) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        alert = plan.alerts["critical"]
        answer = await post_form(portal, f"/portal/alerts/{alert.id}/acknowledge", csrf)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/portal/alerts"
        page = await portal.get("/portal/alerts")
        assert "Alerts <b>1</b>" in page.text  # the header's open count dropped
        entries = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == "alert.acknowledged")
        )
        assert [e.target_id for e in entries] == [str(alert.id)]

    async def test_htmx_swaps_the_row(self, portal: httpx.AsyncClient, plan: Plan) -> None:
        csrf = await sign_in(portal, "cw@acme.test")
        alert = plan.alerts["open"]
        answer = await portal.post(
            f"/portal/alerts/{alert.id}/acknowledge",
            headers={"HX-Request": "true", "X-CSRF-Token": csrf},
        )
        assert answer.status_code == 200
        assert answer.text.lstrip().startswith("<tr")
        assert "acknowledged" in answer.text
        assert 'data-testid="acknowledge"' not in answer.text

    async def test_caseworker_may_not_acknowledge_a_critical_one(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "cw@acme.test")
        page = await portal.get("/portal/alerts")
        assert page.text.count('data-testid="acknowledge"') == 1  # the open warning only
        alert = plan.alerts["critical"]
        answer = await post_form(portal, f"/portal/alerts/{alert.id}/acknowledge", csrf)
        assert answer.status_code == 403
        assert "only the people this alert is for" in answer.text

    async def test_a_viewer_may_acknowledge_one_sent_to_them(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        page = await portal.get("/portal/alerts")
        assert page.text.count('data-testid="acknowledge"') == 1
        alert = plan.alerts["critical"]
        answer = await post_form(portal, f"/portal/alerts/{alert.id}/acknowledge", csrf)
        assert answer.status_code == 303
        refused = await post_form(
            portal, f"/portal/alerts/{plan.alerts['open'].id}/acknowledge", csrf
        )
        assert refused.status_code == 403

    async def test_a_resolved_alert_is_a_409(self, portal: httpx.AsyncClient, plan: Plan) -> None:
        csrf = await sign_in(portal, "admin@acme.test")
        alert = plan.alerts["resolved"]
        answer = await post_form(portal, f"/portal/alerts/{alert.id}/acknowledge", csrf)
        assert answer.status_code == 409
        assert "already resolved" in answer.text

    async def test_another_tenants_alert_is_a_404(
        self, portal: httpx.AsyncClient, plan: Plan, session: AsyncSession
    ) -> None:
        other = await make_tenant(session, "other")
        theirs = an_alert(TenantID(other.id), "H9999")
        session.add(theirs)
        await session.commit()
        csrf = await sign_in(portal, "admin@acme.test")
        answer = await post_form(portal, f"/portal/alerts/{theirs.id}/acknowledge", csrf)
        assert answer.status_code == 404
        page = await portal.get("/portal/alerts")
        assert "H9999" not in page.text

    async def test_without_the_csrf_token_it_is_refused(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        await sign_in(portal, "admin@acme.test")
        alert = plan.alerts["open"]
        answer = await portal.post(f"/portal/alerts/{alert.id}/acknowledge", data={})
        assert answer.status_code == 403
        page = await portal.get("/portal/alerts", params={"state": "open"})
        assert "H2222" in page.text


class TestPreferences:
    async def test_saves_the_choice_and_shows_it(
        self, portal: httpx.AsyncClient, plan: Plan, session: AsyncSession
    ) -> None:
        await sign_in(portal, "viewer@acme.test")
        page = await portal.get("/portal/alerts/preferences")
        assert 'value="immediate" checked' in page.text
        saved = await post_form(
            portal, "/portal/alerts/preferences", csrf_of(page), {"email": "digest"}
        )
        assert saved.status_code == 200
        assert "Your alert email choice is saved." in saved.text
        again = await portal.get("/portal/alerts/preferences")
        assert 'value="digest" checked' in again.text
        stored = await session.scalar(
            select(AlertPreference).where(AlertPreference.user_id == plan.viewer.user.id)
        )
        assert stored is not None
        assert stored.email_mode is EmailMode.DIGEST

    async def test_an_unknown_choice_names_the_field(
        self, portal: httpx.AsyncClient, plan: Plan
    ) -> None:
        csrf = await sign_in(portal, "viewer@acme.test")
        answer = await post_form(portal, "/portal/alerts/preferences", csrf, {"email": "hourly"})
        assert answer.status_code == 400
        assert 'data-testid="error-email">email: must be one of immediate, digest, off' in (
            answer.text
        )
