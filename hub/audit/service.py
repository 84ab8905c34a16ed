"""Write audit entries in the caller's transaction, chained per tenant; verify the chains.

A writer locks its chain's head row (PostgreSQL: `SELECT … FOR UPDATE`; SQLite: every
transaction is `BEGIN IMMEDIATE` already), so concurrent writers for one tenant queue up
instead of forking the chain; `(chain_id, seq)` is unique as a second guard.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast
from uuid import UUID

import structlog
from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.audit.models import (
    GENESIS_HASH,
    PLATFORM_CHAIN,
    ActorKind,
    AuditChainHead,
    AuditEntry,
    AuditOutcome,
)
from hub.auth.models import User
from hub.auth.principal import Principal
from hub.core.db import utcnow
from hub.core.ids import TenantID, uuid7
from hub.core.logging import redact_value

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
MAX_DETAILS_BYTES = 4096
# Detail keys that name a secret are refused outright (the value is never looked at): the
# word last, or followed by a word for its content ("secret_value", "private_key_pem");
# counts and ids named after secrets ("tokens_revoked", "secrets_destroyed") are kept.
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|passphrase|token|authorization|cookie|apikey|credentials?|"
    r"privatekey|datakey|masterkey|plaintext|ciphertext|sealed)"
    r"(value|text|raw|plain|clear|hex|b64|base64|pem|der|bytes|material|body)?$"
)

# Actions this package's callers write (other domains name theirs the same way).
TENANT_CREATED = "tenant.created"
TENANT_OFFBOARDED = "tenant.offboarded"
TENANT_DATA_KEY_ROTATED = "tenant.data_key.rotated"
TENANT_DATA_KEYS_DISCARDED = "tenant.data_keys.discarded"
MASTER_KEY_ROTATED = "master_key.rotated"
TOKEN_ISSUED = "token.issued"  # noqa: S105 - an action name
TOKEN_REVOKED = "token.revoked"  # noqa: S105 - an action name
MEMBERSHIP_ADDED = "membership.added"
USER_CREATED = "user.created"


class AuditDetailRefused(ValueError):
    """Details that could carry a secret, or that are too big; names the key, not the value."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted. Build one with the constructors; services take it as `actor=`."""

    kind: ActorKind
    id: UUID | None
    label: str

    @classmethod
    def of_principal(cls, principal: Principal) -> Actor:
        kind = ActorKind.OPERATOR if principal.tenant_id is None else ActorKind.USER
        return cls(kind, principal.user_id, principal.email)

    @classmethod
    def of_user(cls, user: User) -> Actor:
        return cls(ActorKind.OPERATOR if user.is_operator else ActorKind.USER, user.id, user.email)

    @classmethod
    def operator(cls, user: User) -> Actor:
        return cls(ActorKind.OPERATOR, user.id, user.email)

    @classmethod
    def system(cls, name: str = "hub") -> Actor:
        return cls(ActorKind.SYSTEM, None, name)

    @classmethod
    def cli(cls) -> Actor:
        """Someone at a shell: labelled with the OS account that ran the command."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = "unknown"
        return cls(ActorKind.CLI, None, f"cli:{name}")


def _check_details(details: Mapping[str, Any], path: str = "details") -> None:
    for key, value in details.items():
        if not isinstance(key, str):
            raise AuditDetailRefused(f"{path}: keys must be strings")
        normalised = key.lower().replace("_", "").replace("-", "")
        if _SECRET_KEY.search(normalised):
            raise AuditDetailRefused(f"{path}.{key}: a key named like a secret is not audited")
        _check_value(value, f"{path}.{key}")


def _check_value(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        _check_details(value, path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
    elif isinstance(value, str):
        if redact_value(value) != value:
            raise AuditDetailRefused(f"{path}: the value looks like a token or secret")
    elif value is not None and not isinstance(value, bool | int):
        raise AuditDetailRefused(
            f"{path}: {type(value).__name__} is not audited; use str, int, bool or None"
        )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class EntryFields(Protocol):
    """What the hash covers: an `AuditEntry`, or a row selected from its table."""

    @property
    def id(self) -> UUID: ...

    @property
    def chain_id(self) -> UUID: ...

    @property
    def seq(self) -> int: ...

    @property
    def tenant_id(self) -> UUID | None: ...

    @property
    def occurred_at(self) -> datetime: ...

    @property
    def actor_kind(self) -> ActorKind: ...

    @property
    def actor_id(self) -> UUID | None: ...

    @property
    def actor_label(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def target_type(self) -> str | None: ...

    @property
    def target_id(self) -> str | None: ...

    @property
    def request_id(self) -> str | None: ...

    @property
    def ip(self) -> str | None: ...

    @property
    def outcome(self) -> AuditOutcome: ...

    @property
    def details(self) -> dict[str, Any]: ...

    @property
    def prev_hash(self) -> str: ...

    @property
    def hash(self) -> str: ...


def entry_hash(entry: EntryFields, prev_hash: str) -> str:
    """SHA-256 of the previous hash and the entry's every field, canonically encoded."""
    content = {
        "id": str(entry.id),
        "chain": str(entry.chain_id),
        "seq": entry.seq,
        "tenant": str(entry.tenant_id) if entry.tenant_id else None,
        "at": _timestamp(entry.occurred_at),
        "actor": [entry.actor_kind.value, str(entry.actor_id) if entry.actor_id else None,
                  entry.actor_label],
        "action": entry.action,
        "target": [entry.target_type, entry.target_id],
        "request_id": entry.request_id,
        "ip": entry.ip,
        "outcome": entry.outcome.value,
        "details": entry.details,
    }  # fmt: skip
    return hashlib.sha256(f"{prev_hash}\n{_canonical(content)}".encode()).hexdigest()


