"""Jobs and Pods of ScaledJobs: the Job manifest, slim records, and the counts a poll needs."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client import BatchV1Api
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from jobrunner import __version__
from jobrunner.errors import KubeError
from jobrunner.resources.scaledjob import API_VERSION, KIND, ScaledJob

NAME_LABEL = "scaledjob.jobrunner.dev/name"
GENERATION_ANNOTATION = "scaledjob.jobrunner.dev/generation"
EXCLUDED_LABELS_ANNOTATIONS = (
    "scaledjob.jobrunner.dev/job-excluded-labels",
    "scaledjob.keda.sh/job-excluded-labels",
)
# Copying kubectl's record of the last applied ScaledJob onto every Job only wastes etcd space.
NOT_COPIED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def build_job(scaled_job: ScaledJob) -> dict[str, Any]:
    """Build the Job manifest for one new Job of a ScaledJob.

    The Job gets a generated name, the ScaledJob's labels and annotations, and a controller
    owner reference, so Kubernetes garbage-collects it when the ScaledJob is deleted.
    """
    name = scaled_job.name
    excluded: set[str] = set()
    for key in EXCLUDED_LABELS_ANNOTATIONS:
        excluded.update(scaled_job.annotations.get(key, "").split(","))
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/part-of": name,
        "app.kubernetes.io/managed-by": "jobrunner",
        NAME_LABEL: name,
    }
    labels.update({k: v for k, v in scaled_job.labels.items() if k not in excluded})
    annotations = {GENERATION_ANNOTATION: str(scaled_job.generation)}
    annotations.update(
        {k: v for k, v in scaled_job.annotations.items() if k not in NOT_COPIED_ANNOTATIONS}
    )

    spec = copy.deepcopy(dict(scaled_job.job_template))
    template = spec.setdefault("template", {})
    template_metadata = template.setdefault("metadata", {})
    template_metadata.setdefault("labels", {})[NAME_LABEL] = name
    template_metadata.setdefault("generateName", f"{name}-")
    pod_spec = template.setdefault("spec", {})
    if not pod_spec.get("restartPolicy"):
        pod_spec["restartPolicy"] = "OnFailure"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "generateName": f"{name}-",
            "namespace": scaled_job.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": name,
                    "uid": scaled_job.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


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
    namespace: str
    name: str
    job_name: str
    phase: str
    true_conditions: frozenset[str]

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
    if complete or failed:
        finished = conditions["Complete" if complete else "Failed"]
        finished_at = parse_time(status.get("completionTime") or finished.get("lastTransitionTime"))
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
    return PodInfo(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        job_name=str(job_name),
        phase=str(status.get("phase") or "Pending"),
        true_conditions=true_conditions,
    )


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class JobCounts:
    """Unfinished Jobs of a ScaledJob; `pending` is the part whose pods have not started."""

    running: int
    pending: int


def count_jobs(
    jobs: Iterable[JobInfo],
    pods_of: Any,
    *,
    pending_pod_conditions: tuple[str, ...] = (),
) -> JobCounts:
    """Count unfinished Jobs, and those of them still pending, as KEDA counts them.

    A Job is pending when none of its pods is Running or Succeeded; with
    `pending_pod_conditions`, when no single pod has every listed condition True.
    `pods_of(job_key)` returns the pods of one Job.
    """
    running = pending = 0
    for job in jobs:
        if job.finished:
            continue
        running += 1
        pods: list[PodInfo] = pods_of(f"{job.namespace}/{job.name}")
        if pending_pod_conditions:
            wanted = set(pending_pod_conditions)
            started = any(wanted <= pod.true_conditions for pod in pods)
        else:
            started = any(pod.phase in ("Running", "Succeeded") for pod in pods)
        pending += not started
    return JobCounts(running=running, pending=pending)


class JobClient:
    """Creates and deletes Jobs; wraps the client's errors in KubeError."""

    def __init__(self, api: BatchV1Api) -> None:
        self.api = api

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        namespace = manifest["metadata"]["namespace"]
        try:
            # With _preload_content=False the client returns the raw HTTP response.
            response: Any = self.api.create_namespaced_job(
                namespace,
                manifest,  # type: ignore[arg-type]
                _preload_content=False,
            )
        except ApiException as error:
            raise KubeError(
                f"creating a Job in namespace {namespace} failed: HTTP {error.status} "
                f"{error.reason}: {_api_message(error)}"
            ) from error
        except (HTTPError, OSError) as error:
            raise KubeError(
                f"creating a Job in namespace {namespace} failed: {type(error).__name__}"
            ) from error
        created: dict[str, Any] = json.loads(response.data)
        return created

    def delete(self, namespace: str, name: str, *, propagation: str = "Background") -> None:
        """Delete a Job and, by the propagation policy, its pods; a missing Job is no error."""
        try:
            self.api.delete_namespaced_job(name, namespace, propagation_policy=propagation)
        except ApiException as error:
            if error.status == 404:
                return
            raise KubeError(
                f"deleting Job {namespace}/{name} failed: HTTP {error.status} {error.reason}: "
                f"{_api_message(error)}"
            ) from error
        except (HTTPError, OSError) as error:
            raise KubeError(
                f"deleting Job {namespace}/{name} failed: {type(error).__name__}"
            ) from error


def _api_message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "").get("message", ""))
    except (TypeError, ValueError):
        return ""
