"""alerts: the kind resolution.unconfirmed (an upload's outcome no download could tell)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 12:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = [
    "key.rotation_due",
    "key.invalid",
    "key.compromised",
    "key.access_lost",
    "key.orphaned",
    "contract.uncovered",
    "sync.failing",
    "complaint.due_soon",
    "complaint.overdue",
    "webhook.endpoint_disabled",
]
NEW = "resolution.unconfirmed"


def _allow(kinds: list[str]) -> None:
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_alerts_alertkind"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_alerts_alertkind"), f"kind IN ({listed})")


def upgrade() -> None:
    _allow([*KINDS, NEW])


def downgrade() -> None:
    # Alerts of the new kind cannot be kept under the old constraint: they go.
    op.execute(sa.text("DELETE FROM alerts WHERE kind = :kind").bindparams(kind=NEW))
    _allow(KINDS)
