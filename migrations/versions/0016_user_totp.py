"""auth: a user's second sign-in step (a TOTP secret wrapped by the master key ring)

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.core.db.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_totp",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("wrapped_secret", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_version", sa.String(length=64), nullable=False),
        sa.Column("enabled_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_totp_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_totp")),
        sa.UniqueConstraint("user_id", name=op.f("uq_user_totp_user_id")),
    )


def downgrade() -> None:
    op.drop_table("user_totp")
