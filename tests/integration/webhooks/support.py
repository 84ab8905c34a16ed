"""Webhook test helpers: endpoints, a real receiver that verifies with the reference
`standardwebhooks` library, and a harness that runs attempts on a controllable clock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from hub.auth.models import ROLE_SCOPES
from hub.auth.principal import Principal, member_principal
from hub.core.db import Database, utcnow
from hub.core.ids import TenantID
from hub.events.models import Event
from hub.events.service import EventBus, Subscription, dispatch, record_event
from hub.webhooks import delivery, drain, service
from hub.webhooks.guard import AddressPolicy
from hub.webhooks.limits import LocalLimiter
from hub.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from hub.webhooks.schemas import EndpointCreate
from tests.support import Member

DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
ALL_HTTP_HOSTS = frozenset({"127.0.0.1", "localhost", "receiver.example"})


def principal_of(member: Member) -> Principal:
    return member_principal(
        user_id=member.user.id,
        email=member.user.email,
        tenant_id=member.tenant.id,
        role=member.membership.role,
        scopes=ROLE_SCOPES[member.membership.role],
    )


def rules(*, allow_private: bool = True) -> service.UrlRules:
    return service.UrlRules(
        http_hosts=ALL_HTTP_HOSTS,
        policy=AddressPolicy(allow_private),
        secret_grace=timedelta(hours=24),
    )


def policy(
    *,
    allow_private: bool = True,
    schedule: tuple[int, ...] = DEFAULT_SCHEDULE,
    disable_after: timedelta = timedelta(days=5),
    timeout: float = 5.0,
) -> delivery.DeliveryPolicy:
    return delivery.DeliveryPolicy(
        retry_delays=schedule,
        disable_after=disable_after,
        timeout_seconds=timeout,
        http_hosts=ALL_HTTP_HOSTS,
        address_policy=AddressPolicy(allow_private),
    )


async def make_endpoint(
    session: AsyncSession,
    owner: Member,
    *,
    url: str,
    event_types: list[str] | None = None,
    **options: Any,
) -> tuple[WebhookEndpoint, str]:
    data = EndpointCreate(url=url, event_types=event_types or ["*"], **options)
    return await service.create_endpoint(session, principal_of(owner), data=data, rules=rules())


async def make_delivered_message(session: AsyncSession, owner: Member) -> WebhookMessage:
    endpoint, _ = await make_endpoint(session, owner, url="https://receiver.example/hook")
    event = record_event(session, owner.tenant_id, "complaint.created", {"complaint_id": "C1"})
    await session.flush()
    message = WebhookMessage(
        tenant_id=owner.tenant_id,
        endpoint_id=endpoint.id,
        event_id=event.id,
        event_type=event.type,
        status=MessageStatus.SUCCEEDED,
        attempts=1,
        delivered_at=utcnow(),
    )
    session.add(message)
    await session.flush()
    return message


@dataclass
class Received:
    message_id: str
    payload: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1. Every request is verified with `standardwebhooks`
    against each secret in `secrets` (all must verify); `script` answers in turn."""

    secrets: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    default_status: int = 200
    reply_headers: dict[str, str] = field(default_factory=dict)
    reply_body: str = "ok"
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # requests that did not verify
    hits: int = 0
    delay: float = 0.0  # seconds each request takes
    in_flight: int = 0
    most_in_flight: int = 0  # requests in flight at once, at most
    handler: Callable[[web.Request], Any] | None = None
    runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.handler is not None:
            return await self.handler(request)  # type: ignore[no-any-return]
        status = self.script.pop(0) if self.script else self.default_status
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if 200 <= status < 300:
            try:
                for secret in self.secrets:
                    Webhook(secret).verify(body, headers)
            except Exception as error:
                self.refused.append(type(error).__name__)
                return web.Response(status=401, text="signature")
            self.received.append(Received(headers["webhook-id"], json.loads(body), headers))
        return web.Response(status=status, text=self.reply_body, headers=self.reply_headers)

    def ids(self) -> list[str]:
        return [r.message_id for r in self.received]


