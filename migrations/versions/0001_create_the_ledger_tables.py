"""Create the ledger tables

Revision ID: 0001
Revises:
Create Date: 2026-12-04 14:03:41.918928
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scaled_objects",
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uid"),
    )
    with op.batch_alter_table("scaled_objects", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scaled_objects_namespace_name", ["namespace", "name"], unique=False
        )

    op.create_table(
        "scaling_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scaled_object_uid", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("queue_length", sa.Float(), nullable=False),
        sa.Column("max_scale", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("effective_max_scale", sa.Integer(), nullable=False),
        sa.Column("jobs_requested", sa.Integer(), nullable=False),
        sa.Column("jobs_created", sa.Integer(), nullable=False),
        sa.Column("triggers", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scaled_object_uid"],
            ["scaled_objects.uid"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("scaling_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scaling_decisions_object_time", ["scaled_object_uid", "decided_at"], unique=False
        )

    op.create_table(
        "jobs",
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("scaled_object_uid", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("scaled_object_generation", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["scaling_decisions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["scaled_object_uid"],
            ["scaled_objects.uid"],
        ),
        sa.PrimaryKeyConstraint("uid"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_jobs_object_created", ["scaled_object_uid", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_object_created")
        batch_op.drop_index("ix_jobs_created_at")

    op.drop_table("jobs")
    with op.batch_alter_table("scaling_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_scaling_decisions_object_time")

    op.drop_table("scaling_decisions")
    with op.batch_alter_table("scaled_objects", schema=None) as batch_op:
        batch_op.drop_index("ix_scaled_objects_namespace_name")

    op.drop_table("scaled_objects")
