"""Connection to the Kubernetes API server, and the list calls the caches watch."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from jobrunner.errors import KubeError
from jobrunner.kube.records import NAME_LABEL
from jobrunner.resources.scaledjob import GROUP, PLURAL, VERSION


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """Use the given kubeconfig, else KUBECONFIG or ~/.kube/config, else the in-cluster account."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path and Path("~/.kube/config").expanduser().exists():
        path = str(Path("~/.kube/config").expanduser())
    try:
        if path:
            api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=path
            )
            return api
        configuration = client.Configuration()
        config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
        return client.ApiClient(configuration)
    except (ConfigException, OSError) as error:
        where = f"kubeconfig {path}" if path else "the in-cluster service account"
        raise KubeError(f"cannot load Kubernetes credentials from {where}: {error}") from error


def scaled_job_list_call(api: client.ApiClient, namespace: str | None) -> Callable[..., Any]:
    custom = client.CustomObjectsApi(api)
    if namespace:
        return functools.partial(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
        )
    return functools.partial(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)


def job_list_call(api: client.ApiClient, namespace: str | None) -> Callable[..., Any]:
    batch = client.BatchV1Api(api)
    if namespace:
        return functools.partial(batch.list_namespaced_job, namespace, label_selector=NAME_LABEL)
    return functools.partial(batch.list_job_for_all_namespaces, label_selector=NAME_LABEL)


def pod_list_call(api: client.ApiClient, namespace: str | None) -> Callable[..., Any]:
    core = client.CoreV1Api(api)
    if namespace:
        return functools.partial(core.list_namespaced_pod, namespace, label_selector=NAME_LABEL)
    return functools.partial(core.list_pod_for_all_namespaces, label_selector=NAME_LABEL)
