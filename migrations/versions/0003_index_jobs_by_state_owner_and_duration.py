"""Index Jobs by state, owner and duration

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 15:20:00.000000

The index covers the columns that per-ScaledJob reports over finished Jobs read (success
rates, run-time percentiles), so they scan the index instead of the table. On PostgreSQL,
CREATE INDEX blocks writes to `jobs` while it runs.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_state_object_duration",
            ["state", "scaled_object_uid", "duration_seconds"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_object_duration")
