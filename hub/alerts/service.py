"""Raising, escalating and resolving alerts; who they are for; acknowledging; preferences.

The rules (`hub.alerts.rules`) say which conditions hold; `reconcile` turns that into
alerts: a condition with no open alert raises one, an open alert whose condition no longer
holds is resolved, and a condition that reached a later stage re-notifies its recipients.
Every raise and resolve writes an outbox event (`alert.raised`, `alert.resolved`) and the
emails it owes, in the caller's transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts import repository
from hub.alerts.models import (
    Alert,
    AlertEmail,
    AlertKind,
    AlertPreference,
    AlertRecipient,
    AlertState,
    EmailMode,
    Severity,
    SubjectType,
)
from hub.audit import service as audit
from hub.audit.service import Actor
from hub.auth.models import Membership, Role, User
from hub.auth.principal import Principal
from hub.core import jobs
from hub.core.db import utcnow, zulu
from hub.core.errors import Conflict, Forbidden
from hub.core.ids import TenantID
from hub.events.service import record_event, savepoint
from hub.keys.models import ApiKey

log = structlog.get_logger(__name__)

RAISED, ESCALATED, RESOLVED = "alert.raised", "alert.escalated", "alert.resolved"
ACKNOWLEDGED = "alert.acknowledged"  # an audit action, not an event
ORPHANED = AlertKind.KEY_ORPHANED


class Audience(enum.StrEnum):
    """Why someone receives an alert (stored as the recipient's `reason`)."""

    RESPONSIBLE_PARTY = "responsible_party"
    TECHNICAL_POC = "technical_poc"
    TENANT_ADMIN = "tenant_admin"
    CASEWORKER = "caseworker"
    OPERATOR = "vendor_operator"


@dataclass(frozen=True, slots=True)
class Condition:
    """A condition that holds now, as the rules describe it. Its texts are shown to people
    and sent by email: they name keys, contracts and complaints by identifier only."""

    tenant_id: TenantID
    kind: AlertKind
    severity: Severity
    subject_type: SubjectType
    subject_id: UUID
    subject_label: str
    message: str
    next_action: str
    audience: frozenset[Audience]
    qualifier: str = ""  # a second part of the identity (the contract of a key's lost access)
    stage: int = 1
    key: ApiKey | None = None  # whose responsible party and technical POC are told
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        base = f"{self.kind.value}:{self.subject_id}"
        return f"{base}:{self.qualifier}" if self.qualifier else base


@dataclass
class Reconciled:
    raised: list[Alert] = field(default_factory=list)
    escalated: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)

    def add(self, other: Reconciled) -> None:
        self.raised += other.raised
        self.escalated += other.escalated
        self.resolved += other.resolved


async def reconcile(
    session: AsyncSession,
    *,
    open_alerts: Sequence[Alert],
    holding: Sequence[Condition],
    may_raise: Collection[str] | None = None,
    now: datetime | None = None,
    resolved_reason: str = "the condition cleared",
) -> Reconciled:
    """Make the alerts in scope (`open_alerts`) agree with the conditions that hold.

    `may_raise` limits which holding conditions may raise a new alert (None: all). Rules
    raised by an event pass only that event's condition: for them the others only say
    whether an already open alert must stay open.
    """
    now = now or utcnow()
    result = Reconciled()
    by_key = {(a.tenant_id, a.dedupe_key): a for a in open_alerts}
    holds = {(c.tenant_id, c.dedupe_key): c for c in holding}
    for ident, condition in holds.items():
        alert = by_key.get(ident)
        if alert is not None:
            if condition.stage > alert.stage:
                # Still open, and still at an earlier stage, as it is now (not as read).
                if await _still_open(session, alert) and condition.stage > alert.stage:
                    result.escalated.append(await escalate(session, alert, condition, now=now))
            elif condition.stage < alert.stage:
                # Back to an earlier stage (a late rotation whose next date is near): take
                # it, quietly, so that the later stages notify again when they come.
                alert.stage, alert.severity = condition.stage, condition.severity
                alert.message, alert.next_action = condition.message, condition.next_action
                alert.details = dict(condition.details)
            elif condition.message != alert.message:
                # Same stage, newer figures ("in 9 days") or another cause: keep the text
                # current, quietly.
                alert.message, alert.details = condition.message, dict(condition.details)
                alert.next_action = condition.next_action
        elif may_raise is None or condition.dedupe_key in may_raise:
            raised = await raise_alert(session, condition, now=now)
            if raised is not None:
                result.raised.append(raised)
    for ident, alert in by_key.items():
        if ident not in holds and await _still_open(session, alert):
            result.resolved.append(resolve(session, alert, reason=resolved_reason, now=now))
    return result


async def _still_open(session: AsyncSession, alert: Alert) -> bool:
    """Lock the alert and read it afresh: whether it is still open. The cron reads every
    open alert unlocked, and a request's hook (a key change, a sync's end) may resolve or
    escalate one meanwhile: acting on the old reading would tell everyone twice."""
    await session.refresh(alert, with_for_update=True)
    return alert.resolved_at is None


