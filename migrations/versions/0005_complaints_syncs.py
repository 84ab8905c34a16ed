"""complaints, syncs, resolutions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:47:40.000463
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hub.core.crypto.sealed
import hub.core.db.base
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_schedules",
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
        sa.Column("interval_minutes", sa.Integer(), nullable=False),
        sa.Column("is_paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sync_schedules_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_schedules")),
        sa.UniqueConstraint(
            "tenant_id", "environment", name=op.f("uq_sync_schedules_tenant_id_environment")
        ),
    )
    with op.batch_alter_table("sync_schedules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_schedules_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "complaints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("contract", sa.String(length=5), nullable=False),
        sa.Column("complaint_id", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("issue_level", sa.String(length=100), nullable=False),
        sa.Column("is_immediate_need", sa.Boolean(), nullable=False),
        sa.Column("received_date", sa.Date(), nullable=False),
        sa.Column("assignment_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column(
            "due_basis",
            sa.Enum(
                "assignment",
                "received",
                name="duebasis",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("cms_resolution_date", sa.Date(), nullable=True),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("subcategory", sa.String(length=200), nullable=False),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("layout", sa.String(length=20), nullable=False),
        sa.Column("phi", hub.core.crypto.sealed.SealedColumn(), nullable=False),
        sa.Column("bene_index", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("phi_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "resolution_state",
            sa.Enum(
                "none",
                "queued",
                "uploading",
                "accepted",
                "rejected",
                name="resolutionstate",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("first_seen_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_changed_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_sync_run_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_complaints_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_complaints_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
        sa.UniqueConstraint(
            "tenant_id",
            "contract",
            "complaint_id",
            name=op.f("uq_complaints_tenant_id_contract_complaint_id"),
        ),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_complaints_bene_index"), ["bene_index"], unique=False)
        batch_op.create_index(
            "ix_complaints_due", ["tenant_id", "resolution_state", "due_date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_complaints_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "sync_cursors",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("contract", sa.String(length=5), nullable=False),
        sa.Column("synced_through", sa.Date(), nullable=True),
        sa.Column("last_success_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_due_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("is_blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_sync_cursors_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sync_cursors_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_cursors")),
        sa.UniqueConstraint(
            "api_key_id", "contract", name=op.f("uq_sync_cursors_api_key_id_contract")
        ),
    )
    with op.batch_alter_table("sync_cursors", schema=None) as batch_op:
        batch_op.create_index("ix_sync_cursors_due", ["next_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sync_cursors_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "sync_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("contract", sa.String(length=5), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("window_start", sa.Date(), nullable=False),
        sa.Column("window_end", sa.Date(), nullable=False),
        sa.Column("layout", sa.String(length=20), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_new", sa.Integer(), nullable=False),
        sa.Column("rows_changed", sa.Integer(), nullable=False),
        sa.Column("rows_unchanged", sa.Integer(), nullable=False),
        sa.Column("rows_quarantined", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.Integer(), nullable=False),
        sa.Column("bytes_read", sa.Integer(), nullable=False),
        sa.Column("started_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column(
            "outcome",
            sa.Enum(
                "running",
                "succeeded",
                "failed",
                "blocked",
                name="runoutcome",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_sync_runs_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sync_runs_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sync_runs_pair", ["api_key_id", "contract", "started_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_sync_runs_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "complaint_changes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("complaint_pk", sa.Uuid(), nullable=False),
        sa.Column("sync_run_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column(
            "changed",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["complaint_pk"],
            ["complaints.id"],
            name=op.f("fk_complaint_changes_complaint_pk_complaints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_complaint_changes_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_changes")),
    )
    with op.batch_alter_table("complaint_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaint_changes_complaint_pk"), ["complaint_pk"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_complaint_changes_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "quarantined_rows",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("sync_run_id", sa.Uuid(), nullable=False),
        sa.Column("contract", sa.String(length=5), nullable=False),
        sa.Column("file_name", sa.String(length=200), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("raw", hub.core.crypto.sealed.SealedColumn(), nullable=True),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sync_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_quarantined_rows_sync_run_id_sync_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_quarantined_rows_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_rows")),
    )
    with op.batch_alter_table("quarantined_rows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantined_rows_sync_run_id"), ["sync_run_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_quarantined_rows_tenant_id"), ["tenant_id"], unique=False
        )

    op.create_table(
        "resolutions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("complaint_pk", sa.Uuid(), nullable=False),
        sa.Column("contract", sa.String(length=5), nullable=False),
        sa.Column("complaint_id", sa.String(length=64), nullable=False),
        sa.Column("resolution_date", sa.Date(), nullable=False),
        sa.Column("summary", hub.core.crypto.sealed.SealedColumn(), nullable=False),
        sa.Column("casework_notes", hub.core.crypto.sealed.SealedColumn(), nullable=True),
        sa.Column("complainant_satisfied", sa.String(length=1), nullable=True),
        sa.Column("resolution_notification", sa.String(length=200), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "none",
                "queued",
                "uploading",
                "accepted",
                "rejected",
                name="resolutionstate",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("submitted_by", sa.Uuid(), nullable=True),
        sa.Column("upload_batch", sa.Uuid(), nullable=True),
        sa.Column("uploaded_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "cms_errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.core.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_resolutions_api_key_id_api_keys"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["complaint_pk"],
            ["complaints.id"],
            name=op.f("fk_resolutions_complaint_pk_complaints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"],
            ["users.id"],
            name=op.f("fk_resolutions_submitted_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_resolutions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resolutions")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name=op.f("uq_resolutions_tenant_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resolutions_complaint_pk"), ["complaint_pk"], unique=False
        )
        batch_op.create_index("ix_resolutions_queue", ["state", "contract"], unique=False)
        batch_op.create_index(batch_op.f("ix_resolutions_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_resolutions_upload_batch"), ["upload_batch"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("resolutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resolutions_upload_batch"))
        batch_op.drop_index(batch_op.f("ix_resolutions_tenant_id"))
        batch_op.drop_index("ix_resolutions_queue")
        batch_op.drop_index(batch_op.f("ix_resolutions_complaint_pk"))

    op.drop_table("resolutions")
    with op.batch_alter_table("quarantined_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_rows_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_quarantined_rows_sync_run_id"))

    op.drop_table("quarantined_rows")
    with op.batch_alter_table("complaint_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaint_changes_tenant_id"))
        batch_op.drop_index(batch_op.f("ix_complaint_changes_complaint_pk"))

    op.drop_table("complaint_changes")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_tenant_id"))
        batch_op.drop_index("ix_sync_runs_pair")

    op.drop_table("sync_runs")
    with op.batch_alter_table("sync_cursors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_cursors_tenant_id"))
        batch_op.drop_index("ix_sync_cursors_due")

    op.drop_table("sync_cursors")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaints_tenant_id"))
        batch_op.drop_index("ix_complaints_due")
        batch_op.drop_index(batch_op.f("ix_complaints_bene_index"))

    op.drop_table("complaints")
    with op.batch_alter_table("sync_schedules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_schedules_tenant_id"))

    op.drop_table("sync_schedules")
