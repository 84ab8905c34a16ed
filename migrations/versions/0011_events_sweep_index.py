"""events sweep index: the undispatched events, the least tried first

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDISPATCHED = "dispatched_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_sweep",
            ["attempts", "occurred_at"],
            unique=False,
            postgresql_where=sa.text(UNDISPATCHED),
            sqlite_where=sa.text(UNDISPATCHED),
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_sweep",
            postgresql_where=sa.text(UNDISPATCHED),
            sqlite_where=sa.text(UNDISPATCHED),
        )
