"""Request and response bodies of the auth API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from hub.auth.models import ApiToken, Membership
from hub.core.text import Text


class Me(msgspec.Struct):
    user_id: UUID
    email: str
    tenant_id: UUID | None
    role: str | None
    scopes: list[str]
    is_operator: bool


class MemberView(msgspec.Struct):
    id: UUID
    user_id: UUID
    email: str
    display_name: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, member: Membership) -> MemberView:
        return cls(
            id=member.id,
            user_id=member.user_id,
            email=member.user.email,
            display_name=member.user.display_name,
            role=member.role.value,
            created_at=member.created_at,
        )


class TokenView(msgspec.Struct):
    id: UUID
    name: str
    prefix: str
    user_id: UUID
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    key: UUID | None  # the HPMS key a key-bound (gateway) token acts with; else null

    @classmethod
    def of(cls, token: ApiToken) -> TokenView:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            user_id=token.user_id,
            scopes=list(token.scopes),
            created_at=token.created_at,
            expires_at=token.expires_at,
            last_used_at=token.last_used_at,
            revoked_at=token.revoked_at,
            key=token.api_key_id,
        )


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Text
    scopes: list[str]
    expires_in: str | None = None  # "30d", "12h"


class TokenCreated(msgspec.Struct):
    token: TokenView
    secret: str  # the bearer token itself, shown this once
