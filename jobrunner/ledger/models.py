"""SQLAlchemy models of the ledger. The schema itself is created by the Alembic migrations.

Times are timezone-aware UTC. Kubernetes uids are the primary keys of scaled objects and Jobs,
so recording the same object twice updates one row instead of adding a second.
"""

from __future__ import annotations

from datetime import datetime
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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
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
    """A Kubernetes Job the runner created, with its last known state."""

    __tablename__ = "jobs"

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(253))
    scaled_object_uid: Mapped[str] = mapped_column(ForeignKey("scaled_objects.uid"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("scaling_decisions.id"))
    scaled_object_generation: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    # pending, running, succeeded, failed or deleted
    state: Mapped[str] = mapped_column(String(16))
    state_changed_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_object_created", "scaled_object_uid", "created_at"),
    )
