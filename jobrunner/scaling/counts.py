"""Unfinished and pending Job counts, counted as KEDA counts them. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class JobState(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def finished(self) -> bool: ...


class PodState(Protocol):
    @property
    def phase(self) -> str: ...
    @property
    def true_conditions(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class JobCounts:
    """Unfinished Jobs of a ScaledJob; `pending` is the part whose pods have not started."""

    running: int
    pending: int


def count_jobs(
    jobs: Iterable[JobState],
    pods_of: Callable[[str], Sequence[PodState]],
    *,
    pending_pod_conditions: tuple[str, ...] = (),
) -> JobCounts:
    """Count unfinished Jobs, and those of them still pending.

    A Job is pending when none of its pods is Running or Succeeded; with
    `pending_pod_conditions`, when no single pod has every listed condition True. A Job with
    no pods is pending. `pods_of("namespace/job")` returns the pods of one Job.
    """
    running = pending = 0
    for job in jobs:
        if job.finished:
            continue
        running += 1
        pods = pods_of(f"{job.namespace}/{job.name}")
        if pending_pod_conditions:
            wanted = set(pending_pod_conditions)
            started = any(wanted <= pod.true_conditions for pod in pods)
        else:
            started = any(pod.phase in ("Running", "Succeeded") for pod in pods)
        pending += not started
    return JobCounts(running=running, pending=pending)
