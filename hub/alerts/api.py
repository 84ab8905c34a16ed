"""/api/v1/alerts: the tenant's alerts, acknowledging one, and the caller's email choice."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import repository, service
from hub.alerts.models import AlertKind, AlertRecipient, AlertState
from hub.alerts.schemas import AlertView, PreferencesPut, PreferencesView, SummaryView
from hub.auth.guards import ANY_SCOPE, scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.errors import documented


class AlertController(Controller):
    path = "/alerts"
    tags = ["alerts"]

    @get("/", opt=scope(Scope.ALERTS_READ), responses=documented(400, 401, 403))
    async def list_alerts(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        alert_state: Annotated[AlertState | None, QueryParameter(name="state")] = None,
        kind: Annotated[AlertKind | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[AlertView]:
        """The tenant's alerts, newest first; filter by `state` and `kind`."""
        found = await repository.list_alerts(
            db_session, principal.tenant, state=alert_state, kind=kind, limit=limit
        )
        recipients: dict[UUID, list[AlertRecipient]] = defaultdict(list)
        for row in await repository.recipients_of(
            db_session, principal.tenant, [a.id for a in found]
        ):
            recipients[row.alert_id].append(row)
        return [AlertView.of(a, recipients[a.id]) for a in found]

    @get("/summary", opt=scope(Scope.ALERTS_READ), responses=documented(401, 403))
    async def summary(
        self, db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> SummaryView:
        """Unresolved alerts of the tenant by state, and how many are critical."""
        counts = await repository.unresolved_counts(db_session, principal.tenant)
        return SummaryView(**counts)

    @post(
        "/{alert_id:uuid}/acknowledge",
        opt=scope(Scope.ALERTS_READ),
        status_code=200,
        responses=documented(401, 403, 404, 409),
    )
    async def acknowledge(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        alert_id: FromPath[UUID],
    ) -> AlertView:
        """Mark the alert seen; it stays until its condition clears (resolved: 409). Its
        recipients and tenant admins may (caseworkers too, unless it is critical): 403."""
        alert = await service.acknowledge(db_session, principal, alert_id=alert_id)
        rows = await repository.recipients_of(db_session, principal.tenant, [alert.id])
        return AlertView.of(alert, rows)

    @get("/preferences", opt=scope(ANY_SCOPE), responses=documented(401))
    async def get_preferences(
        self, db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> PreferencesView:
        """The caller's own alert email choice: immediate, digest (daily) or off."""
        return PreferencesView(await service.email_mode_of(db_session, principal.user_id))

    @put("/preferences", opt=scope(ANY_SCOPE), responses=documented(400, 401))
    async def put_preferences(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        data: JSONBody[PreferencesPut],
    ) -> PreferencesView:
        mode = await service.set_email_mode(db_session, principal.user_id, data.email)
        return PreferencesView(mode)
