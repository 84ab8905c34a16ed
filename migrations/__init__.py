"""Alembic migrations (shipped in the wheel beside hub and workers; see hub.core.db.migrate)."""
