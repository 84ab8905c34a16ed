"""The webhooks pages of the portal: endpoints (create, edit, enable or disable, delete,
rotate the signing secret, send a test), an endpoint's messages and each one's attempts,
resending one and recovering failures. A signing secret is shown only on the page that
answers its creation or rotation, never again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, URLEncodedBody
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from hub.auth.models import Scope
from hub.core.errors import Invalid, choice
from hub.events.catalog import DOMAINS
from hub.portal import forms, once
from hub.portal.service import Signed
from hub.portal.web import go, page, principal_of, render
from hub.webhooks import replay, repository, service
from hub.webhooks.models import MessageStatus, WebhookEndpoint
from hub.webhooks.schemas import EndpointCreate, EndpointUpdate, RotateSecret

MANAGE = page(Scope.WEBHOOKS_MANAGE)
MESSAGES_PER_PAGE = 50
BODY_SHOWN = 200  # characters of a receiver's answer shown beside an attempt
S = TypeVar("S", bound=msgspec.Struct)

# What a page says after an action (the redirect names one; nothing typed is echoed).
DONE = {
    "updated": "The endpoint is saved.",
    "enabled": "The endpoint is enabled: deliveries resume.",
    "disabled": "The endpoint is disabled: nothing is sent to it until it is enabled again.",
    "tested": "A webhook.test event is on its way to this endpoint: see it below.",
    "resent": "The message is being sent again, with a fresh retry schedule.",
    "recovered": "failed message(s) are being sent again.",
    "deleted": "The endpoint is deleted, with its messages.",
}


async def _endpoint_made(session: AsyncSession, signed: Signed, endpoint_id: UUID) -> once.Made:
    endpoint = await repository.get_endpoint(session, once.tenant_of(signed), endpoint_id)
    return once.Made(endpoint.url, f"/portal/webhooks/{endpoint.id}")


CREATE = once.OnceForm(
    "webhooks.create",
    made="the endpoint {label} was made",
    shown_once="Its signing secret",
    lost="if you did not copy it, rotate it on the endpoint's page",
    find=_endpoint_made,
)
ROTATE = once.OnceForm(
    "webhooks.rotate",
    made="a new signing secret of the endpoint {label} was made",
    shown_once="It",
    lost="if you did not copy it, rotate the secret again",
    find=_endpoint_made,
)


class EndpointForm(msgspec.Struct):
    url: str = ""
    description: str = ""
    event_types: str = ""
    contracts: str = ""
    include_phi: str = ""
    is_ordered: str = ""
    max_concurrency: str = "8"
    rate_limit_per_second: str = "100"


class RotateForm(msgspec.Struct):
    grace: str = ""


class RecoverForm(msgspec.Struct):
    since: str = ""
    until: str = ""


def _whole(field: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise Invalid(field, "must be a whole number") from None


def _fields(form: EndpointForm) -> dict[str, Any]:
    return {
        "url": form.url.strip(),
        "description": form.description.strip(),
        "event_types": forms.words(form.event_types),
        "contracts": forms.words(form.contracts),
        "include_phi": bool(form.include_phi),
        "is_ordered": bool(form.is_ordered),
        "max_concurrency": _whole("max_concurrency", form.max_concurrency),
        "rate_limit_per_second": _whole("rate_limit_per_second", form.rate_limit_per_second),
    }


def _form_of(endpoint: WebhookEndpoint) -> EndpointForm:
    return EndpointForm(
        url=endpoint.url,
        description=endpoint.description,
        event_types=", ".join(endpoint.event_types),
        contracts=", ".join(endpoint.contracts),
        include_phi="on" if endpoint.include_phi else "",
        is_ordered="on" if endpoint.is_ordered else "",
        max_concurrency=str(endpoint.max_concurrency),
        rate_limit_per_second=str(endpoint.rate_limit_per_second),
    )


def _errors(error: Invalid) -> dict[str, str]:
    # `event_types[2]` is shown beside the event types field.
    return {error.field.split("[", 1)[0]: f"{error.field}: {error.reason}"}


def _rules(request: Request[Any, Any, Any]) -> service.UrlRules:
    return service.UrlRules.from_settings(request.app.state.settings)


def _moment(raw: str, field: str) -> datetime | None:
    """A time typed in a datetime-local field, read as UTC (the pages show UTC)."""
    if not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise Invalid(field, "must be a date and time like 2026-11-28T09:00 (UTC)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _form_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    form: EndpointForm,
    *,
    errors: dict[str, str] | None = None,
) -> Template:
    return await render(
        request, session, "webhooks/new.html", title="New webhook endpoint",
        status_code=400 if errors else 200, form=form, errors=errors or {},
        domains=sorted(DOMAINS),
    )  # fmt: skip


async def _detail(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    *,
    status_code: int = 200,
    form: EndpointForm | None = None,
    errors: dict[str, str] | None = None,
    secret: str | None = None,
    status: str = "",
    after: str = "",
    flash: str | None = None,
    recover: RecoverForm | None = None,
) -> Template:
    """One endpoint: its facts, its forms, and a page of its messages."""
    principal = principal_of(request)
    try:
        wanted = choice("status", status, MessageStatus)
        after_id = UUID(after) if after else None
    except (Invalid, ValueError):
        wanted, after_id, status_code = None, None, 400
        flash = "status: must be one of " + ", ".join(MessageStatus)
    found = await repository.list_messages(
        session, principal.tenant, endpoint.id, status=wanted, after=after_id,
        limit=MESSAGES_PER_PAGE,
    )  # fmt: skip
    return await render(
        request, session, "webhooks/detail.html", title=endpoint.url,
        status_code=status_code, endpoint=endpoint, form=form or _form_of(endpoint),
        errors=errors or {}, secret=secret, status=status, statuses=list(MessageStatus),
        messages=found, has_more=len(found) >= MESSAGES_PER_PAGE, domains=sorted(DOMAINS),
        flash=flash, flash_kind="error" if status_code >= 400 else "ok",
        recover=recover or RecoverForm(), grace=_rules(request).secret_grace,
    )  # fmt: skip


def _done(done: str, count: int | None) -> str | None:
    message = DONE.get(done)
    if message is not None and done == "recovered":
        return f"{count or 0} {message}"
    return message


@get("/webhooks", opt=MANAGE)
async def endpoints_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    done: FromQuery[str] = "",
) -> Template:
    principal = principal_of(request)
    found = await repository.list_endpoints(db_session, principal.tenant)
    return await render(
        request, db_session, "webhooks/list.html", title="Webhooks", endpoints=found,
        flash=_done(done, None),
    )  # fmt: skip


@get("/webhooks/new", opt=MANAGE)
async def new_page(
    request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> Template:
    return await _form_page(request, db_session, EndpointForm(event_types="*"))


@post("/webhooks", opt=page(Scope.WEBHOOKS_MANAGE, acts_once=CREATE), status_code=200)
async def create(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    data: URLEncodedBody[EndpointForm],
) -> Template:
    """Register a receiver and answer with its signing secret: this page is the only time
    it is shown (it is not in any URL, and the endpoint's page never shows it)."""
    principal = principal_of(request)
    try:
        body = forms.api_body(EndpointCreate, _fields(data))
        endpoint, secret = await service.create_endpoint(
            db_session, principal, data=body, rules=_rules(request)
        )
    except Invalid as error:
        return await _form_page(request, db_session, data, errors=_errors(error))
    once.record(request, endpoint.id)
    return await _detail(request, db_session, endpoint, secret=secret)


@get("/webhooks/{endpoint_id:uuid}", opt=MANAGE)
async def endpoint_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
    status: FromQuery[str] = "",
    after: FromQuery[str] = "",
    done: FromQuery[str] = "",
    n: FromQuery[int | None] = None,
) -> Template:
    principal = principal_of(request)
    endpoint = await repository.get_endpoint(db_session, principal.tenant, endpoint_id)
    return await _detail(
        request, db_session, endpoint, status=status, after=after, flash=_done(done, n)
    )


