"""What holds now: the conditions each rule sees in the keys, contracts, syncs, complaints
and webhook endpoints, with the texts people read (identifiers and dates only: no secret,
no PHI)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.alerts.models import AlertKind, Severity, SubjectType
from hub.alerts.service import Audience, Condition
from hub.complaints.doubt import settle_route
from hub.complaints.models import Complaint, Resolution, ResolutionState
from hub.complaints.service import Deadlines, deadline_moment
from hub.core.ids import TenantID
from hub.keys.models import (
    ApiKey,
    ApiKeyContract,
    ApiKeyVersion,
    Contract,
    Environment,
    KeyStatus,
    VersionState,
)
from hub.settings import Settings
from hub.syncs.models import SyncCursor, SyncSchedule
from hub.webhooks.models import WebhookEndpoint

UNRESOLVED = (ResolutionState.NONE, ResolutionState.REJECTED)
# Resolved here but not yet at CMS: once the deadline has passed, CMS sees it late.
NOT_AT_CMS = (ResolutionState.QUEUED, ResolutionState.UPLOADING)
RP, POC, ADMINS = Audience.RESPONSIBLE_PARTY, Audience.TECHNICAL_POC, Audience.TENANT_ADMIN


@dataclass(frozen=True)
class AlertPolicy:
    """Thresholds. The hooks use the defaults; the cron takes sync and deadline settings."""

    rotation_days: tuple[int, ...] = (14, 3, 1)  # warn, then escalate, then escalate again
    sync_failures: int = 3  # consecutive failures of one (key, contract) pair
    sync_missed_intervals: int = 2  # no success for this many schedule intervals
    default_sync_interval: timedelta = timedelta(minutes=15)
    deadlines: Deadlines = field(default_factory=Deadlines)

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertPolicy:
        return cls(
            default_sync_interval=timedelta(minutes=settings.sync_interval_minutes),
            deadlines=Deadlines(
                immediate_days=settings.deadline_immediate_days,
                standard_days=settings.deadline_standard_days,
                due_soon=timedelta(hours=settings.due_soon_hours),
            ),
        )

    def rotation_stage(self, days_left: int) -> int:
        """0 outside the window; 1 within the first threshold, 2 within the second, …"""
        return sum(1 for threshold in self.rotation_days if days_left <= threshold)


# Keys ------------------------------------------------------------------------------------


async def key_idents(session: AsyncSession, keys: Sequence[ApiKey]) -> dict[UUID, str]:
    """The CMS key ID each key is known by (its current version's, else its latest)."""
    idents: dict[UUID, str] = {}
    if not keys:
        return idents
    versions = await session.scalars(
        select(ApiKeyVersion)
        .where(ApiKeyVersion.api_key_id.in_([k.id for k in keys]))
        .order_by(ApiKeyVersion.created_at)
    )
    for version in versions:
        if version.state is VersionState.CURRENT or version.api_key_id not in idents:
            idents[version.api_key_id] = version.key_id
    return idents


def _key_condition(
    key: ApiKey,
    ident: str,
    kind: AlertKind,
    severity: Severity,
    audience: frozenset[Audience],
    message: str,
    next_action: str,
    **extra: Any,
) -> Condition:
    details = {"key": str(key.id), "key_id": ident, "environment": key.environment.value}
    details.update(extra.pop("details", {}))
    return Condition(
        tenant_id=TenantID(key.tenant_id),
        kind=kind,
        severity=severity,
        subject_type=SubjectType.KEY,
        subject_id=key.id,
        subject_label=f"{key.environment.value} key {ident}",
        message=message,
        next_action=next_action,
        audience=audience,
        key=key,
        details=details,
        **extra,
    )


def _rotation(key: ApiKey, ident: str, *, now: datetime, policy: AlertPolicy) -> Condition | None:
    if key.status not in {KeyStatus.ACTIVE, KeyStatus.SUSPENDED} or not key.expected_rotation_on:
        return None
    due = key.expected_rotation_on
    days = (due - now.date()).days
    stage = policy.rotation_stage(days)
    if stage == 0:
        return None
    when = f"in {days} day{'s' if days != 1 else ''}" if days > 0 else "today"
    if days < 0:
        when = f"{-days} day{'s' if days != -1 else ''} ago"
    return _key_condition(
        key,
        ident,
        AlertKind.KEY_ROTATION_DUE,
        Severity.INFO if stage == 1 else Severity.WARNING,
        frozenset({RP, POC}),
        f"Key {ident} ({key.environment.value}) is due for rotation on {due.isoformat()} ({when}).",
        f"Rotate key {ident} in HPMS API Key Management, then enter the reissued key ID and "
        "secret here (rotate the key in the hub) so syncs carry on.",
        stage=stage,
        details={"expected_rotation_on": due.isoformat(), "days_left": days},
    )


async def _has_active_replacement(session: AsyncSession, key: ApiKey) -> bool:
    found = await session.scalar(
        select(ApiKey.id).where(
            ApiKey.tenant_id == key.tenant_id,
            ApiKey.replaces_id == key.id,
            ApiKey.status == KeyStatus.ACTIVE,
        )
    )
    return found is not None


async def key_conditions(
    session: AsyncSession, key: ApiKey, *, ident: str, now: datetime, policy: AlertPolicy
) -> list[Condition]:
    """Every key condition that holds for `key` now."""
    holding: list[Condition] = []
    rotation = _rotation(key, ident, now=now, policy=policy)
    if rotation is not None:
        holding.append(rotation)
    env = key.environment.value
    if key.status is KeyStatus.COMPROMISED:
        holding.append(
            _key_condition(
                key,
                ident,
                AlertKind.KEY_COMPROMISED,
                Severity.CRITICAL,
                frozenset({RP, ADMINS, Audience.OPERATOR}),
                f"Key {ident} ({env}) was reported compromised. The hub no longer uses it and has "
                "revoked the hub tokens issued under it.",
                f"Deactivate key {ident} in HPMS API Key Management now, then confirm the "
                "deactivation here (deactivate the key in the hub) and register the replacement.",
            )
        )
    if key.status is KeyStatus.NEEDS_REPLACEMENT and not await _has_active_replacement(
        session, key
    ):
        holding.append(
            _key_condition(
                key,
                ident,
                AlertKind.KEY_INVALID,
                Severity.CRITICAL,
                frozenset({RP, ADMINS}),
                f"CMS refused key {ident} ({env}) at the token exchange (403): it was rotated, "
                "expired or deactivated in HPMS. Syncs and uploads with it have stopped.",
                f"Enter CMS's reissued key ID and secret for key {ident} here (rotate the key in "
                "the hub), or request a new key in HPMS and register it as the replacement.",
            )
        )
        holding.append(
            _key_condition(
                key,
                ident,
                AlertKind.KEY_ORPHANED,
                Severity.WARNING,
                frozenset({ADMINS}),
                f"The responsible party of key {ident} ({env}) left the tenant. CMS does not let "
                "a key pass to someone else, so the hub no longer uses it.",
                "Have the new responsible party request a key in HPMS for the same contracts and "
                f"register it here as the replacement of key {ident}.",
            )
        )
    if key.status is not KeyStatus.DEACTIVATED:
        holding.extend(await _access_lost(session, key, ident))
    return holding


async def _access_lost(session: AsyncSession, key: ApiKey, ident: str) -> list[Condition]:
    rows = await session.execute(
        select(Contract.number)
        .join(ApiKeyContract, ApiKeyContract.contract_id == Contract.id)
        .where(ApiKeyContract.api_key_id == key.id, ApiKeyContract.access_lost_at.is_not(None))
        .order_by(Contract.number)
    )
    return [
        _key_condition(
            key,
            ident,
            AlertKind.KEY_ACCESS_LOST,
            Severity.WARNING,
            frozenset({RP}),
            f"CMS answered 403 for contract {number} with key {ident}: the key (or its HPMS "
            "user) no longer has access to that contract. Its other contracts carry on.",
            f"Request a new key for contract {number} in HPMS, then register it here.",
            qualifier=number,
            details={"contract": number},
        )
        for number in rows.scalars()
    ]


# Contracts -------------------------------------------------------------------------------


async def coverage_conditions(
    session: AsyncSession, tenant_id: TenantID | None = None
) -> list[Condition]:
    """A contract of a tenant with no active production key that still reads it."""
    covered = (
        select(ApiKeyContract.contract_id)
        .join(ApiKey, ApiKey.id == ApiKeyContract.api_key_id)
        .where(
            ApiKey.environment == Environment.PRODUCTION,
            ApiKey.status == KeyStatus.ACTIVE,
            ApiKeyContract.access_lost_at.is_(None),
        )
    )
    statement = select(Contract).where(Contract.id.not_in(covered))
    if tenant_id is not None:
        statement = statement.where(Contract.tenant_id == tenant_id)
    return [
        Condition(
            tenant_id=TenantID(contract.tenant_id),
            kind=AlertKind.CONTRACT_UNCOVERED,
            severity=Severity.WARNING,
            subject_type=SubjectType.CONTRACT,
            subject_id=contract.id,
            subject_label=f"contract {contract.number}",
            message=f"Contract {contract.number} has no active production key: its complaints "
            "are not downloaded and resolutions for it are not uploaded.",
            next_action=f"Have a responsible party register a production key covering "
            f"{contract.number} (or restore the key that covered it).",
            audience=frozenset({ADMINS}),
            details={"contract": contract.number},
        )
        for contract in await session.scalars(statement.order_by(Contract.number))
    ]


# Syncs -----------------------------------------------------------------------------------


def _sync_condition(
    key: ApiKey, ident: str, cursor: SyncCursor, message: str, **details: Any
) -> Condition:
    return _key_condition(
        key,
        ident,
        AlertKind.SYNC_FAILING,
        Severity.WARNING,
        frozenset({POC, ADMINS}),
        message,
        f"See the sync runs of contract {cursor.contract} in the hub for the reason. The hub "
        "keeps trying on schedule; if it goes on, check the key and the contract in HPMS.",
        qualifier=cursor.contract,
        details={"contract": cursor.contract, **details},
    )


def failures_condition(key: ApiKey, ident: str, cursor: SyncCursor) -> Condition:
    return _sync_condition(
        key,
        ident,
        cursor,
        f"Syncing contract {cursor.contract} with key {ident} failed "
        f"{cursor.consecutive_failures} times in a row.",
        consecutive_failures=cursor.consecutive_failures,
    )


async def sync_conditions(
    session: AsyncSession, *, now: datetime, policy: AlertPolicy
) -> list[Condition]:
    """Pairs still served by an active key (not paused) that failed N times in a row or
    have not succeeded for 2 schedule intervals."""
    schedules = {
        (s.tenant_id, s.environment): s for s in await session.scalars(select(SyncSchedule))
    }
    rows = (
        await session.execute(
            select(SyncCursor, ApiKey)
            .join(ApiKey, ApiKey.id == SyncCursor.api_key_id)
            .join(ApiKeyContract, ApiKeyContract.api_key_id == ApiKey.id)
            .join(Contract, Contract.id == ApiKeyContract.contract_id)
            .where(
                ApiKey.status == KeyStatus.ACTIVE,
                SyncCursor.is_blocked.is_(False),
                Contract.number == SyncCursor.contract,
                ApiKeyContract.access_lost_at.is_(None),
            )
        )
    ).all()
    idents = await key_idents(session, list({key.id: key for _, key in rows}.values()))
    holding: list[Condition] = []
    for cursor, key in rows:
        schedule = schedules.get((key.tenant_id, key.environment))
        if schedule is not None and schedule.is_paused:
            continue
        ident = idents.get(key.id, str(key.id))
        interval = (
            timedelta(minutes=schedule.interval_minutes)
            if schedule
            else policy.default_sync_interval
        )
        since = cursor.last_success_at or cursor.created_at
        if cursor.consecutive_failures >= policy.sync_failures:
            holding.append(failures_condition(key, ident, cursor))
        elif now - since >= interval * policy.sync_missed_intervals:
            holding.append(
                _sync_condition(
                    key,
                    ident,
                    cursor,
                    f"Contract {cursor.contract} has not synced successfully with key {ident} "
                    f"since {since:%Y-%m-%d %H:%M} UTC (its schedule runs every "
                    f"{int(interval.total_seconds() // 60)} minutes).",
                    last_success_at=cursor.last_success_at.isoformat()
                    if cursor.last_success_at
                    else None,
                )
            )
    return holding


# Complaints ------------------------------------------------------------------------------


async def complaint_conditions(
    session: AsyncSession, *, now: datetime, policy: AlertPolicy
) -> list[Condition]:
    """Unresolved complaints inside the due-soon window of their deadline, or past it; and
    complaints past it whose resolution, written here, has not reached CMS (queued, or its
    upload's outcome unknown): CMS counts those late. Only identifiers and dates are read:
    an alert never carries PHI."""
    horizon = (now + policy.deadlines.due_soon).date()
    rows = await session.execute(
        select(
            Complaint.id,
            Complaint.tenant_id,
            Complaint.contract,
            Complaint.complaint_id,
            Complaint.due_date,
            Complaint.is_immediate_need,
            Complaint.environment,
            Complaint.resolution_state,
        ).where(
            Complaint.resolution_state.in_(UNRESOLVED + NOT_AT_CMS),
            Complaint.cms_resolution_date.is_(None),
            Complaint.due_date <= horizon,
        )
    )
    holding: list[Condition] = []
    for pk, tenant_id, contract, complaint_id, due, immediate, environment, state in rows:
        remaining = deadline_moment(due) - now
        overdue = remaining <= timedelta(0)
        if remaining > policy.deadlines.due_soon or (state in NOT_AT_CMS and not overdue):
            continue
        holding.append(
            _complaint_condition(
                TenantID(tenant_id), pk, contract, complaint_id, due, immediate, overdue,
                environment, not_at_cms=state in NOT_AT_CMS,
            )
        )  # fmt: skip
    return holding


def _complaint_condition(
    tenant_id: TenantID,
    pk: UUID,
    contract: str,
    complaint_id: str,
    due: date,
    immediate: bool,
    overdue: bool,
    environment: Environment,
    *,
    not_at_cms: bool = False,
) -> Condition:
    level = "immediate need, " if immediate else ""
    verb, when = ("was", "now") if overdue else ("is", "before the deadline")
    # Sandbox complaints are CMS's test data: said so, production ones as they are.
    sandbox = environment is Environment.SANDBOX
    if not_at_cms:
        state = "its resolution has not reached CMS"
        action = (
            f"See why complaint {complaint_id}'s resolution is not uploaded: its note (GET "
            f"…/complaints/{{id}}/resolutions) and the key serving contract {contract}."
        )
    else:
        state = "is not resolved"
        action = f"Resolve complaint {complaint_id} and submit its resolution {when}."
    return Condition(
        tenant_id=tenant_id,
        kind=AlertKind.COMPLAINT_OVERDUE if overdue else AlertKind.COMPLAINT_DUE_SOON,
        severity=Severity.WARNING,
        subject_type=SubjectType.COMPLAINT,
        subject_id=pk,
        subject_label=f"complaint {complaint_id} ({contract}{', sandbox' if sandbox else ''})",
        message=f"Complaint {complaint_id} of contract {contract}{' (sandbox)' if sandbox else ''}"
        f" {verb} due "
        f"{due.isoformat()} ({level}end of day UTC) and {state}.",
        next_action=action,
        audience=frozenset({Audience.CASEWORKER}),
        details={
            "complaint_id": complaint_id,
            "contract": contract,
            "environment": environment.value,
            "due_date": due.isoformat(),
        },
    )


async def resolution_conditions(session: AsyncSession) -> list[Condition]:
    """Resolutions whose upload's outcome stayed unknown until the hub stopped waiting for a
    download to tell (`unconfirmed_at`): they hold until someone settles them."""
    rows = await session.execute(
        select(Resolution, Complaint.environment, Complaint.due_date)
        .join(Complaint, Complaint.id == Resolution.complaint_pk)
        .where(
            Resolution.state == ResolutionState.UPLOADING,
            Resolution.unconfirmed_at.is_not(None),
        )
    )
    return [_unconfirmed_condition(r, environment, due) for r, environment, due in rows]


def _unconfirmed_condition(r: Resolution, environment: Environment, due: date) -> Condition:
    sandbox = environment is Environment.SANDBOX
    where = f"{r.contract}{', sandbox' if sandbox else ''}"
    began = r.in_doubt_since
    since = f" on {began:%Y-%m-%d %H:%M} UTC" if began is not None else ""
    return Condition(
        tenant_id=TenantID(r.tenant_id),
        kind=AlertKind.RESOLUTION_UNCONFIRMED,
        severity=Severity.WARNING,
        subject_type=SubjectType.COMPLAINT,
        subject_id=r.complaint_pk,
        qualifier=str(r.id),
        subject_label=f"complaint {r.complaint_id} ({where})",
        message=f"The resolution of complaint {r.complaint_id} ({where}, due "
        f"{due.isoformat()}) went to CMS{since} and CMS's answer was lost; "
        f"{r.doubt_misses} downloads since did not show the complaint, so the hub cannot tell "
        "whether CMS has it, and will not send it again on its own.",
        next_action=f"Check complaint {r.complaint_id} in HPMS CTM, then settle the resolution "
        f'({settle_route(r)}): "accepted" if CMS shows it, "resend" if not, "release" to '
        "write a new one.",
        audience=frozenset({Audience.CASEWORKER}),
        details={
            "complaint_id": r.complaint_id,
            "contract": r.contract,
            "environment": environment.value,
            "resolution_id": str(r.id),
            "due_date": due.isoformat(),
        },
    )


# Webhooks --------------------------------------------------------------------------------


def endpoint_condition(endpoint: WebhookEndpoint, reason: str) -> Condition:
    host = urlsplit(endpoint.url).hostname or "endpoint"
    return Condition(
        tenant_id=TenantID(endpoint.tenant_id),
        kind=AlertKind.WEBHOOK_ENDPOINT_DISABLED,
        severity=Severity.WARNING,
        subject_type=SubjectType.ENDPOINT,
        subject_id=endpoint.id,
        subject_label=f"webhook endpoint {host}",
        message=f"Webhook endpoint {host} was disabled ({reason[:200]}): events are no longer "
        "delivered to it.",
        next_action=f"Fix the receiver at {host}, then re-enable endpoint {endpoint.id} and "
        "recover the messages it missed (POST /api/v1/webhooks/endpoints/"
        f"{endpoint.id}/recover).",
        audience=frozenset({ADMINS}),
        details={"endpoint": str(endpoint.id), "host": host},
    )
