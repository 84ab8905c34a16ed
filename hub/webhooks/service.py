"""Endpoint management: create, change, delete, rotate the signing secret; who may do what."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit import service as audit
from hub.auth.models import Scope
from hub.auth.principal import Principal
from hub.core import crypto
from hub.core.db import utcnow
from hub.core.errors import Forbidden, Invalid
from hub.core.ids import TenantID
from hub.events.catalog import DOMAINS, is_subscribable
from hub.settings import Settings
from hub.tenants import service as tenants
from hub.webhooks import repository, signing
from hub.webhooks.guard import AddressPolicy, url_problem
from hub.webhooks.models import (
    PREVIOUS_SECRET_FIELD,
    SECRET_FIELD,
    MessageStatus,
    WebhookEndpoint,
    WebhookMessage,
)
from hub.webhooks.schemas import EndpointCreate, EndpointUpdate

EVENT_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.([a-z][a-z0-9_]*|\*))*)$")
CONTRACT = re.compile(r"^[HRSEFX9][0-9]{4}$")


@dataclass(frozen=True, slots=True)
class UrlRules:
    """What the operator allows as a receiver URL."""

    http_hosts: frozenset[str]
    policy: AddressPolicy
    secret_grace: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlRules:
        return cls(
            http_hosts=settings.webhook_http_hosts,
            policy=AddressPolicy(settings.webhook_allow_private_networks),
            secret_grace=timedelta(hours=settings.webhook_secret_grace_hours),
        )

    def grace(self, seconds: int | None) -> timedelta:
        """How long a rotated-out secret stays valid: as asked, else the operator's default."""
        return timedelta(seconds=seconds) if seconds is not None else self.secret_grace

    def check(self, url: str) -> str:
        problem = url_problem(url, http_hosts=self.http_hosts, policy=self.policy)
        if problem is not None:
            raise Invalid("url", problem)
        return url


def _event_types(patterns: Sequence[str]) -> list[str]:
    for index, pattern in enumerate(patterns):
        if not EVENT_PATTERN.fullmatch(pattern):
            raise Invalid(
                f"event_types[{index}]",
                "must be an event type like complaint.created, a pattern like complaint.*, or *",
            )
        if not is_subscribable(pattern):  # a subscription that could never match anything
            domains = ", ".join(f"{d}.*" for d in sorted(DOMAINS))
            raise Invalid(
                f"event_types[{index}]",
                f"{pattern} is no event type the hub sends; see README's event catalog "
                f"(patterns: *, {domains})",
            )
    return sorted(set(patterns))


def _contracts(numbers: Sequence[str]) -> list[str]:
    upper = [n.strip().upper() for n in numbers]
    for index, number in enumerate(upper):
        if not CONTRACT.fullmatch(number):
            raise Invalid(f"contracts[{index}]", "must be a contract number like H1234")
    return sorted(set(upper))


# Earlier secrets signed with beside the current one, at most (each until its grace ends).
MAX_PREVIOUS_SECRETS = 3


def _require_admin_for_phi(actor: Principal) -> None:
    # An admin's narrow token (webhooks:manage only, say, handed to a deploy script) acts as
    # less than an admin: PHI leaves the hub only on a token that holds tenant:admin.
    if not (actor.is_tenant_admin and actor.has_scope(Scope.TENANT_ADMIN)):
        raise Forbidden(
            "include_phi: only a tenant admin, with a token holding tenant:admin, may send "
            "PHI to an endpoint"
        )


