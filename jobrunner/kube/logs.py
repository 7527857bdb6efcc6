"""The logs of a Job's pods, read through the API server as `kubectl logs` does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from jobrunner.errors import KubeError


@dataclass(frozen=True)
class ContainerLog:
    pod: str
    container: str
    text: str
    previous: bool = False


def job_exists(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        client.BatchV1Api(api).read_namespaced_job(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise KubeError(f"reading Job {namespace}/{name} failed: HTTP {error.status}") from error
    except (HTTPError, OSError) as error:
        raise KubeError(f"reading Job {namespace}/{name} failed: {type(error).__name__}") from error
    return True


def job_logs(
    api: client.ApiClient,
    namespace: str,
    name: str,
    *,
    previous: bool = False,
    tail_lines: int | None = None,
) -> Iterator[ContainerLog]:
    """Yield the log of every container of every pod of Job `namespace/name`, oldest pod first."""
    core = client.CoreV1Api(api)
    try:
        response: Any = core.list_namespaced_pod(
            namespace, label_selector=f"job-name={name}", _preload_content=False
        )
        pods = json.loads(response.data).get("items") or []
    except ApiException as error:
        raise KubeError(
            f"listing the pods of Job {namespace}/{name} failed: HTTP {error.status}"
        ) from error
    except (HTTPError, OSError, ValueError) as error:
        raise KubeError(
            f"listing the pods of Job {namespace}/{name} failed: {type(error).__name__}"
        ) from error
    for pod in sorted(pods, key=lambda p: str(p["metadata"].get("creationTimestamp", ""))):
        pod_name = str(pod["metadata"]["name"])
        for container in (pod.get("spec") or {}).get("containers") or []:
            text = _read(
                core,
                namespace,
                pod_name,
                str(container["name"]),
                previous=previous,
                tail_lines=tail_lines,
            )
            yield ContainerLog(
                pod=pod_name, container=str(container["name"]), text=text, previous=previous
            )


def _read(
    core: client.CoreV1Api,
    namespace: str,
    pod: str,
    container: str,
    *,
    previous: bool,
    tail_lines: int | None,
) -> str:
    try:
        text = core.read_namespaced_pod_log(
            pod, namespace, container=container, previous=previous, tail_lines=tail_lines
        )
    except ApiException as error:
        # A pod that never started, or one whose node serves no logs, has none to show.
        return f"(no log: HTTP {error.status} {error.reason})\n"
    except (HTTPError, OSError) as error:
        return f"(no log: {type(error).__name__})\n"
    return str(text)
