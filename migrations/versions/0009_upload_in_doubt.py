"""uploads in doubt: when a resolution's upload outcome became unknown, and how far back the
next download of its contract reaches to find out

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 05:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.core.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "in_doubt_since", hub.core.db.base.UTCDateTime(timezone=True), nullable=True
            )
        )
    with op.batch_alter_table("sync_cursors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recheck_from", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_cursors", schema=None) as batch_op:
        batch_op.drop_column("recheck_from")
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.drop_column("in_doubt_since")
