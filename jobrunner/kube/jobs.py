"""The Jobs of ScaledJobs: the manifest of a new Job, and creating and deleting Jobs."""

from __future__ import annotations

import copy
import json
from typing import Any

from kubernetes.client import BatchV1Api
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from jobrunner import __version__
from jobrunner.errors import KubeError
from jobrunner.kube.records import GENERATION_ANNOTATION, NAME_LABEL
from jobrunner.resources.scaledjob import API_VERSION, KIND, ScaledJob

EXCLUDED_LABELS_ANNOTATIONS = (
    "scaledjob.jobrunner.dev/job-excluded-labels",
    "scaledjob.keda.sh/job-excluded-labels",
)
# Copying kubectl's record of the last applied ScaledJob onto every Job only wastes etcd space.
NOT_COPIED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


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
