"""The alerts pages of the portal: the tenant's alerts (unresolved first), acknowledging
one, and the member's own alert email choice."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter, URLEncodedBody
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import repository, service
from hub.alerts.models import Alert, AlertKind, AlertRecipient, AlertState, EmailMode
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.errors import Invalid, choice
from hub.portal.web import Access, fragment, go, is_htmx, page, principal_of, render

LIMIT = 200
SEVERITY_PILL = {"critical": "bad", "warning": "warn", "info": ""}


class PreferencesForm(msgspec.Struct):
    email: str = ""


def _rows(
    principal: Principal, found: list[Alert], recipients: dict[UUID, list[AlertRecipient]]
) -> list[dict[str, Any]]:
    return [
        {
            "alert": alert,
            "pill": SEVERITY_PILL.get(alert.severity.value, ""),
            "may_acknowledge": alert.state is AlertState.OPEN
            and service.may_acknowledge(principal, alert, recipients[alert.id]),
        }
        for alert in found
    ]


async def _recipients(
    session: AsyncSession, principal: Principal, found: list[Alert]
) -> dict[UUID, list[AlertRecipient]]:
    by_alert: dict[UUID, list[AlertRecipient]] = defaultdict(list)
    for row in await repository.recipients_of(session, principal.tenant, [a.id for a in found]):
        by_alert[row.alert_id].append(row)
    return by_alert


@get("/alerts", opt=page(Scope.ALERTS_READ))
async def alerts_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    alert_state: Annotated[str, QueryParameter(name="state")] = "",  # `state` is reserved
    kind: FromQuery[str] = "",
) -> Template:
    """Unresolved alerts, open ones first (a state filter shows that state, resolved too)."""
    principal = principal_of(request)
    chosen_state, chosen_kind, error = None, None, ""
    try:
        chosen_state = choice("state", alert_state, AlertState)
        chosen_kind = choice("kind", kind, AlertKind)
    except Invalid as invalid:
        error = invalid.detail
    found = list(
        await repository.list_alerts(
            db_session, principal.tenant, state=chosen_state, kind=chosen_kind,
            is_unresolved=chosen_state is None, limit=LIMIT,
        )
    )  # fmt: skip
    found.sort(key=lambda a: a.state is not AlertState.OPEN)  # stable: newest first in each
    recipients = await _recipients(db_session, principal, found)
    return await render(
        request, db_session, "alerts/list.html", title="Alerts",
        status_code=400 if error else 200, rows=_rows(principal, found, recipients),
        state=alert_state, kind=kind, states=list(AlertState), kinds=list(AlertKind),
        flash=error or None, flash_kind="error", limit=LIMIT,
    )  # fmt: skip


@post("/alerts/{alert_id:uuid}/acknowledge", opt=page(Scope.ALERTS_READ), status_code=200)
async def acknowledge(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    alert_id: FromPath[UUID],
) -> Response[Any]:
    """Acknowledge (the service's 403 and 409 rules); htmx swaps the row in place."""
    principal = principal_of(request)
    alert = await service.acknowledge(db_session, principal, alert_id=alert_id)
    if not is_htmx(request):
        return go(request, "/portal/alerts")
    recipients = await _recipients(db_session, principal, [alert])
    return fragment(request, "alerts/_row.html", row=_rows(principal, [alert], recipients)[0])


@get("/alerts/preferences", opt=page(Access.MEMBER))
async def preferences_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    principal = principal_of(request)
    mode = await service.email_mode_of(db_session, principal.user_id)
    return await render(
        request, db_session, "alerts/preferences.html", title="Alert emails",
        mode=mode.value, modes=list(EmailMode), error="",
    )  # fmt: skip


@post("/alerts/preferences", opt=page(Access.MEMBER), status_code=200)
async def save_preferences(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[PreferencesForm],
) -> Template:
    principal = principal_of(request)
    try:
        mode = choice("email", data.email, EmailMode)
        if mode is None:
            raise Invalid("email", "choose one of " + ", ".join(EmailMode))
    except Invalid as invalid:
        current = await service.email_mode_of(db_session, principal.user_id)
        return await render(
            request, db_session, "alerts/preferences.html", title="Alert emails",
            status_code=400, mode=current.value, modes=list(EmailMode), error=invalid.reason,
        )  # fmt: skip
    await service.set_email_mode(db_session, principal.user_id, mode)
    return await render(
        request, db_session, "alerts/preferences.html", title="Alert emails",
        mode=mode.value, modes=list(EmailMode), error="", flash="Your alert email choice is saved.",
    )  # fmt: skip


PAGES: list[Any] = [alerts_page, acknowledge, preferences_page, save_preferences]
