"""complaints: only the unique key leads with tenant_id (a sync's probes never read a
tenant's every complaint); the deadline index leads with state and due date

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29 17:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_complaints_tenant_id", table_name="complaints")
    op.drop_index("ix_complaints_due", table_name="complaints")
    op.create_index(
        "ix_complaints_due", "complaints", ["resolution_state", "due_date", "tenant_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_complaints_due", table_name="complaints")
    op.create_index(
        "ix_complaints_due", "complaints", ["tenant_id", "resolution_state", "due_date"]
    )
    op.create_index("ix_complaints_tenant_id", "complaints", ["tenant_id"])
