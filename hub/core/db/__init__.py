"""Database layer: declarative base and mixins, engines, and the unit of work."""

from hub.core.db.base import Base, Entity, TenantOwned, UTCDateTime, enum_column, utcnow, zulu
from hub.core.db.engine import Database, create_engine, is_sqlite, lost_connection

__all__ = [
    "Base",
    "Database",
    "Entity",
    "TenantOwned",
    "UTCDateTime",
    "create_engine",
    "enum_column",
    "is_sqlite",
    "lost_connection",
    "utcnow",
    "zulu",
]
