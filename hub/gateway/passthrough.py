"""The gateway's calls to CMS: the download passed on as it streams, an upload file checked
with the hub's upload layout and passed on as it came, each through the key the caller may
use (`service.grant`), within the key's concurrency slots, and audited.

A designee never sees the secret: the CTM client opens it inside its token call, as it does
for syncs. Gateway uploads are outside the hub's own resolution tracking.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

import anyio
import structlog

from hub.audit import service as audit
from hub.audit.models import AuditOutcome
from hub.audit.reads import PhiView, record_phi_read
from hub.auth.principal import Principal
from hub.core.db import Database
from hub.core.errors import DomainError, Forbidden, Invalid, TooBusy, Unavailable, UpstreamFailed
from hub.core.logging import redact_value
from hub.ctm import modeled
from hub.ctm.client import CtmClient, CtmEnvironment, RawDownload, RetryPolicy, UploadResult
from hub.ctm.errors import (
    ContractAccessDenied,
    CtmError,
    CtmUnavailable,
    FileRejected,
    KeyRejected,
    RateLimited,
    UploadOutcomeUnknown,
    UploadRefused,
)
from hub.ctm.upload import read_upload_file
from hub.gateway.service import Grant, grant, require_keys_in
from hub.keys import service as keys
from hub.keys.models import Environment
from hub.settings import Settings
from hub.syncs.slots import key_slot

log = structlog.get_logger(__name__)

DOWNLOAD = "ctm.gateway.download"
UPLOAD = "ctm.gateway.upload"
# Someone is waiting on the answer: one quick retry, then CMS's refusal is passed back.
GATEWAY_RETRY = RetryPolicy(attempts=2, base_delay=0.2, max_delay=1.0, max_retry_after=2.0)
# A busy key (its slots held by syncs or other gateway calls) and a 429 without Retry-After.
BUSY_RETRY_AFTER = 5
RATE_LIMIT_RETRY_AFTER = 30
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CSV = "text/csv"


def open_clients(settings: Settings) -> dict[CtmEnvironment, CtmClient]:
    """One CTM client per environment for the web process (closed with `close_clients`)."""
    return {
        environment: CtmClient.for_environment(settings, environment, retry=GATEWAY_RETRY)
        for environment in CtmEnvironment
    }


async def close_clients(clients: Mapping[CtmEnvironment, CtmClient]) -> None:
    for client in clients.values():
        await client.aclose()


# Auditing --------------------------------------------------------------------------------


@dataclass
class _Record:
    """One gateway call's audit entry, filled in as the call goes."""

    action: str
    actor: Principal
    details: dict[str, Any] = field(default_factory=dict)
    key_id: UUID | None = None

    def note(self, **details: Any) -> None:
        self.details.update(details)

    async def write(self, db: Database, *, status: int, outcome: AuditOutcome) -> None:
        """Append the entry in a transaction of its own (the call's refusal, if any, must not
        roll it back)."""
        async with db.transaction() as session:
            await audit.record(
                session,
                actor=audit.Actor.of_principal(self.actor),
                action=self.action,
                tenant_id=self.actor.tenant,
                target_type="api_key" if self.key_id else None,
                target_id=self.key_id,
                outcome=outcome,
                details={"status": status, **self.details},
            )


def _said(text: str) -> str:
    """A message fit for the audit: nothing shaped like a token, and short."""
    return str(redact_value(text))[:200]


async def _refused(db: Database, record: _Record, error: DomainError) -> None:
    denied = error.status_code in (403, 404)
    if isinstance(error, Invalid):
        record.note(field=error.field)  # not the reason: it may quote what was sent
    else:
        record.note(refused=_said(error.detail))
    await record.write(
        db,
        status=error.status_code,
        outcome=AuditOutcome.DENIED if denied else AuditOutcome.FAILED,
    )


# CMS's answers ---------------------------------------------------------------------------


def _client(clients: Mapping[CtmEnvironment, CtmClient], environment: Environment) -> CtmClient:
    client = clients.get(CtmEnvironment(environment.value))
    if client is None:
        raise Unavailable(f"no CTM client is configured for {environment.value}")
    return client


