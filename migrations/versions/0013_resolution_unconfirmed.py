"""resolutions in doubt: how many downloads reached back to the complaint without showing it,
and when the hub stopped waiting for one (left to a person to settle)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.core.db.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("doubt_misses", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("unconfirmed_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.drop_column("unconfirmed_at")
        batch_op.drop_column("doubt_misses")
