"""/api/v1/webhooks: endpoints, their secrets, messages, attempts, resend, recover, test."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.guards import scope
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core.errors import documented
from hub.webhooks import replay, repository, service
from hub.webhooks.models import MessageStatus
from hub.webhooks.schemas import (
    AttemptView,
    EndpointCreate,
    EndpointUpdate,
    EndpointView,
    EndpointWithSecret,
    MessageView,
    Recover,
    RecoverResult,
    RotateSecret,
    TestSend,
)

MANAGE = scope(Scope.WEBHOOKS_MANAGE)


def _rules(state: State) -> service.UrlRules:
    return service.UrlRules.from_settings(state.settings)


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post("/endpoints", opt=MANAGE, responses=documented(400, 401, 403))
    async def create_endpoint(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        data: JSONBody[EndpointCreate],
    ) -> EndpointWithSecret:
        """Register a receiver; the response carries its signing secret this one time."""
        endpoint, secret = await service.create_endpoint(
            db_session, principal, data=data, rules=_rules(state)
        )
        return EndpointWithSecret(endpoint=EndpointView.of(endpoint), secret=secret)

    @get("/endpoints", opt=MANAGE, responses=documented(401, 403))
    async def list_endpoints(
        self, db_session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> list[EndpointView]:
        found = await repository.list_endpoints(db_session, principal.tenant)
        return [EndpointView.of(e) for e in found]

    @get("/endpoints/{endpoint_id:uuid}", opt=MANAGE, responses=documented(401, 403, 404))
    async def get_endpoint(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        endpoint_id: FromPath[UUID],
    ) -> EndpointView:
        return EndpointView.of(
            await repository.get_endpoint(db_session, principal.tenant, endpoint_id)
        )

    @patch("/endpoints/{endpoint_id:uuid}", opt=MANAGE, responses=documented(400, 401, 403, 404))
    async def update_endpoint(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        endpoint_id: FromPath[UUID],
        data: JSONBody[EndpointUpdate],
    ) -> EndpointView:
        endpoint = await service.update_endpoint(
            db_session, principal, endpoint_id=endpoint_id, changes=data, rules=_rules(state)
        )
        return EndpointView.of(endpoint)

    @delete(
        "/endpoints/{endpoint_id:uuid}",
        opt=MANAGE,
        status_code=204,
        responses=documented(401, 403, 404),
    )
    async def delete_endpoint(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        endpoint_id: FromPath[UUID],
    ) -> None:
        await service.delete_endpoint(db_session, principal, endpoint_id=endpoint_id)

    @post(
        "/endpoints/{endpoint_id:uuid}/rotate-secret",
        opt=MANAGE,
        status_code=200,
        responses=documented(400, 401, 403, 404),
    )
    async def rotate_secret(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        endpoint_id: FromPath[UUID],
        data: JSONBody[RotateSecret | None] = None,
    ) -> EndpointWithSecret:
        """A new secret, shown this once; the old one is signed with until the grace ends."""
        grace = _rules(state).grace(data.grace_seconds if data is not None else None)
        endpoint, secret = await service.rotate_secret(
            db_session, principal, endpoint_id=endpoint_id, grace=grace
        )
        return EndpointWithSecret(endpoint=EndpointView.of(endpoint), secret=secret)

    @get(
        "/endpoints/{endpoint_id:uuid}/messages",
        opt=MANAGE,
        responses=documented(400, 401, 403, 404),
    )
    async def list_messages(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        endpoint_id: FromPath[UUID],
        status: Annotated[MessageStatus | None, QueryParameter()] = None,
        after: Annotated[UUID | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[MessageView]:
        """Messages oldest first; pass the last id seen as `after` to page."""
        await repository.get_endpoint(db_session, principal.tenant, endpoint_id)
        found = await repository.list_messages(
            db_session, principal.tenant, endpoint_id, status=status, after=after, limit=limit
        )
        return [MessageView.of(m) for m in found]

    @post(
        "/endpoints/{endpoint_id:uuid}/recover",
        opt=MANAGE,
        status_code=202,
        responses=documented(400, 401, 403, 404, 409),
    )
    async def recover(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        endpoint_id: FromPath[UUID],
        data: JSONBody[Recover],
    ) -> RecoverResult:
        """Send again every failed message of the endpoint created since `since` (and before
        `until`), oldest first, at most 10,000 at a time: `has_more` says the limit was
        reached, and the same request again sends the rest."""
        recovered = await replay.recover(
            db_session,
            principal.tenant,
            endpoint_id=endpoint_id,
            since=data.since,
            until=data.until,
        )
        return RecoverResult(resent=recovered.resent, has_more=recovered.has_more)

    @post(
        "/endpoints/{endpoint_id:uuid}/test",
        opt=MANAGE,
        status_code=202,
        responses=documented(400, 401, 403, 404, 409),
    )
    async def send_test(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        endpoint_id: FromPath[UUID],
        data: JSONBody[TestSend | None] = None,
    ) -> MessageView:
        """Send a `webhook.test` event to this endpoint only."""
        note = data.note if data is not None else TestSend().note
        message = await replay.send_test(
            db_session, principal.tenant, endpoint_id=endpoint_id, note=note
        )
        return MessageView.of(message)

    @get("/messages/{message_id:uuid}", opt=MANAGE, responses=documented(401, 403, 404))
    async def get_message(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        message_id: FromPath[UUID],
    ) -> MessageView:
        return MessageView.of(
            await repository.get_message(db_session, principal.tenant, message_id)
        )

    @get("/messages/{message_id:uuid}/attempts", opt=MANAGE, responses=documented(401, 403, 404))
    async def list_attempts(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        message_id: FromPath[UUID],
    ) -> list[AttemptView]:
        await repository.get_message(db_session, principal.tenant, message_id)
        found = await repository.list_attempts(db_session, principal.tenant, message_id)
        return [AttemptView.of(a) for a in found]

    @post(
        "/messages/{message_id:uuid}/resend",
        opt=MANAGE,
        status_code=202,
        responses=documented(401, 403, 404, 409),
    )
    async def resend(
        self,
        db_session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        message_id: FromPath[UUID],
    ) -> MessageView:
        """Send the message again, same `webhook-id`, with a fresh retry schedule."""
        message = await replay.resend(db_session, principal.tenant, message_id=message_id)
        return MessageView.of(message)
