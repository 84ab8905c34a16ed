"""Portal sign-in sessions: a random cookie value, of which only a SHA-256 is stored."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.db import Base, Entity
from hub.core.ids import TenantID


class PortalSession(Entity, Base):
    """One browser's sign-in. It ends at sign-out, after `HUB_PORTAL_IDLE_MINUTES` without a
    request, at `expires_at` whatever happens, or when its user is deactivated; the tenant
    it works in is chosen among the user's memberships, checked again on every request."""

    __tablename__ = "portal_sessions"

    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The tenant the session works in (None: not chosen yet, or an operator's console).
    tenant_id: Mapped[TenantID | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")