def chain_of(tenant_id: UUID | None) -> UUID:
    return tenant_id if tenant_id is not None else PLATFORM_CHAIN


async def _lock_head(session: AsyncSession, chain_id: UUID) -> AuditChainHead:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(AuditChainHead)
        .values(chain_id=chain_id, seq=0, hash=GENESIS_HASH, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["chain_id"])
    )
    head = await session.scalar(
        select(AuditChainHead)
        .where(AuditChainHead.chain_id == chain_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert head is not None  # inserted above, or already there
    return head


async def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    tenant_id: UUID | None,
    target_type: str | None = None,
    target_id: object | None = None,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    ip: str | None = None,
) -> AuditEntry:
    """Append an entry to the tenant's chain (the platform chain when `tenant_id` is None),
    in the caller's transaction. `details` must be small and hold no secret: keys named like
    secrets and values shaped like tokens are refused. Request id and client IP default to
    those bound to the log context by the request middleware.

    A refused attempt (outcome DENIED, e.g. a secret reveal by someone not allowed) must
    reach a commit to be kept: record it, then answer the refusal without raising, since an
    exception rolls the request's transaction back and the entry with it."""
    if not ACTION_PATTERN.fullmatch(action):
        raise AuditDetailRefused(f"action {action!r} must look like 'domain.verb'")
    document = dict(details or {})
    _check_details(document)
    if len(_canonical(document).encode()) > MAX_DETAILS_BYTES:
        raise AuditDetailRefused(f"details: more than {MAX_DETAILS_BYTES} bytes")
    bound = structlog.contextvars.get_contextvars()
    chain_id = chain_of(tenant_id)
    head = await _lock_head(session, chain_id)
    entry = AuditEntry(
        id=uuid7(),  # set now, not at flush: the hash covers it
        chain_id=chain_id,
        seq=head.seq + 1,
        tenant_id=tenant_id,
        occurred_at=utcnow(),
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label[:320],
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:100],
        request_id=request_id or _text(bound.get("request_id"), 64),
        ip=ip or _text(bound.get("client_ip"), 45),
        outcome=outcome,
        details=document,
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry, head.hash)
    head.seq, head.hash = entry.seq, entry.hash
    session.add(entry)
    await session.flush()
    return entry


def _text(value: object, limit: int) -> str | None:
    return str(value)[:limit] if value is not None else None


# Verification -----------------------------------------------------------------------------


VERIFY_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first link that does not hold: where (seq, entry id) and why."""

    seq: int
    entry_id: UUID | None
    reason: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    chain_id: UUID
    entries: int
    broken: ChainBreak | None

    @property
    def is_intact(self) -> bool:
        return self.broken is None

    @property
    def label(self) -> str:
        return "platform" if self.chain_id == PLATFORM_CHAIN else f"tenant {self.chain_id}"


def _check_link(entry: EntryFields, expected_seq: int, prev_hash: str) -> ChainBreak | None:
    if entry.seq != expected_seq:
        missing = "missing (deleted?)" if entry.seq > expected_seq else "out of order"
        return ChainBreak(expected_seq, entry.id, f"entry {expected_seq} is {missing}; "
                          f"found entry {entry.seq} in its place")  # fmt: skip
    if entry.prev_hash != prev_hash:
        return ChainBreak(
            entry.seq,
            entry.id,
            "previous-hash link does not match the entry before it "
            "(an entry before it was edited, deleted or reordered)",
        )
    if entry_hash(entry, prev_hash) != entry.hash:
        return ChainBreak(entry.seq, entry.id, "content does not match its hash (edited)")
    return None


@dataclass(slots=True)
class _Walk:
    """How far a verification has come: entries checked, and the last one's seq and hash."""

    count: int = 0
    last_seq: int = 0
    prev_hash: str = GENESIS_HASH


