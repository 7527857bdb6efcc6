"""Which finished Jobs a poll deletes (history limits) and which a spec change deletes (rollout).

Pure functions over small records, so the rules are table-tested without a cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class JobSummary:
    """Fields of one Job that the cleanup rules read."""

    name: str
    generation: int | None
    succeeded: bool = False
    failed: bool = False
    finished_at: datetime | None = None


def history_to_delete(
    jobs: Sequence[JobSummary], *, successful_limit: int, failed_limit: int
) -> list[str]:
    """Name the oldest succeeded and failed Jobs beyond their history limits.

    Each group is sorted by finish time, oldest first; a Job without a finish time sorts last,
    so it is the last to go. A limit of 0 deletes every finished Job of its group.
    """
    doomed: list[str] = []
    groups = (
        ([job for job in jobs if job.succeeded], successful_limit),
        ([job for job in jobs if job.failed and not job.succeeded], failed_limit),
    )
    for group, limit in groups:
        excess = len(group) - limit
        if excess <= 0:
            continue
        ordered = sorted(group, key=lambda job: (job.finished_at is None, job.finished_at or 0))
        doomed.extend(job.name for job in ordered[:excess])
    return doomed


def rollout_to_delete(jobs: Sequence[JobSummary], *, generation: int, gradual: bool) -> list[str]:
    """Name the Jobs a spec change deletes: every Job of another generation, finished or not.

    Under the `gradual` strategy nothing is deleted. A Job without a generation annotation
    counts as another generation.
    """
    if gradual:
        return []
    return [job.name for job in jobs if job.generation != generation]
