"""SQLAlchemy models of the ledger. The schema itself is created by the Alembic migrations.

Times are written and read as timezone-aware UTC (see `UtcDateTime`). Kubernetes uids are the
primary keys of scaled objects and Jobs, so recording the same object twice updates one row
instead of adding a second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A `DateTime(timezone=True)` column whose values are converted to UTC both ways.

    SQLite has no time zone type, and SQLAlchemy writes an aware datetime's wall-clock time
    without its offset, so a value is converted to UTC before it is written. PostgreSQL
    returns `timestamptz` values in the session's TimeZone setting, so values read back are
    converted too. Naive datetimes are taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)


def utc(value: datetime) -> datetime:
    """Return `value` in UTC; a naive value is taken to be in UTC already."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Return `value` in UTC, or None for None."""
    return None if value is None else utc(value)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
    }


class ScaledObjectRow(Base):
    """A ScaledJob (later also a ScaledObject) the runner has seen."""

    __tablename__ = "scaled_objects"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    generation: Mapped[int] = mapped_column(BigInteger)
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]

    __table_args__ = (Index("ix_scaled_objects_namespace_name", "namespace", "name"),)


class ScalingDecisionRow(Base):
    """A poll that decided to create Jobs: its inputs and how many Jobs it created."""

    __tablename__ = "scaling_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scaled_object_uid: Mapped[str] = mapped_column(ForeignKey("scaled_objects.uid"))
    decided_at: Mapped[datetime]
    generation: Mapped[int] = mapped_column(BigInteger)
    strategy: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean)
    queue_length: Mapped[float] = mapped_column(Float)
    max_scale: Mapped[int] = mapped_column(Integer)
    running: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer)
    effective_max_scale: Mapped[int] = mapped_column(Integer)
    jobs_requested: Mapped[int] = mapped_column(Integer)
    jobs_created: Mapped[int] = mapped_column(Integer)
    # Per-trigger inputs: [{"trigger": ..., "queueLength": ..., "target": ..., "active": ...}]
    triggers: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_scaling_decisions_object_time", "scaled_object_uid", "decided_at"),)


class JobRow(Base):
    """A Kubernetes Job the runner created, with its lifecycle as the watches reported it."""

    __tablename__ = "jobs"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    scaled_object_uid: Mapped[str] = mapped_column(ForeignKey("scaled_objects.uid"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("scaling_decisions.id"))
    scaled_object_generation: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    # pending, running, succeeded, failed, or deleted (removed before it finished)
    state: Mapped[str] = mapped_column(String(16))
    state_changed_at: Mapped[datetime]
    # When the first container of the Job's first pod started running.
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # finished_at - started_at, in seconds; NULL until both are known.
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    # The Complete or Failed condition's reason and message, such as BackoffLimitExceeded.
    reason: Mapped[str | None] = mapped_column(String(128))
    message: Mapped[str | None] = mapped_column(Text)
    # The exit code of the last pod that finished.
    exit_code: Mapped[int | None] = mapped_column(Integer)
    # Pods created for the Job plus container restarts inside them.
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_object_created", "scaled_object_uid", "created_at"),
        Index("ix_jobs_state_finished", "state", "finished_at"),
        # Covers per-ScaledJob reports over finished Jobs: success rates, run-time percentiles.
        Index("ix_jobs_state_object_duration", "state", "scaled_object_uid", "duration_seconds"),
    )


class JobPodRow(Base):
    """A pod of a recorded Job.

    `job_uid` refers to jobs.uid without a foreign key, because a pod's watch event can reach
    the ledger before its Job's.
    """

    __tablename__ = "job_pods"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_uid: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    node: Mapped[str | None] = mapped_column(String(253))
    # Pending, Running, Succeeded, Failed or Unknown, as Kubernetes reports it
    phase: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    exit_code: Mapped[int | None] = mapped_column(Integer)
    # The container's termination reason, such as Completed, Error or OOMKilled.
    termination_reason: Mapped[str | None] = mapped_column(String(128))
    restarts: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_job_pods_job_uid", "job_uid"),)