# Raising, escalating, resolving ----------------------------------------------------------


async def raise_alert(
    session: AsyncSession, condition: Condition, *, now: datetime | None = None
) -> Alert | None:
    """One open alert per condition: returns None when one is already open (another
    transaction may have raised it a moment ago; the unique index is the arbiter)."""
    now = now or utcnow()
    if await repository.find_open(session, condition.tenant_id, condition.dedupe_key):
        return None
    alert = Alert(
        tenant_id=condition.tenant_id,
        kind=condition.kind,
        severity=condition.severity,
        state=AlertState.OPEN,
        dedupe_key=condition.dedupe_key,
        subject_type=condition.subject_type,
        subject_id=condition.subject_id,
        subject_label=condition.subject_label[:200],
        message=condition.message,
        next_action=condition.next_action,
        stage=condition.stage,
        details=dict(condition.details),
        raised_at=now,
    )
    try:
        async with savepoint(session):  # losing the race keeps the transaction's jobs
            session.add(alert)
            await session.flush()
    except IntegrityError:
        log.info("alert already open", kind=condition.kind.value, dedupe=condition.dedupe_key)
        return None
    recipients = await _add_recipients(session, alert, condition)
    await _notify(session, alert, recipients, now=now)
    record_event(session, condition.tenant_id, RAISED, payload(alert), occurred_at=now)
    return alert


async def escalate(
    session: AsyncSession, alert: Alert, condition: Condition, *, now: datetime
) -> Alert:
    """The condition reached a later stage: say so, reopen if acknowledged, tell everyone
    again. Still one alert."""
    alert.stage, alert.severity = condition.stage, condition.severity
    alert.message, alert.next_action = condition.message, condition.next_action
    alert.details = dict(condition.details)
    alert.state = AlertState.OPEN
    tenant_id = TenantID(alert.tenant_id)
    recipients = await repository.recipients_of(session, tenant_id, [alert.id])
    reachable = await repository.reachable_users(
        session, tenant_id, {r.user_id for r in recipients if r.user_id is not None}
    )
    # Someone who left the tenant (or was deactivated) since the raise is not told again.
    recipients = [r for r in recipients if r.user_id is None or r.user_id in reachable]
    await _notify(session, alert, recipients, now=now)
    record_event(session, TenantID(alert.tenant_id), ESCALATED, payload(alert), occurred_at=now)
    return alert


def resolve(session: AsyncSession, alert: Alert, *, reason: str, now: datetime) -> Alert:
    alert.state, alert.resolved_at, alert.resolved_reason = AlertState.RESOLVED, now, reason[:200]
    record_event(session, TenantID(alert.tenant_id), RESOLVED, payload(alert), occurred_at=now)
    return alert


def payload(alert: Alert) -> dict[str, Any]:
    """The event data of an alert (what downstream ticketing receives)."""
    data: dict[str, Any] = {
        "alert": str(alert.id),
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "stage": alert.stage,
        "subject": {
            "type": alert.subject_type.value,
            "id": str(alert.subject_id),
            "label": alert.subject_label,
        },
        "message": alert.message,
        "next_action": alert.next_action,
        "raised_at": zulu(alert.raised_at),
    }
    contract = alert.details.get("contract")
    if isinstance(contract, str):
        data["contract"] = contract  # lets a webhook endpoint's contract filter apply
    if alert.resolved_at is not None:
        data["resolved_at"] = zulu(alert.resolved_at)
        data["resolved_reason"] = alert.resolved_reason
    return data


# Recipients and emails -------------------------------------------------------------------


async def _members(session: AsyncSession, tenant_id: TenantID, role: Role) -> Sequence[User]:
    return (
        await session.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.tenant_id == tenant_id, Membership.role == role, User.is_active)
            .order_by(User.email)
        )
    ).all()


async def _member(session: AsyncSession, tenant_id: TenantID, where: Any) -> User | None:
    return await session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.tenant_id == tenant_id, User.is_active, where)
    )


async def resolve_recipients(
    session: AsyncSession, condition: Condition
) -> list[tuple[User | None, str, Audience]]:
    """(user or None, address, why) for each audience of the condition, one per address.
    A technical POC without a hub account is told by address alone."""
    tenant_id, key = condition.tenant_id, condition.key
    found: dict[str, tuple[User | None, str, Audience]] = {}

    def add(user: User | None, email: str, why: Audience) -> None:
        found.setdefault(email.lower(), (user, email, why))

    for audience in Audience:  # a fixed order, so the first reason named is the strongest
        if audience not in condition.audience:
            continue
        if audience is Audience.RESPONSIBLE_PARTY and key is not None:
            rp = await _member(session, tenant_id, User.id == key.responsible_party_id)
            if rp is not None:
                add(rp, rp.email, audience)
        elif audience is Audience.TECHNICAL_POC and key is not None:
            poc = await _member(session, tenant_id, User.email == key.technical_poc_email)
            add(poc, key.technical_poc_email, audience)
        elif audience is Audience.TENANT_ADMIN:
            # The RP who is leaving (still a member in this transaction) is not told.
            leaving = key.responsible_party_id if key and condition.kind is ORPHANED else None
            for user in await _members(session, tenant_id, Role.ADMIN):
                if user.id != leaving:
                    add(user, user.email, audience)
        elif audience is Audience.CASEWORKER:
            # Nobody holds the caseworker role: the tenant admins hear of deadlines instead.
            people = await _members(session, tenant_id, Role.CASEWORKER) or await _members(
                session, tenant_id, Role.ADMIN
            )
            for user in people:
                add(user, user.email, audience)
        elif audience is Audience.OPERATOR:
            for user in await session.scalars(
                select(User).where(User.is_operator, User.is_active).order_by(User.email)
            ):
                add(user, user.email, audience)
    return list(found.values())