@post("/webhooks/{endpoint_id:uuid}", opt=MANAGE, status_code=200)
async def update(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
    data: URLEncodedBody[EndpointForm],
) -> Response[Any]:
    """Save the edit form (every field it shows; enabling has its own buttons)."""
    principal = principal_of(request)
    try:
        changes = forms.api_body(EndpointUpdate, _fields(data))
        await service.update_endpoint(
            db_session, principal, endpoint_id=endpoint_id, changes=changes, rules=_rules(request)
        )
    except Invalid as error:
        endpoint = await repository.get_endpoint(db_session, principal.tenant, endpoint_id)
        return await _detail(
            request, db_session, endpoint, status_code=400, form=data, errors=_errors(error),
            flash="The endpoint was not saved: see the field marked below.",
        )  # fmt: skip
    return go(request, f"/portal/webhooks/{endpoint_id}?done=updated")


async def _set_enabled(
    request: Request[Any, Any, Any], session: AsyncSession, endpoint_id: UUID, enabled: bool
) -> Response[Any]:
    await service.update_endpoint(
        session, principal_of(request), endpoint_id=endpoint_id,
        changes=EndpointUpdate(is_enabled=enabled), rules=_rules(request),
    )  # fmt: skip
    done = "enabled" if enabled else "disabled"
    return go(request, f"/portal/webhooks/{endpoint_id}?done={done}")