async def _cms_failed(
    db: Database, given: Grant, error: CtmError, record: _Record, *, contract: str | None
) -> DomainError:
    """What a CMS failure means for the key (as for syncs) and for the caller."""
    record.note(cms_error=type(error).__name__)
    if isinstance(error, KeyRejected):
        record.note(cms_status=403)
        async with db.transaction() as session:
            await keys.mark_invalid(
                session, tenant_id=given.tenant_id, key_id=given.key_id,
                reason="CMS refused the token exchange (403) during a gateway call: the key "
                "was rotated, expired or deactivated",
                refused_key_id=error.key_id,
            )  # fmt: skip
        return UpstreamFailed(
            f"CMS refused key {given.key_id} at the token exchange (403): it was rotated, "
            "expired or deactivated in HPMS, and is now marked as needing replacement"
        )
    if isinstance(error, ContractAccessDenied):
        record.note(cms_status=403)
        if contract is not None:
            async with db.transaction() as session:
                await keys.mark_access_lost(
                    session, tenant_id=given.tenant_id, key_id=given.key_id, contract=contract,
                    reason="CMS answered 403 to a gateway call", refused_key_id=error.key_id,
                )  # fmt: skip
        where = f"contract {contract}" if contract else f"contracts {', '.join(given.contracts)}"
        return Forbidden(f"{where}: CMS refused key {given.key_id} access (403); request a new key")
    if isinstance(error, RateLimited):
        record.note(cms_status=429)
        wait = RATE_LIMIT_RETRY_AFTER if error.retry_after is None else round(error.retry_after)
        return TooBusy("CMS's rate limit (429): retry later", retry_after=wait)
    if isinstance(error, CtmUnavailable):
        return Unavailable("CMS's CTM API is unavailable (5xx, or no answer); retry later")
    if isinstance(error, UploadOutcomeUnknown):
        return UpstreamFailed(
            "CMS's answer to the upload was lost (CMS may have taken the file): do not send it "
            "again before a download shows whether CMS has its resolutions"
        )
    if isinstance(error, UploadRefused):
        record.note(cms_status=error.status)  # what CMS said may quote the file: not audited
        return UpstreamFailed(f"CMS refused the whole file ({error.status}): {error.detail}")
    return UpstreamFailed(f"CMS's answer could not be used: {_said(str(error))}")


async def _take_slot(stack: AsyncExitStack, redis: Any, given: Grant) -> None:
    """One of the key's concurrency slots, the syncs' own: CMS sees no more calls with one
    key at once from the gateway and the syncs together than from the syncs alone."""
    if not await stack.enter_async_context(key_slot(redis, given.slot)):
        raise TooBusy(
            f"key {given.key_id} is busy (its syncs and gateway calls are at their limit); "
            "retry shortly",
            retry_after=BUSY_RETRY_AFTER,
        )


# Download --------------------------------------------------------------------------------


def parse_window(
    contract: str | None, start: str | None, end: str | None
) -> tuple[str, date, date]:
    """The download's query as CMS takes it, each fault a 400 naming the parameter."""
    if contract is None or not contract.strip():
        raise Invalid(modeled.DOWNLOAD_CONTRACT_PARAM, "is required (a contract number, H1234)")
    number = keys.normalise_contract(contract, field=modeled.DOWNLOAD_CONTRACT_PARAM)
    dates = []
    for name, raw in ((modeled.DOWNLOAD_START_PARAM, start), (modeled.DOWNLOAD_END_PARAM, end)):
        if raw is None or not _ISO_DATE.fullmatch(raw.strip()):
            raise Invalid(name, "is required, as YYYY-MM-DD")
        try:
            dates.append(date.fromisoformat(raw.strip()))
        except ValueError:
            raise Invalid(name, "is not a date (YYYY-MM-DD)") from None
    if dates[0] > dates[1]:
        raise Invalid(modeled.DOWNLOAD_START_PARAM, f"is after {modeled.DOWNLOAD_END_PARAM}")
    return number, dates[0], dates[1]


