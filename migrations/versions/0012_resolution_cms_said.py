"""resolutions: CMS's own words about a rejected upload, sealed (they may quote PHI); the
clear cms_errors keep their safe form

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.core.crypto.sealed

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cms_said", hub.core.crypto.sealed.SealedColumn(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.drop_column("cms_said")
