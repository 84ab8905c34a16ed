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
from hub.core.errors import Invalid, documented
from hub.core.text import NO_NUL
from hub.events import service
from hub.events.catalog import DOMAINS, is_subscribable
from hub.events.schemas import EventView


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @get("/", opt=scope(Scope.TENANT_ADMIN), responses=documented(400, 401, 403))
    async def list_events(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        type_: Annotated[
            str | None, QueryParameter(name="type", max_length=100, pattern=NO_NUL)
        ] = None,
        after: Annotated[UUID | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[EventView]:
        """Events oldest first; `type` is one exact type, `domain.*` or `*` (as a webhook
        endpoint's `event_types`); pass the last id seen as `after` to page."""
        found = await service.list_events(
            db_session, principal.tenant, type_pattern=_type_pattern(type_), after=after,
            limit=limit,
        )  # fmt: skip
        return [EventView.of(e) for e in found]

    @get("/{event_id:uuid}", opt=scope(Scope.TENANT_ADMIN), responses=documented(401, 403, 404))
    async def get_event(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        event_id: FromPath[UUID],
    ) -> EventView:
        return EventView.of(await service.get_event(db_session, principal.tenant, event_id))


def _type_pattern(raw: str | None) -> str | None:
    """The `type` filter checked against the catalog: a type or domain the hub never records
    could never match, and a bare prefix (`key.`) is no longer taken as one."""
    if not raw:
        return None
    if not is_subscribable(raw):
        domains = ", ".join(f"{d}.*" for d in sorted(DOMAINS))
        raise Invalid(
            "type",
            f"{raw} is no event type the hub records: give one type (complaint.created), "
            f"a domain ({domains}) or *; see README's event catalog",
        )
    return raw