@dataclass
class PassedDownload:
    """CMS's file on its way to the caller: iterate `body()` once, to the end or not."""

    media_type: str
    _db: Database
    _record: _Record
    _download: RawDownload
    _stack: AsyncExitStack
    _is_finished: bool = False

    async def body(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._download.body():
                yield chunk
        except CtmError as error:  # cut mid-body: the caller's answer must break off too
            self._record.note(cms_error=type(error).__name__)
            log.warning("gateway download cut", error_class=type(error).__name__)
            raise
        finally:
            # The caller may be gone (a cancelled stream): finish the books regardless.
            with anyio.CancelScope(shield=True):
                await self.finish()

    async def finish(self) -> None:
        """Close CMS's answer, give the key's slot back, and audit the call: once, whether
        the body was read to its end, cut, dropped by the caller or never asked for."""
        if self._is_finished:
            return
        self._is_finished = True
        await self._stack.aclose()  # CMS's response, then the key's slot
        done = self._download.is_complete
        self._record.note(bytes=self._download.bytes_read, complete=done)
        try:
            await self._record.write(
                self._db, status=200, outcome=AuditOutcome.SUCCESS if done else AuditOutcome.FAILED
            )
        except Exception:  # the phi.read entry stands; this one is lost, and said so
            log.exception("gateway download: its audit entry could not be written")


async def open_download(
    db: Database,
    clients: Mapping[CtmEnvironment, CtmClient],
    redis: Any,
    actor: Principal,
    *,
    environment: str,
    consumer_id: str | None,
    contract: str | None,
    start: str | None,
    end: str | None,
) -> PassedDownload:
    """Check the call, ask CMS, and record the PHI read (committed) once CMS answers with
    its file: the caller then streams the body. Every call is audited (`ctm.gateway.download`),
    a refused one at once, a passed one when its body ends."""
    record = _Record(DOWNLOAD, actor)
    try:
        env = keys.parse_environment(environment)
        record.note(environment=env.value)
        async with db.transaction(read_only=True) as session:
            await require_keys_in(session, actor.tenant, env)
            number, first, last = parse_window(contract, start, end)
            record.note(contract=number, window=[first.isoformat(), last.isoformat()])
            given = await grant(
                session, actor, environment=env, consumer_id=consumer_id, contracts=[number]
            )
        record.key_id = given.key_id
        record.note(key_id=given.credentials.key_id, token_id=_token(actor))
        download, stack = await _open(db, clients, redis, given, record, number, first, last)
    except DomainError as error:
        await _refused(db, record, error)
        raise
    record.note(cms_status=200)
    try:
        await record_phi_read(
            db, actor, PhiView.GATEWAY_DOWNLOAD, target_type="api_key", target_id=given.key_id,
            contract=number, window=[first.isoformat(), last.isoformat()],
            environment=env.value,
        )  # fmt: skip
    except BaseException:
        await stack.aclose()  # a read that cannot be recorded is not answered
        raise
    return PassedDownload(_media_type(download.content_type), db, record, download, stack)


async def _open(
    db: Database,
    clients: Mapping[CtmEnvironment, CtmClient],
    redis: Any,
    given: Grant,
    record: _Record,
    contract: str,
    first: date,
    last: date,
) -> tuple[RawDownload, AsyncExitStack]:
    client = _client(clients, given.environment)
    stack = AsyncExitStack()
    try:
        await _take_slot(stack, redis, given)
        try:
            download = await client.open_download(given.credentials, contract, first, last)
        except CtmError as error:
            raise await _cms_failed(db, given, error, record, contract=contract) from None
        stack.push_async_callback(download.aclose)
    except BaseException:
        await stack.aclose()
        raise
    return download, stack


def _media_type(said: str) -> str:
    """CMS's own type when it says CSV (with its charset), else plain `text/csv`."""
    return said if said.split(";")[0].strip().lower() == _CSV else _CSV


def _token(actor: Principal) -> str | None:
    return str(actor.token_id) if actor.token_id else None


# Upload ----------------------------------------------------------------------------------


def check_upload_file(data: bytes | None) -> dict[str, int]:
    """The file read with the hub's upload layout: each contract it names, with its first
    row. A file CMS would refuse (a bad header, a bad row) is a 400 naming row and column."""
    if data is None:
        raise Invalid(
            modeled.UPLOAD_FILE_FIELD,
            f"send multipart/form-data with one part named {modeled.UPLOAD_FILE_FIELD!r}",
        )
    contracts: dict[str, int] = {}
    try:
        for line in read_upload_file(data):
            if line.errors:
                raise Invalid(
                    modeled.UPLOAD_FILE_FIELD, f"row {line.row}: {'; '.join(line.errors)}"
                )
            contracts.setdefault(line.cells["CONTRACT_ID"].strip(), line.row)
    except FileRejected as error:
        raise Invalid(modeled.UPLOAD_FILE_FIELD, str(error)) from None
    if not contracts:
        raise Invalid(modeled.UPLOAD_FILE_FIELD, "holds no resolution rows")
    return contracts


async def upload(
    db: Database,
    clients: Mapping[CtmEnvironment, CtmClient],
    redis: Any,
    actor: Principal,
    *,
    environment: str,
    consumer_id: str | None,
    data: Callable[[], Awaitable[bytes | None]],
) -> UploadResult:
    """Check the file and the call, then send the file to CMS as it came, through the key.
    CMS's answer is not recorded against the hub's own resolutions."""
    record = _Record(UPLOAD, actor)
    try:
        env = keys.parse_environment(environment)
        record.note(environment=env.value)
        async with db.transaction(read_only=True) as session:
            await require_keys_in(session, actor.tenant, env)
        body = await data()
        rows = check_upload_file(body)
        assert body is not None
        record.note(contracts=sorted(rows), bytes=len(body))
        async with db.transaction(read_only=True) as session:
            given = await grant(
                session, actor, environment=env, consumer_id=consumer_id,
                contracts=sorted(rows), rows=rows,
            )  # fmt: skip
        record.key_id = given.key_id
        record.note(key_id=given.credentials.key_id, token_id=_token(actor))
        result = await _send(db, clients, redis, given, record, body)
    except DomainError as error:
        await _refused(db, record, error)
        raise
    record.note(cms_status=200, accepted=len(result.accepted), rejected=len(result.rejected))
    await record.write(db, status=200, outcome=AuditOutcome.SUCCESS)
    return result


async def _send(
    db: Database,
    clients: Mapping[CtmEnvironment, CtmClient],
    redis: Any,
    given: Grant,
    record: _Record,
    body: bytes,
) -> UploadResult:
    client = _client(clients, given.environment)
    async with AsyncExitStack() as stack:
        await _take_slot(stack, redis, given)
        try:
            return await client.upload_file(given.credentials, body, given.contracts)
        except CtmError as error:
            # One contract's 403 is that contract's; with several, which one is unknown.
            only = given.contracts[0] if len(given.contracts) == 1 else None
            raise await _cms_failed(db, given, error, record, contract=only) from None