async def disable_tenant_endpoints(
    session: AsyncSession, tenant_id: TenantID, *, actor: audit.Actor, reason: str
) -> int:
    """Stop every endpoint of the tenant (it is being offboarded: its signing secrets are
    shredded with its keys): each disabled and audited, its pending messages failed. No
    event or alert: nobody is left to tell. Returns how many were enabled."""
    now = utcnow()
    endpoints = (
        await session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.is_enabled.is_(True)
            )
        )
    ).all()
    for endpoint in endpoints:
        endpoint.is_enabled = False
        endpoint.disabled_at, endpoint.disabled_reason = now, reason[:200]
        await audit.record(
            session, actor=actor, action="webhook.endpoint_disabled", tenant_id=tenant_id,
            target_type="webhook_endpoint", target_id=endpoint.id, details={"reason": reason},
        )  # fmt: skip
    await session.execute(
        update(WebhookMessage)
        .where(
            WebhookMessage.tenant_id == tenant_id,
            WebhookMessage.status == MessageStatus.PENDING,
        )
        .values(status=MessageStatus.FAILED, last_error="EndpointDisabled", next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )
    return len(endpoints)


async def _audit(
    session: AsyncSession,
    actor: Principal,
    action: str,
    endpoint: WebhookEndpoint,
    **details: Any,
) -> None:
    await audit.record(
        session,
        actor=audit.Actor.of_principal(actor),
        action=action,
        tenant_id=endpoint.tenant_id,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        details=details,
    )


async def _seal_secret(session: AsyncSession, endpoint: WebhookEndpoint, raw: str) -> None:
    endpoint.secret = await crypto.seal(
        session, raw, tenant=endpoint.tenant_id, field=SECRET_FIELD, row=endpoint.id
    )


async def create_endpoint(
    session: AsyncSession, actor: Principal, *, data: EndpointCreate, rules: UrlRules
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (the only time the secret is returned)."""
    if data.include_phi:
        _require_admin_for_phi(actor)
    await tenants.require_active(session, actor.tenant)
    endpoint = WebhookEndpoint(
        tenant_id=actor.tenant,
        url=rules.check(data.url),
        description=data.description,
        event_types=_event_types(data.event_types),
        contracts=_contracts(data.contracts),
        include_phi=data.include_phi,
        is_ordered=data.is_ordered,
        max_concurrency=data.max_concurrency,
        rate_limit_per_second=data.rate_limit_per_second,
    )
    raw = signing.new_secret()
    await _seal_secret(session, endpoint, raw)
    session.add(endpoint)
    await session.flush()
    await _audit(session, actor, "webhook.endpoint_created", endpoint, host=_host(endpoint))
    if endpoint.include_phi:
        await _audit(session, actor, "webhook.include_phi_enabled", endpoint)
    return endpoint, raw


def _host(endpoint: WebhookEndpoint) -> str:
    return urlsplit(endpoint.url).hostname or ""


async def update_endpoint(
    session: AsyncSession,
    actor: Principal,
    *,
    endpoint_id: UUID,
    changes: EndpointUpdate,
    rules: UrlRules,
) -> WebhookEndpoint:
    endpoint = await repository.get_endpoint(session, actor.tenant, endpoint_id, for_update=True)
    given = {
        f: v for f in changes.__struct_fields__ if (v := getattr(changes, f)) is not msgspec.UNSET
    }
    if given.get("include_phi") is True and not endpoint.include_phi:
        _require_admin_for_phi(actor)
    if "url" in given:
        url = rules.check(given["url"])
        if url != endpoint.url:  # the old address's failures say nothing of the new one's
            endpoint.url, endpoint.failing_since = url, None
    if "event_types" in given:
        endpoint.event_types = _event_types(given["event_types"])
    if "contracts" in given:
        endpoint.contracts = _contracts(given["contracts"])
    for plain in ("description", "is_ordered", "max_concurrency", "rate_limit_per_second"):
        if plain in given:
            setattr(endpoint, plain, given[plain])
    if "include_phi" in given and given["include_phi"] != endpoint.include_phi:
        endpoint.include_phi = given["include_phi"]
        action = "enabled" if endpoint.include_phi else "disabled"
        await _audit(session, actor, f"webhook.include_phi_{action}", endpoint)
    if "is_enabled" in given and given["is_enabled"] != endpoint.is_enabled:
        _set_enabled(endpoint, given["is_enabled"])
        action = "enabled" if endpoint.is_enabled else "disabled"
        await _audit(session, actor, f"webhook.endpoint_{action}", endpoint)
    await session.flush()
    return endpoint


def _set_enabled(endpoint: WebhookEndpoint, enabled: bool) -> None:
    endpoint.is_enabled = enabled
    if enabled:
        endpoint.disabled_at = endpoint.disabled_reason = endpoint.failing_since = None
    else:
        endpoint.disabled_at, endpoint.disabled_reason = utcnow(), "disabled by a tenant member"


async def delete_endpoint(session: AsyncSession, actor: Principal, *, endpoint_id: UUID) -> None:
    """Delete the endpoint with its messages and attempts."""
    endpoint = await repository.get_endpoint(session, actor.tenant, endpoint_id, for_update=True)
    await _audit(session, actor, "webhook.endpoint_deleted", endpoint, host=_host(endpoint))
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(
    session: AsyncSession,
    actor: Principal,
    *,
    endpoint_id: UUID,
    grace: timedelta,
    now: datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one stays valid (and is signed with) for `grace`, and so do
    earlier ones still in their own grace (a second rotation within a day must not cut off
    receivers still on the first secret). A grace of 0 ends every old secret now (a leak)."""
    now = now or utcnow()
    endpoint = await repository.get_endpoint(session, actor.tenant, endpoint_id, for_update=True)
    tenant = endpoint.tenant_id
    cipher = await crypto.cipher_for(session, tenant)
    current = cipher.open(endpoint.secret, field=SECRET_FIELD, row=endpoint.id)
    if grace > timedelta(0):
        kept = [(s, until) for s, until in _previous(cipher, endpoint) if now < until]
        kept = [*kept[-(MAX_PREVIOUS_SECRETS - 1) :], (current, now + grace)]
        document = [{"secret": s, "until": until.isoformat()} for s, until in kept]
        endpoint.previous_secret = cipher.seal(
            json.dumps(document), field=PREVIOUS_SECRET_FIELD, row=endpoint.id
        )
        endpoint.previous_secret_expires_at = max(until for _, until in kept)
    else:
        endpoint.previous_secret = endpoint.previous_secret_expires_at = None
    raw = signing.new_secret()
    await _seal_secret(session, endpoint, raw)
    await session.flush()
    await _audit(
        session, actor, "webhook.secret_rotated", endpoint, grace_seconds=int(grace.total_seconds())
    )
    return endpoint, raw


async def signing_keys(
    session: AsyncSession, endpoint: WebhookEndpoint, *, now: datetime
) -> list[bytes]:
    """The HMAC keys to sign with now: the current secret, and earlier ones in their grace."""
    cipher = await crypto.cipher_for(session, endpoint.tenant_id)
    secrets = [cipher.open(endpoint.secret, field=SECRET_FIELD, row=endpoint.id)]
    expires = endpoint.previous_secret_expires_at
    if expires is not None and now < expires:
        secrets += [s for s, until in reversed(_previous(cipher, endpoint)) if now < until]
    return [signing.secret_key(s) for s in secrets]


def _previous(cipher: crypto.TenantCipher, endpoint: WebhookEndpoint) -> list[tuple[str, datetime]]:
    """The endpoint's earlier secrets with the end of each one's grace, oldest first. Kept
    sealed as one JSON list; a value sealed before there could be several is the secret
    itself, its grace ending at `previous_secret_expires_at`."""
    if endpoint.previous_secret is None or endpoint.previous_secret_expires_at is None:
        return []
    text = cipher.open(endpoint.previous_secret, field=PREVIOUS_SECRET_FIELD, row=endpoint.id)
    if not text.startswith("["):
        return [(text, endpoint.previous_secret_expires_at)]
    return [(item["secret"], datetime.fromisoformat(item["until"])) for item in json.loads(text)]