class Harness:
    """Runs the drainer in-process, like the drain job does, on a clock the test moves."""

    def __init__(self, db: Database, http: aiohttp.ClientSession, **policy_options: Any):
        self.db = db
        self.http = http
        self.policy = policy(**policy_options)
        self.limiter = LocalLimiter()
        self.now = utcnow()
        self.bus = EventBus(
            [
                Subscription(
                    "*", delivery.fan_out, "webhooks.fan_out", batch_handler=delivery.fan_out_many
                )
            ]
        )

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    @property
    def drainer(self) -> drain.Drainer:
        return drain.Drainer(self.policy, self.http, self.limiter)

    async def record(
        self, tenant: TenantID, type: str, payload: dict[str, Any], count: int = 1
    ) -> list[UUID]:
        async with self.db.transaction() as session:
            events = [record_event(session, tenant, type, dict(payload, n=n)) for n in range(count)]
        for event in events:
            async with self.db.transaction() as session:
                await dispatch(session, event.id, self.bus)
        # New messages are due at the real time they were made; the clock never runs behind.
        self.now = max(self.now, utcnow())
        return [e.id for e in events]

    async def claim(self, endpoint_id: UUID) -> drain.Claim:
        """Claim the endpoint's next batch in a transaction of its own (and send nothing)."""
        async with self.db.transaction() as session:
            return await drain.claim(
                session, endpoint_id, policy=self.policy, limiter=self.limiter, now=self.now
            )

    async def drain(self, endpoint_id: UUID) -> drain.Outcome:
        return await self.drainer.drain(self.db, endpoint_id, clock=lambda: self.now)

    async def due(self) -> list[UUID]:
        """Endpoints with a message due now."""
        async with self.db.transaction() as session:
            return list(
                (
                    await session.scalars(
                        select(WebhookMessage.endpoint_id)
                        .where(
                            WebhookMessage.status == MessageStatus.PENDING,
                            WebhookMessage.next_attempt_at <= self.now,
                        )
                        .distinct()
                    )
                ).all()
            )

    async def run_due(self) -> int:
        """Drain every endpoint with a message due now; returns the attempts sent."""
        sent = 0
        for endpoint_id in await self.due():
            sent += (await self.drain(endpoint_id)).sent
        return sent

    async def message(self, message_id: UUID) -> WebhookMessage:
        async with self.db.transaction() as session:
            found = await session.get(WebhookMessage, message_id)
            assert found is not None
            return found

    async def messages(self, endpoint_id: UUID) -> list[WebhookMessage]:
        async with self.db.transaction() as session:
            return list(
                (
                    await session.scalars(
                        select(WebhookMessage)
                        .where(WebhookMessage.endpoint_id == endpoint_id)
                        .order_by(WebhookMessage.event_id)
                    )
                ).all()
            )

    async def endpoint(self, endpoint_id: UUID) -> WebhookEndpoint:
        async with self.db.transaction() as session:
            found = await session.get(WebhookEndpoint, endpoint_id)
            assert found is not None
            return found

    async def events_of_type(self, tenant: TenantID, type: str) -> list[Event]:
        async with self.db.transaction() as session:
            statement = select(Event).where(Event.tenant_id == tenant, Event.type == type)
            return list((await session.scalars(statement)).all())


def at(now: datetime) -> str:
    return now.isoformat().replace("+00:00", "Z")


async def endpoint_for(
    db: Database, admin: Member, receiver: Receiver, **options: object
) -> tuple[WebhookEndpoint, str]:
    """An endpoint posting to `receiver` (made in a transaction of its own), whose secret
    the receiver then verifies signatures with; and that secret."""
    async with db.transaction() as session:
        endpoint, secret = await make_endpoint(session, admin, url=receiver.url, **options)
    receiver.secrets = [secret]
    return endpoint, secret
