"""complaints apart per CMS environment: a sandbox and a production complaint with the same
contract and complaint ID are two rows (they overwrote each other)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 07:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENVIRONMENT = sa.Enum(
    "sandbox",
    "production",
    name="environment",
    native_enum=False,
    create_constraint=True,
    length=32,
)


def upgrade() -> None:
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("environment", ENVIRONMENT, nullable=True))
    # Each complaint came from the environment of the key that downloaded it. A complaint
    # whose key is gone (never the case while keys are only ever deactivated) is taken as
    # production's: the stricter assumption for PHI.
    op.execute(
        "UPDATE complaints SET environment = (SELECT api_keys.environment FROM api_keys "
        "WHERE api_keys.id = complaints.api_key_id)"
    )
    op.execute("UPDATE complaints SET environment = 'production' WHERE environment IS NULL")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.alter_column("environment", existing_type=ENVIRONMENT, nullable=False)
        batch_op.drop_constraint("uq_complaints_tenant_id_contract_complaint_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_complaints_tenant_id_environment_contract_complaint_id",
            ["tenant_id", "environment", "contract", "complaint_id"],
        )


def downgrade() -> None:
    # One row per (tenant, contract, complaint ID) again: where both environments hold the
    # complaint, the sandbox row goes (with its history and resolutions, by cascade).
    op.execute(
        "DELETE FROM complaints WHERE environment = 'sandbox' AND EXISTS ("
        "SELECT 1 FROM complaints AS p WHERE p.environment = 'production' "
        "AND p.tenant_id = complaints.tenant_id AND p.contract = complaints.contract "
        "AND p.complaint_id = complaints.complaint_id)"
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_constraint(
            "uq_complaints_tenant_id_environment_contract_complaint_id", type_="unique"
        )
        batch_op.create_unique_constraint(
            "uq_complaints_tenant_id_contract_complaint_id", ["tenant_id", "contract", "complaint_id"]
        )
        batch_op.drop_constraint(batch_op.f("ck_complaints_environment"), type_="check")
        batch_op.drop_column("environment")