async def _add_recipients(
    session: AsyncSession, alert: Alert, condition: Condition
) -> list[AlertRecipient]:
    rows = [
        AlertRecipient(
            tenant_id=alert.tenant_id,
            alert_id=alert.id,
            user_id=user.id if user else None,
            email=email,
            reason=why.value,
        )
        for user, email, why in await resolve_recipients(session, condition)
    ]
    session.add_all(rows)
    return rows


def send_email_job(email_id: UUID) -> jobs.Job:
    return jobs.Job("alerts.send_email", (str(email_id),), job_id=f"alerts.email:{email_id}")


async def _notify(
    session: AsyncSession, alert: Alert, recipients: Sequence[AlertRecipient], *, now: datetime
) -> None:
    """The emails this stage of the alert owes: at once, in the daily digest, or none, by
    each user's preference. A critical alert is sent at once to everyone."""
    users = [r.user_id for r in recipients if r.user_id is not None]
    preferences = await repository.preferences_of(session, users)
    for recipient in recipients:
        preference = preferences.get(recipient.user_id) if recipient.user_id else None
        mode = preference.email_mode if preference else EmailMode.IMMEDIATE
        if alert.severity is Severity.CRITICAL:
            mode = EmailMode.IMMEDIATE
        if mode is EmailMode.OFF:
            continue
        email = AlertEmail(
            tenant_id=alert.tenant_id,
            alert_id=alert.id,
            user_id=recipient.user_id,
            email=recipient.email,
            stage=alert.stage,
            is_digest=mode is EmailMode.DIGEST,
        )
        session.add(email)
        if not email.is_digest:
            jobs.enqueue(session, send_email_job(email.id))
    alert.notified_at = now


# What people do --------------------------------------------------------------------------


async def acknowledge(session: AsyncSession, actor: Principal, *, alert_id: UUID) -> Alert:
    """Someone accountable has seen the alert. It stays until its condition clears
    (acknowledging twice is a no-op; a resolved alert has nothing left to acknowledge).
    Audited: it takes the alert out of the header's open count."""
    alert = await repository.get_alert(session, actor.tenant, alert_id)
    await _require_may_acknowledge(session, actor, alert)
    if alert.state is AlertState.RESOLVED:
        raise Conflict("the alert is already resolved", field="state")
    if alert.state is AlertState.OPEN:
        alert.state = AlertState.ACKNOWLEDGED
        alert.acknowledged_at, alert.acknowledged_by = utcnow(), actor.user_id
        await session.flush()
        await audit.record(
            session, actor=Actor.of_principal(actor), action=ACKNOWLEDGED,
            tenant_id=actor.tenant, target_type="alert", target_id=alert.id,
            details={"kind": alert.kind.value, "severity": alert.severity.value,
                     "stage": alert.stage},
        )  # fmt: skip
    return alert


def may_acknowledge(actor: Principal, alert: Alert, recipients: Sequence[AlertRecipient]) -> bool:
    """Acknowledging says "I am on it": the alert's own recipients and tenant admins may;
    a caseworker may for a non-critical alert too; a viewer only for one sent to them."""
    if actor.is_tenant_admin:
        return True
    if actor.role is Role.CASEWORKER and alert.severity is not Severity.CRITICAL:
        return True
    return any(r.user_id == actor.user_id for r in recipients)


async def _require_may_acknowledge(session: AsyncSession, actor: Principal, alert: Alert) -> None:
    recipients = await repository.recipients_of(session, actor.tenant, [alert.id])
    if may_acknowledge(actor, alert, recipients):
        return
    raise Forbidden(
        "only the people this alert is for, and tenant admins, may acknowledge it"
        + ("" if alert.severity is Severity.CRITICAL else " (and caseworkers)")
    )


async def email_mode_of(session: AsyncSession, user_id: UUID) -> EmailMode:
    preference = await repository.find_preference(session, user_id)
    return preference.email_mode if preference else EmailMode.IMMEDIATE


async def set_email_mode(session: AsyncSession, user_id: UUID, mode: EmailMode) -> EmailMode:
    preference = await repository.find_preference(session, user_id)
    if preference is None:
        session.add(AlertPreference(user_id=user_id, email_mode=mode))
    else:
        preference.email_mode = mode
    await session.flush()
    return mode
