"""/api/v1/events: the tenant's outbox as a feed, for integrators that poll."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.errors import documented
from hub.core.text import NO_NUL
from hub.events import service
from hub.events.schemas import EventView


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @get("/", opt=scope(Scope.TENANT_ADMIN), responses=documented(400, 401, 403))
    async def list_events(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        type_prefix: Annotated[
            str | None, QueryParameter(name="type", max_length=100, pattern=NO_NUL)
        ] = None,
        after: Annotated[UUID | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[EventView]:
        """Events oldest first; pass the last id seen as `after` to page."""
        found = await service.list_events(
            db_session, principal.tenant, type_prefix=type_prefix, after=after, limit=limit
        )
        return [EventView.of(e) for e in found]

    @get("/{event_id:uuid}", opt=scope(Scope.TENANT_ADMIN), responses=documented(401, 403, 404))
    async def get_event(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        event_id: FromPath[UUID],
    ) -> EventView:
        return EventView.of(await service.get_event(db_session, principal.tenant, event_id))
