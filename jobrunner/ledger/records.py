"""Records the ledger stores and returns, as plain frozen dataclasses (no ORM state)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# States a Job never leaves once recorded.
KEPT_STATES = ("succeeded", "failed", "deleted")
JOB_STATES = ("pending", "running", "succeeded", "failed", "deleted")


@dataclass(frozen=True)
class ObservedJob:
    """A Job as a watch event shows it.

    `state` is pending, running, succeeded, failed or deleted; `reason` and `message` are
    those of its Complete or Failed condition.
    """

    uid: str
    namespace: str
    name: str
    scaled_object_uid: str
    scaled_object_name: str
    generation: int
    created_at: datetime
    state: str
    finished_at: datetime | None = None
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ObservedPod:
    """A pod of a Job as a watch event shows it; times and exit code are its main container's."""

    uid: str
    job_uid: str
    namespace: str
    name: str
    node: str
    phase: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    termination_reason: str = ""
    restarts: int = 0


@dataclass(frozen=True)
class DecisionInput:
    """The numbers of one poll that created Jobs, as the ledger stores them."""

    scaled_object_uid: str
    generation: int
    strategy: str
    active: bool
    queue_length: float
    max_scale: int
    running: int
    pending: int
    effective_max_scale: int
    jobs_requested: int
    triggers: Sequence[dict[str, Any]]


@dataclass(frozen=True)
class HistoryFilter:
    """Selection of the Jobs `history` returns; a field left at its default matches every Job."""

    scaled_job: str | None = None
    namespace: str | None = None
    job_name: str | None = None
    states: tuple[str, ...] = ()
    since: datetime | None = None
    limit: int = 50


@dataclass(frozen=True)
class JobRecord:
    """A Job as `jobrunner history` shows it."""

    uid: str
    namespace: str
    name: str
    scaled_job: str
    created_at: datetime
    state: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_seconds: float | None = None
    exit_code: int | None = None
    reason: str = ""
    attempts: int = 0
    pods: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "namespace": self.namespace,
            "name": self.name,
            "scaledJob": self.scaled_job,
            "state": self.state,
            "createdAt": _iso(self.created_at),
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "durationSeconds": self.duration_seconds,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "attempts": self.attempts,
            "pods": list(self.pods),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
