"""Record the Job lifecycle and pods

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 14:33:17.243698
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_pods",
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("job_uid", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("node", sa.String(length=253), nullable=True),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("termination_reason", sa.String(length=128), nullable=True),
        sa.Column("restarts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uid"),
    )
    with op.batch_alter_table("job_pods", schema=None) as batch_op:
        batch_op.create_index("ix_job_pods_job_uid", ["job_uid"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("duration_seconds", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("message", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("exit_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_jobs_state_finished", ["state", "finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_finished")
        batch_op.drop_column("attempts")
        batch_op.drop_column("exit_code")
        batch_op.drop_column("message")
        batch_op.drop_column("reason")
        batch_op.drop_column("duration_seconds")
        batch_op.drop_column("started_at")

    with op.batch_alter_table("job_pods", schema=None) as batch_op:
        batch_op.drop_index("ix_job_pods_job_uid")

    op.drop_table("job_pods")
