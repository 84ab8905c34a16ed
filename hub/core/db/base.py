"""The declarative base every table derives from: naming convention, id, timestamps, tenancy."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, MetaData, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

from hub.core.ids import TenantID, uuid7

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def zulu(moment: datetime) -> str:
    """A UTC time as events and API bodies write it: ISO 8601 ending in `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite stores no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the hub stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(enum_cls: type[enum.StrEnum], length: int = 32) -> Enum:
    """A string column holding an enum's values (not its names), checked on both databases."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
        name=enum_cls.__name__.lower(),
    )


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        UUID: Uuid(),
        dict[str, Any]: JSONDocument,
        list[Any]: JSONDocument,
    }


class IdMixin:
    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid7, sort_order=-10)

    def __init__(self, **values: Any) -> None:
        # The id exists from construction, not from the first flush, so that a row's id can
        # be used before it is written (sealing binds ciphertext to the owning row's id).
        values.setdefault("id", uuid7())
        super().__init__(**values)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=90)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, sort_order=91)


class Entity(IdMixin, TimestampMixin):
    """A row with a time-ordered UUID primary key and UTC created/updated stamps."""


class TenantOwned:
    """A row that belongs to one tenant; repositories filter on `tenant_id` first.

    `tenant_id` has an index of its own unless the class says `tenant_index = False` (a
    table whose unique key leads with `tenant_id` serves the same lookups)."""

    tenant_index: ClassVar[bool] = True

    @declared_attr
    def tenant_id(cls) -> Mapped[TenantID]:
        return mapped_column(
            Uuid(),
            ForeignKey("tenants.id", ondelete="CASCADE"),
            index=cls.tenant_index,
            nullable=False,
            sort_order=-9,
        )
