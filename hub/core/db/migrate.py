"""Alembic, driven from code: `hub db upgrade|downgrade` and the tests use these."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parents[3] / "migrations"


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def revision(url: str, message: str, rev_id: str) -> None:
    """Autogenerate a revision from the difference between the models and `url`'s schema."""
    config = alembic_config(url)
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    command.revision(config, message=message, autogenerate=True, rev_id=rev_id)


def current_heads() -> tuple[str, ...]:
    return tuple(_scripts().get_heads())


def revisions() -> list[str]:
    """Every revision id, newest first."""
    return [script.revision for script in _scripts().walk_revisions()]


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


async def upgrade_async(url: str, revision: str = "head") -> None:
    """Run an upgrade from inside an event loop (Alembic's async env runs its own loop)."""
    await asyncio.to_thread(upgrade, url, revision)