@post("/webhooks/{endpoint_id:uuid}/enable", opt=MANAGE, status_code=200)
async def enable(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
) -> Response[Any]:
    return await _set_enabled(request, db_session, endpoint_id, True)


@post("/webhooks/{endpoint_id:uuid}/disable", opt=MANAGE, status_code=200)
async def disable(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
) -> Response[Any]:
    return await _set_enabled(request, db_session, endpoint_id, False)


@post("/webhooks/{endpoint_id:uuid}/delete", opt=MANAGE, status_code=200)
async def remove(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
) -> Response[Any]:
    await service.delete_endpoint(db_session, principal_of(request), endpoint_id=endpoint_id)
    return go(request, "/portal/webhooks?done=deleted")


@post(
    "/webhooks/{endpoint_id:uuid}/rotate",
    opt=page(Scope.WEBHOOKS_MANAGE, acts_once=ROTATE),
    status_code=200,
)
async def rotate(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
    data: URLEncodedBody[RotateForm],
) -> Template:
    """A new secret, shown on this answer only; the old one signs on through the grace."""
    principal = principal_of(request)
    seconds = _whole("grace", data.grace) if data.grace.strip() else None
    asked = forms.api_body(RotateSecret, {"grace_seconds": seconds})
    endpoint, secret = await service.rotate_secret(
        db_session, principal, endpoint_id=endpoint_id,
        grace=_rules(request).grace(asked.grace_seconds),
    )  # fmt: skip
    once.record(request, endpoint.id)
    return await _detail(request, db_session, endpoint, secret=secret)


@post("/webhooks/{endpoint_id:uuid}/test", opt=MANAGE, status_code=200)
async def send_test(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
) -> Response[Any]:
    principal = principal_of(request)
    await replay.send_test(
        db_session, principal.tenant, endpoint_id=endpoint_id, note="a test event from CTM Hub"
    )
    return go(request, f"/portal/webhooks/{endpoint_id}?done=tested")


@post("/webhooks/{endpoint_id:uuid}/recover", opt=MANAGE, status_code=200)
async def recover(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[UUID],
    data: URLEncodedBody[RecoverForm],
) -> Response[Any]:
    """Send again the endpoint's failed messages created since a time (UTC)."""
    principal = principal_of(request)
    try:
        since = _moment(data.since, "since")
        if since is None:
            raise Invalid("since", "is required: from when to send failed messages again")
        recovered = await replay.recover(
            db_session, principal.tenant, endpoint_id=endpoint_id, since=since,
            until=_moment(data.until, "until"),
        )  # fmt: skip
    except Invalid as error:
        endpoint = await repository.get_endpoint(db_session, principal.tenant, endpoint_id)
        return await _detail(
            request, db_session, endpoint, status_code=400, errors=_errors(error),
            recover=data, flash="Nothing was sent again: see the field marked below.",
        )  # fmt: skip
    return go(request, f"/portal/webhooks/{endpoint_id}?done=recovered&n={recovered.resent}")


@get("/webhooks/messages/{message_id:uuid}", opt=MANAGE)
async def message_page(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    message_id: FromPath[UUID],
    done: FromQuery[str] = "",
) -> Template:
    """One message and each attempt to deliver it."""
    principal = principal_of(request)
    message = await repository.get_message(db_session, principal.tenant, message_id)
    endpoint = await repository.get_endpoint(db_session, principal.tenant, message.endpoint_id)
    attempts = await repository.list_attempts(db_session, principal.tenant, message_id)
    return await render(
        request, db_session, "webhooks/message.html", title="Webhook message",
        message=message, endpoint=endpoint, attempts=attempts, body_shown=BODY_SHOWN,
        flash=_done(done, None),
    )  # fmt: skip


@post("/webhooks/messages/{message_id:uuid}/resend", opt=MANAGE, status_code=200)
async def resend(
    request: Request[Any, Any, Any],
    db_session: NamedDependency[AsyncSession],
    message_id: FromPath[UUID],
) -> Response[Any]:
    principal = principal_of(request)
    await replay.resend(db_session, principal.tenant, message_id=message_id)
    return go(request, f"/portal/webhooks/messages/{message_id}?done=resent")


PAGES: list[Any] = [
    endpoints_page, new_page, create, endpoint_page, update, enable, disable, remove, rotate,
    send_test, recover, message_page, resend,
]  # fmt: skip
