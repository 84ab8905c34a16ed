"""keys vault: api keys, versions, contracts, designees

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 00:40:14.857495
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.core.crypto.sealed
import hub.core.db.base


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column(
            "environment",
            sa.Enum(
                "sandbox",
                "production",
                name="environment",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("responsible_party_id", sa.Uuid(), nullable=False),
        sa.Column("hpms_user_id", sa.String(length=100), nullable=False),
        sa.Column("technical_poc_name", sa.String(length=200), nullable=False),
        sa.Column("technical_poc_email", sa.String(length=320), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "suspended",
                "needs_replacement",
                "compromised",
                "deactivated",
                name="keystatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("status_reason", sa.String(length=500), nullable=True),
        sa.Column("expected_rotation_on", sa.Date(), nullable=True),
        sa.Column("last_used_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_reason", sa.String(length=500), nullable=True),
        sa.Column("compromised_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deactivated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replaces_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["replaces_id"],
            ["api_keys.id"],
            name=op.f("fk_api_keys_replaces_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["responsible_party_id"],
            ["users.id"],
            name=op.f("fk_api_keys_responsible_party_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_replaces_id"), ["replaces_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_api_keys_responsible_party_id"), ["responsible_party_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "contracts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.String(length=5), nullable=False),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_contracts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("tenant_id", "number", name=op.f("uq_contracts_tenant_id_number")),
    )
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contracts_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "api_key_contracts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("access_lost_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("access_lost_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_contracts_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_api_key_contracts_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_key_contracts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_contracts")),
        sa.UniqueConstraint(
            "api_key_id", "contract_id", name=op.f("uq_api_key_contracts_api_key_id_contract_id")
        ),
    )
    with op.batch_alter_table("api_key_contracts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_key_contracts_api_key_id"), ["api_key_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_api_key_contracts_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_api_key_contracts_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "api_key_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column(
            "environment",
            sa.Enum(
                "sandbox",
                "production",
                name="environment",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("key_id", sa.String(length=200), nullable=False),
        sa.Column("secret", hub.core.crypto.sealed.SealedColumn(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "current",
                "retiring",
                "retired",
                name="versionstate",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("verified_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("retire_after", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "secret_destroyed_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_versions_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_key_versions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_versions")),
        sa.UniqueConstraint(
            "environment", "key_id", name=op.f("uq_api_key_versions_environment_key_id")
        ),
    )
    with op.batch_alter_table("api_key_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_key_versions_api_key_id"), ["api_key_id"], unique=False
        )
        batch_op.create_index(
            "ix_api_key_versions_retiring", ["state", "retire_after"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_api_key_versions_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "api_key_designees",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("api_token_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_api_key_designees_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["api_token_id"],
            ["api_tokens.id"],
            name=op.f("fk_api_key_designees_api_token_id_api_tokens"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_key_designees_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_key_designees_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key_designees")),
        sa.UniqueConstraint(
            "api_key_id", "api_token_id", name=op.f("uq_api_key_designees_api_key_id_api_token_id")
        ),
        sa.UniqueConstraint(
            "api_key_id", "user_id", name=op.f("uq_api_key_designees_api_key_id_user_id")
        ),
    )
    with op.batch_alter_table("api_key_designees", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_key_designees_api_key_id"), ["api_key_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_api_key_designees_tenant_id"), ["tenant_id"], unique=False
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_tokens_api_key_id"), ["api_key_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_api_tokens_api_key_id_api_keys"),
            "api_keys",
            ["api_key_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_rotation_days", sa.Integer(), server_default="90", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("key_rotation_days")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_api_tokens_api_key_id_api_keys"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_api_tokens_api_key_id"))
        batch_op.drop_column("api_key_id")

    with op.batch_alter_table("api_key_designees", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_designees_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_api_key_designees_api_key_id"))

    op.drop_table("api_key_designees")
    with op.batch_alter_table("api_key_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_versions_tenant_id"))
        batch_op.drop_index("ix_api_key_versions_retiring")
        batch_op.drop_index(batch_op.f("ix_api_key_versions_api_key_id"))

    op.drop_table("api_key_versions")
    with op.batch_alter_table("api_key_contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_contracts_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_api_key_contracts_contract_id"))
        batch_op.drop_index(batch_op.f("ix_api_key_contracts_api_key_id"))

    op.drop_table("api_key_contracts")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contracts_tenant_id"))

    op.drop_table("contracts")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_responsible_party_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_replaces_id"))

    op.drop_table("api_keys")