async def _walk(
    session: AsyncSession, chain_id: UUID, walk: _Walk, *, upto: int | None = None
) -> ChainBreak | None:
    """Check the chain's links after `walk.last_seq` (up to `upto`, else to its end), in
    batches of plain rows (nothing kept in the session); the first broken one."""
    table = AuditEntry.__table__
    while True:
        statement = select(table).where(table.c.chain_id == chain_id, table.c.seq > walk.last_seq)
        if upto is not None:
            statement = statement.where(table.c.seq <= upto)
        batch = (await session.execute(statement.order_by(table.c.seq).limit(VERIFY_BATCH))).all()
        for row in batch:
            entry = cast("EntryFields", row)
            broken = _check_link(entry, walk.count + 1, walk.prev_hash)
            if broken is not None:
                return broken
            walk.count, walk.last_seq, walk.prev_hash = walk.count + 1, entry.seq, entry.hash
        if len(batch) < VERIFY_BATCH:
            return None


async def verify_chain(session: AsyncSession, chain_id: UUID) -> ChainReport:
    """Walk one chain in order, in batches; the first broken link is reported.

    The hub keeps writing meanwhile: an entry and the head move in one transaction, so a
    head read after the walk that is ahead of it names entries committed since, and the
    walk goes on up to that head before comparing (on PostgreSQL each statement sees what
    committed before it; it was taken for a deleted tail)."""
    walk = _Walk()
    broken = await _walk(session, chain_id, walk) or await _check_end(session, chain_id, walk)
    return ChainReport(chain_id, walk.count, broken)


async def _check_end(session: AsyncSession, chain_id: UUID, walk: _Walk) -> ChainBreak | None:
    """Compare the walked chain with its head record (walking on to it if it is ahead)."""
    head = await _head(session, chain_id)
    if head is not None and head.seq > walk.count:
        broken = await _walk(session, chain_id, walk, upto=head.seq)
        if broken is not None:
            return broken
    if head is None and walk.count == 0 and await _is_tenant(session, chain_id):
        reason = "the tenant's chain is gone (entries and head deleted): it starts with "
        return ChainBreak(1, None, reason + "tenant.created, written with the tenant")
    return _check_head(head, walk.count, walk.prev_hash)


async def _is_tenant(session: AsyncSession, chain_id: UUID) -> bool:
    tenants = AuditEntry.metadata.tables["tenants"]
    return await session.scalar(select(tenants.c.id).where(tenants.c.id == chain_id)) is not None


async def _head(session: AsyncSession, chain_id: UUID) -> Row[int, str] | None:
    statement = select(AuditChainHead.seq, AuditChainHead.hash)
    return (
        await session.execute(statement.where(AuditChainHead.chain_id == chain_id))
    ).one_or_none()


def _check_head(head: Row[int, str] | None, count: int, last_hash: str) -> ChainBreak | None:
    if head is None:
        return None if count == 0 else ChainBreak(count, None, "the chain's head record is gone")
    if head.seq > count:
        return ChainBreak(count + 1, None, f"entries {count + 1}..{head.seq} are missing "
                          "(deleted from the end)")  # fmt: skip
    if head.seq != count or head.hash != last_hash:
        return ChainBreak(count, None, "the chain's head record does not match its last entry")
    return None


async def list_chains(session: AsyncSession) -> Sequence[UUID]:
    """Every chain there is, and every tenant's (whose chain may have been deleted whole)."""
    from_entries = select(AuditEntry.chain_id).distinct()
    from_heads = select(AuditChainHead.chain_id)
    from_tenants = select(AuditEntry.metadata.tables["tenants"].c.id)
    chains = set((await session.scalars(from_entries)).all())
    chains |= set((await session.scalars(from_heads)).all())
    chains |= set((await session.scalars(from_tenants)).all())
    return sorted(chains, key=lambda c: (c != PLATFORM_CHAIN, str(c)))


async def verify(session: AsyncSession, *, tenant_id: TenantID | None = None) -> list[ChainReport]:
    """Verify one tenant's chain, or every chain (the platform's first)."""
    if tenant_id is not None:
        return [await verify_chain(session, tenant_id)]
    return [await verify_chain(session, chain) for chain in await list_chains(session)]


__all__ = [
    "Actor",
    "AuditDetailRefused",
    "ChainBreak",
    "ChainReport",
    "entry_hash",
    "record",
    "verify",
    "verify_chain",
]
