"""Tenants: the plans (or plan groups) the vendor serves."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from hub.core.db import Base, Entity, enum_column


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    OFFBOARDED = "offboarded"


class Tenant(Entity, Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[TenantStatus] = mapped_column(
        enum_column(TenantStatus), default=TenantStatus.ACTIVE
    )
    offboarded_at: Mapped[datetime | None]
    # The default for a new key's expected rotation date, when its RP sets none.
    key_rotation_days: Mapped[int] = mapped_column(default=90, server_default="90")

    @property
    def is_active(self) -> bool:
        return self.status is TenantStatus.ACTIVE
