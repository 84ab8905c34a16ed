"""Users, their memberships in tenants, and API tokens."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.core.db import Base, Entity, TenantOwned, enum_column
from hub.core.ids import TenantID


class Role(enum.StrEnum):
    ADMIN = "admin"
    CASEWORKER = "caseworker"
    VIEWER = "viewer"


class Scope(enum.StrEnum):
    COMPLAINTS_READ = "complaints:read"
    COMPLAINTS_WRITE = "complaints:write"
    KEYS_READ = "keys:read"
    KEYS_MANAGE = "keys:manage"
    WEBHOOKS_MANAGE = "webhooks:manage"
    ALERTS_READ = "alerts:read"
    AUDIT_READ = "audit:read"
    CTM_GATEWAY = "ctm:gateway"
    TENANT_ADMIN = "tenant:admin"


# What a role may hold at most: a token's scopes are checked against its user's role, so a
# viewer cannot mint a token that writes.
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.CASEWORKER: frozenset(
        {
            Scope.COMPLAINTS_READ,
            Scope.COMPLAINTS_WRITE,
            Scope.KEYS_READ,
            Scope.KEYS_MANAGE,
            Scope.ALERTS_READ,
            Scope.CTM_GATEWAY,
        }
    ),
    Role.VIEWER: frozenset(
        {Scope.COMPLAINTS_READ, Scope.KEYS_READ, Scope.KEYS_MANAGE, Scope.ALERTS_READ}
    ),
}


class User(Entity, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_operator: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", lazy="raise")


class Membership(Entity, TenantOwned, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id"),)

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(enum_column(Role))

    user: Mapped[User] = relationship(back_populates="memberships", lazy="raise")


class ApiToken(Entity, Base):
    """A bearer token. Only its SHA-256 is stored; `prefix` lets a person recognise it."""

    __tablename__ = "api_tokens"

    # Null for a platform operator's token, which belongs to no tenant.
    tenant_id: Mapped[TenantID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # Set on hub tokens issued to a key's designee: revoked with the key on a compromise.
    api_key_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )


class UserTotp(Entity, Base):
    """A user's second sign-in step: a TOTP secret (RFC 6238), wrapped by the master key ring
    with the user's id bound as context, as a tenant's data key is (see hub/auth/mfa.py)."""

    __tablename__ = "user_totp"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    wrapped_secret: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_version: Mapped[str] = mapped_column(String(64))
    # None while the user is enrolling (the code from their app not yet confirmed).
    enabled_at: Mapped[datetime | None]
    # The last 30-second step a code was accepted for: the same code is never taken twice.
    last_step: Mapped[int] = mapped_column(BigInteger, default=0)
