"""Slim records of Jobs and Pods, parsed straight from the API server's JSON.

The watch caches keep these instead of the client's model objects, and the ledger records
what they carry: states, times, exit codes and reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NAME_LABEL = "scaledjob.jobrunner.dev/name"
GENERATION_ANNOTATION = "scaledjob.jobrunner.dev/generation"
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")


@dataclass(frozen=True)
class JobInfo:
    """The fields of a Job the runner reads."""

    namespace: str
    name: str
    uid: str
    scaled_job: str
    owner_uid: str
    # The ScaledJob generation the Job was made from; None when the annotation is missing.
    generation: int | None
    created_at: datetime
    complete: bool
    failed: bool
    ready_pods: int
    finished_at: datetime | None
    # The reason and message of the Complete or Failed condition, such as BackoffLimitExceeded.
    reason: str = ""
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.complete or self.failed

    @property
    def owner_key(self) -> str:
        return f"{self.namespace}/{self.scaled_job}"

    @property
    def state(self) -> str:
        if self.complete:
            return "succeeded"
        if self.failed:
            return "failed"
        return "running" if self.ready_pods > 0 else "pending"


@dataclass(frozen=True)
class PodInfo:
    """The fields of a Job's pod the runner reads; times and exit code are the main container's."""

    namespace: str
    name: str
    job_name: str
    phase: str
    true_conditions: frozenset[str]
    uid: str = ""
    job_uid: str = ""
    node: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    termination_reason: str = ""
    restarts: int = 0

    @property
    def job_key(self) -> str:
        return f"{self.namespace}/{self.job_name}"


def job_info(raw: Mapping[str, Any]) -> JobInfo | None:
    metadata = raw.get("metadata") or {}
    owner = (metadata.get("labels") or {}).get(NAME_LABEL)
    if not owner:
        return None
    status = raw.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    complete = conditions.get("Complete", {}).get("status") == "True"
    failed = conditions.get("Failed", {}).get("status") == "True"
    finished_at = None
    final: Mapping[str, Any] = {}
    if complete or failed:
        final = conditions["Complete" if complete else "Failed"]
        finished_at = parse_time(status.get("completionTime") or final.get("lastTransitionTime"))
    owner_uid = next(
        (
            ref.get("uid", "")
            for ref in metadata.get("ownerReferences") or []
            if ref.get("controller")
        ),
        "",
    )
    generation = str((metadata.get("annotations") or {}).get(GENERATION_ANNOTATION, ""))
    return JobInfo(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        scaled_job=str(owner),
        owner_uid=str(owner_uid),
        generation=int(generation) if generation.isdigit() else None,
        created_at=parse_time(metadata.get("creationTimestamp")) or datetime.now(UTC),
        complete=complete,
        failed=failed,
        ready_pods=int(status.get("ready") or 0),
        finished_at=finished_at,
        reason=str(final.get("reason") or ""),
        message=str(final.get("message") or ""),
    )


def pod_info(raw: Mapping[str, Any]) -> PodInfo | None:
    metadata = raw.get("metadata") or {}
    labels = metadata.get("labels") or {}
    job_name = next((labels[key] for key in JOB_NAME_LABELS if labels.get(key)), None)
    if not job_name:
        return None
    status = raw.get("status") or {}
    true_conditions = frozenset(
        str(c.get("type")) for c in status.get("conditions") or [] if c.get("status") == "True"
    )
    container = _main_container_status(raw)
    state = container.get("state") or {}
    running = state.get("running") or {}
    terminated = state.get("terminated") or {}
    exit_code = terminated.get("exitCode")
    return PodInfo(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        job_name=str(job_name),
        phase=str(status.get("phase") or "Pending"),
        true_conditions=true_conditions,
        uid=str(metadata.get("uid", "")),
        job_uid=str(next((labels[key] for key in JOB_UID_LABELS if labels.get(key)), "")),
        node=str((raw.get("spec") or {}).get("nodeName") or ""),
        started_at=parse_time(running.get("startedAt") or terminated.get("startedAt")),
        finished_at=parse_time(terminated.get("finishedAt")),
        exit_code=int(exit_code) if exit_code is not None else None,
        termination_reason=str(terminated.get("reason") or ""),
        restarts=int(container.get("restartCount") or 0),
    )


def _main_container_status(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the status of the pod's first container, which runs the Job's work."""
    containers = (raw.get("spec") or {}).get("containers") or []
    statuses: dict[Any, Mapping[str, Any]] = {
        s.get("name"): s for s in (raw.get("status") or {}).get("containerStatuses") or []
    }
    if containers and containers[0].get("name") in statuses:
        return statuses[containers[0]["name"]]
    return next(iter(statuses.values()), {})


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
