"""Request and response bodies of the webhooks API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from hub.core.text import NO_NUL
from hub.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=NO_NUL)]
Description = Annotated[str, msgspec.Meta(max_length=500, pattern=NO_NUL)]
EventPattern = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Contract = Annotated[str, msgspec.Meta(min_length=5, max_length=5)]
Concurrency = Annotated[int, msgspec.Meta(ge=1, le=64)]
RatePerSecond = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
GraceSeconds = Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)]
Moment = Annotated[datetime, msgspec.Meta(tz=True)]  # with its UTC offset: no guessing


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    event_types: Annotated[list[EventPattern], msgspec.Meta(min_length=1, max_length=50)]
    description: Description = ""
    contracts: Annotated[list[Contract], msgspec.Meta(max_length=500)] = []
    include_phi: bool = False
    is_ordered: bool = False
    max_concurrency: Concurrency = 8
    rate_limit_per_second: RatePerSecond = 100


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields given change."""

    url: Url | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    event_types: (
        Annotated[list[EventPattern], msgspec.Meta(min_length=1, max_length=50)] | msgspec.UnsetType
    ) = msgspec.UNSET
    contracts: Annotated[list[Contract], msgspec.Meta(max_length=500)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    include_phi: bool | msgspec.UnsetType = msgspec.UNSET
    is_enabled: bool | msgspec.UnsetType = msgspec.UNSET
    is_ordered: bool | msgspec.UnsetType = msgspec.UNSET
    max_concurrency: Concurrency | msgspec.UnsetType = msgspec.UNSET
    rate_limit_per_second: RatePerSecond | msgspec.UnsetType = msgspec.UNSET


class RotateSecret(msgspec.Struct, forbid_unknown_fields=True):
    # How long the old secret stays valid (and signed with); the operator's default if absent.
    grace_seconds: GraceSeconds | None = None


class Recover(msgspec.Struct, forbid_unknown_fields=True):
    since: Moment
    until: Moment | None = None


class TestSend(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)] = "a test event from CTM Hub"


class EndpointView(msgspec.Struct):
    id: UUID
    url: str
    description: str
    event_types: list[str]
    contracts: list[str]
    is_enabled: bool
    include_phi: bool
    is_ordered: bool
    max_concurrency: int
    rate_limit_per_second: int
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointView:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            contracts=list(endpoint.contracts),
            is_enabled=endpoint.is_enabled,
            include_phi=endpoint.include_phi,
            is_ordered=endpoint.is_ordered,
            max_concurrency=endpoint.max_concurrency,
            rate_limit_per_second=endpoint.rate_limit_per_second,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            failing_since=endpoint.failing_since,
            disabled_at=endpoint.disabled_at,
            disabled_reason=endpoint.disabled_reason,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class EndpointWithSecret(msgspec.Struct):
    endpoint: EndpointView
    secret: str  # `whsec_…`, shown this once


class MessageView(msgspec.Struct):
    id: UUID
    endpoint_id: UUID
    event_id: UUID
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    created_at: datetime

    @classmethod
    def of(cls, message: WebhookMessage) -> MessageView:
        return cls(
            id=message.id,
            endpoint_id=message.endpoint_id,
            event_id=message.event_id,
            event_type=message.event_type,
            status=message.status.value,
            attempts=message.attempts,
            next_attempt_at=message.next_attempt_at,
            last_attempt_at=message.last_attempt_at,
            delivered_at=message.delivered_at,
            last_error=message.last_error,
            created_at=message.created_at,
        )


class AttemptView(msgspec.Struct):
    id: UUID
    message_id: UUID
    number: int
    status_code: int | None
    duration_ms: int
    response_body: str | None
    error_class: str | None
    is_success: bool
    created_at: datetime

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> AttemptView:
        return cls(
            id=attempt.id,
            message_id=attempt.message_id,
            number=attempt.number,
            status_code=attempt.status_code,
            duration_ms=attempt.duration_ms,
            response_body=attempt.response_body,
            error_class=attempt.error_class,
            is_success=attempt.is_success,
            created_at=attempt.created_at,
        )


class RecoverResult(msgspec.Struct):
    resent: int
    has_more: bool = False  # the limit was reached: the same request again sends the rest
