"""Pods on the test cluster's process node run real processes (tests/env/procnode.py).

The Job controller acts on real exit codes, restarts and deadlines, and `kubectl logs` returns
what the processes printed.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.support import START_HINT, ServerEnv, read_env_file, wait_for

pytestmark = pytest.mark.integration

TOLERATION = {
    "key": "jobrunner.dev/process-node",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}


@pytest.fixture(scope="session")
def process_node(servers: ServerEnv, api: client.ApiClient) -> str:
    """Return the process node's name, failing the test unless the node is Ready."""
    name = read_env_file().get("JOBRUNNER_TEST_PROCESS_NODE")
    if not name:
        pytest.fail(f"the env file names no process node; {START_HINT}", pytrace=False)
    try:
        node = client.CoreV1Api(api).read_node(name)
    except ApiException as error:
        pytest.fail(f"node {name} not found ({error.reason}); {START_HINT}", pytrace=False)
    ready = [c.status for c in node.status.conditions or [] if c.type == "Ready"]
    if ready != ["True"]:
        pytest.fail(f"node {name} is not Ready; {START_HINT}", pytrace=False)
    return name


def shell(script: str, *, name: str = "main", **fields: Any) -> dict[str, Any]:
    """A container running `script` with sh. As in any pod, `$(NAME)` in the script is expanded
    from the container's env and `$$` stands for `$`, so the shell's `$$` is written `$$$$`."""
    return {"name": name, "image": "unused", "command": ["/bin/sh", "-c", script], **fields}


def process_pod_spec(*containers: dict[str, Any], restart: str = "Never", **fields: Any) -> dict:
    return {
        "restartPolicy": restart,
        "nodeSelector": {"type": "process"},
        "tolerations": [TOLERATION],
        "terminationGracePeriodSeconds": 5,
        "containers": list(containers),
        **fields,
    }


def create_pod(api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> str:
    name = f"pod-{uuid.uuid4().hex[:6]}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    client.CoreV1Api(api).create_namespaced_pod(namespace, pod)
    return name


def create_job(
    api: client.ApiClient, namespace: str, pod_spec: dict[str, Any], **job_fields: Any
) -> str:
    name = f"job-{uuid.uuid4().hex[:6]}"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}, **job_fields},
    }
    client.BatchV1Api(api).create_namespaced_job(namespace, job)
    return name


def read_pod(api: client.ApiClient, namespace: str, name: str) -> client.V1Pod:
    return client.CoreV1Api(api).read_namespaced_pod(name, namespace)


def pod_gone(api: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        read_pod(api, namespace, name)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def pods_of(api: client.ApiClient, namespace: str, job: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"job-name={job}")
    return sorted(pods.items, key=lambda pod: pod.metadata.creation_timestamp)


def wait_for_phase(api: client.ApiClient, namespace: str, name: str, *phases: str) -> client.V1Pod:
    def reached() -> client.V1Pod | None:
        pod = read_pod(api, namespace, name)
        return pod if pod.status.phase in phases else None

    return wait_for(reached, timeout=60, what=f"pod {name} to reach {' or '.join(phases)}")


def job_finished(api: client.ApiClient, namespace: str, name: str) -> client.V1JobCondition:
    """Wait for the Job's Complete or Failed condition and return it."""

    def condition() -> client.V1JobCondition | None:
        job = client.BatchV1Api(api).read_namespaced_job(name, namespace)
        for item in job.status.conditions or []:
            if item.type in ("Complete", "Failed") and item.status == "True":
                return item
        return None

    return wait_for(condition, timeout=90, what=f"Job {name} to finish")


def logs(servers: ServerEnv, namespace: str, pod: str, *args: str) -> str:
    return servers.kubectl_run("logs", "-n", namespace, pod, *args)


def wait_for_logs(servers: ServerEnv, namespace: str, pod: str, *, lines: int = 1) -> str:
    """Wait until the pod's process has printed `lines` lines and return its output."""

    def output() -> str:
        try:
            printed = logs(servers, namespace, pod)
        except AssertionError:  # the container has not started yet
            return ""
        return printed if len(printed.splitlines()) >= lines else ""

    return wait_for(output, timeout=60, what=f"{lines} lines of output of pod {pod}")


def process_running(pid: int) -> bool:
    """Check whether `pid` is a live process. A zombie counts as ended: it has exited, and
    only its parent (init, for an orphan) has not collected its exit status yet."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except FileNotFoundError:
        return ""


def test_job_output_reaches_kubectl_logs(servers: ServerEnv, api, namespace, process_node) -> None:
    spec = process_pod_spec(
        shell("for n in 1 2 3; do echo line $n; done"),
        shell("echo to stderr >&2", name="side"),
    )
    job = create_job(api, namespace, spec)

    assert job_finished(api, namespace, job).type == "Complete"
    (pod,) = pods_of(api, namespace, job)
    assert pod.spec.node_name == process_node
    assert pod.status.phase == "Succeeded"
    for status in pod.status.container_statuses:
        assert status.state.terminated.exit_code == 0, status.name
        assert status.state.terminated.reason == "Completed", status.name
    name = pod.metadata.name
    assert logs(servers, namespace, name, "-c", "main") == "line 1\nline 2\nline 3\n"
    assert logs(servers, namespace, name, "-c", "main", "--tail=1") == "line 3\n"
    assert logs(servers, namespace, name, "-c", "side") == "to stderr\n"
    stamped = logs(servers, namespace, name, "-c", "main", "--timestamps").splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["line 1", "line 2", "line 3"]
    assert logs(servers, namespace, name, "-c", "main", "--limit-bytes=4") == "line"


def test_exit_code_exhausts_backoff_limit(servers: ServerEnv, api, namespace, process_node) -> None:
    job = create_job(api, namespace, process_pod_spec(shell("exit 3")), backoffLimit=1)

    condition = job_finished(api, namespace, job)
    assert condition.type == "Failed"
    assert condition.reason == "BackoffLimitExceeded"
    pods = pods_of(api, namespace, job)
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Failed"
        (status,) = pod.status.container_statuses
        assert status.state.terminated.exit_code == 3
        assert status.state.terminated.reason == "Error"


def test_on_failure_restarts_in_place(
    servers: ServerEnv, api, namespace, process_node, tmp_path: Path
) -> None:
    script = (
        'if [ -e "$MARKER" ]; then echo second run; exit 0; fi; '
        'touch "$MARKER"; echo first run; exit 1'
    )
    marker = {"name": "MARKER", "value": str(tmp_path / "ran-once")}
    spec = process_pod_spec(shell(script, env=[marker]), restart="OnFailure")
    job = create_job(api, namespace, spec, backoffLimit=2)

    assert job_finished(api, namespace, job).type == "Complete"
    (pod,) = pods_of(api, namespace, job)
    (status,) = pod.status.container_statuses
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert status.state.terminated.exit_code == 0
    assert logs(servers, namespace, pod.metadata.name) == "second run\n"
    assert logs(servers, namespace, pod.metadata.name, "--previous") == "first run\n"


def test_job_deadline_kills_process(servers: ServerEnv, api, namespace, process_node) -> None:
    spec = process_pod_spec(shell("echo $$$$; exec sleep 313"))
    job = create_job(api, namespace, spec, activeDeadlineSeconds=3)
    wait_for(lambda: pods_of(api, namespace, job), timeout=30, what=f"a pod of Job {job}")
    pod = pods_of(api, namespace, job)[0].metadata.name
    pid = int(wait_for_logs(servers, namespace, pod))
    assert command_line(pid) == "sleep 313"

    condition = job_finished(api, namespace, job)
    assert condition.type == "Failed"
    assert condition.reason == "DeadlineExceeded"
    wait_for(lambda: not process_running(pid), timeout=15, what=f"process {pid} to end")
    wait_for(lambda: pod_gone(api, namespace, pod), timeout=30, what=f"pod {pod} to be removed")


def test_pod_deadline_fails_pod(servers: ServerEnv, api, namespace, process_node) -> None:
    spec = process_pod_spec(shell("echo $$$$; exec sleep 312"), activeDeadlineSeconds=2)
    pod = create_pod(api, namespace, spec)
    pid = int(wait_for_logs(servers, namespace, pod))

    failed = wait_for_phase(api, namespace, pod, "Failed", "Succeeded")
    assert failed.status.phase == "Failed"
    assert failed.status.reason == "DeadlineExceeded"
    (status,) = failed.status.container_statuses
    assert status.state.terminated.exit_code == 128 + 15  # sleep ends on SIGTERM
    assert not process_running(pid)


def test_deletion_kills_process_group_after_grace(
    servers: ServerEnv, api, namespace, process_node
) -> None:
    # Both processes ignore SIGTERM, so only the SIGKILL after the grace period ends them.
    script = "trap '' TERM; sleep 311 & echo $!; echo $$$$; wait"
    pod = create_pod(api, namespace, process_pod_spec(shell(script)))
    pids = [int(word) for word in wait_for_logs(servers, namespace, pod, lines=2).split()]
    assert command_line(pids[0]) == "sleep 311"

    deleted_at = time.monotonic()
    client.CoreV1Api(api).delete_namespaced_pod(pod, namespace, grace_period_seconds=2)
    wait_for(lambda: pod_gone(api, namespace, pod), timeout=30, what=f"pod {pod} to be removed")
    assert time.monotonic() - deleted_at >= 1.5, "the grace period was not honoured"
    for pid in pids:
        assert not process_running(pid), f"process {pid} survived the pod"


def test_env_from_secret_reaches_process(
    servers: ServerEnv, api, namespace, process_node, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret", "user": "ada"}},
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}}
    )
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING", "value": "hello $(POD_NAME)"},
    ]
    script = 'echo "$PASSWORD $MODE $POD_NAME $POD_NAMESPACE $CREDS_user"; echo "$GREETING"; pwd'
    spec = process_pod_spec(
        shell(
            script,
            env=env,
            envFrom=[{"prefix": "CREDS_", "secretRef": {"name": "creds"}}],
            workingDir=str(tmp_path),
        ),
        shell("pwd", name="scratch"),
    )
    pod = create_pod(api, namespace, spec)

    wait_for_phase(api, namespace, pod, "Succeeded", "Failed")
    printed = logs(servers, namespace, pod, "-c", "main").splitlines()
    assert printed == [f"s3cret fast {pod} {namespace} ada", f"hello {pod}", str(tmp_path)]
    scratch = logs(servers, namespace, pod, "-c", "scratch").strip()
    assert Path(scratch).is_absolute()
    assert scratch != str(tmp_path)


def test_missing_secret_delays_start(servers: ServerEnv, api, namespace, process_node) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    pod = create_pod(api, namespace, process_pod_spec(shell('echo "$TOKEN"', env=env)))

    def waiting_reason() -> str | None:
        statuses = read_pod(api, namespace, pod).status.container_statuses or []
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting else None

    wait_for(
        lambda: waiting_reason() == "CreateContainerConfigError",
        timeout=30,
        what="the container to wait for its Secret",
    )
    client.CoreV1Api(api).create_namespaced_secret(
        namespace, {"metadata": {"name": "late"}, "stringData": {"token": "t0ken"}}
    )
    assert wait_for_phase(api, namespace, pod, "Succeeded", "Failed").status.phase == "Succeeded"
    assert logs(servers, namespace, pod) == "t0ken\n"


def test_init_container_runs_first(servers: ServerEnv, api, namespace, process_node) -> None:
    spec = process_pod_spec(shell("echo main"), initContainers=[shell("echo init", name="prepare")])
    pod = create_pod(api, namespace, spec)

    done = wait_for_phase(api, namespace, pod, "Succeeded", "Failed")
    assert done.status.phase == "Succeeded"
    (init,) = done.status.init_container_statuses
    (main,) = done.status.container_statuses
    assert init.state.terminated.finished_at <= main.state.terminated.started_at
    assert logs(servers, namespace, pod, "-c", "prepare") == "init\n"


def test_follow_streams_until_exit(servers: ServerEnv, api, namespace, process_node) -> None:
    pod = create_pod(api, namespace, process_pod_spec(shell("echo start; sleep 2; echo end")))
    wait_for_logs(servers, namespace, pod)

    followed = subprocess.run(
        [servers.kubectl, f"--kubeconfig={servers.kubeconfig}", "logs", "-f", "-n", namespace, pod],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "start\nend\n"


def test_pod_without_toleration_lands_on_kwok(servers: ServerEnv, api, namespace) -> None:
    kwok_node = read_env_file()["JOBRUNNER_TEST_KWOK_NODE"]
    spec = {"containers": [{"name": "main", "image": "unused"}]}
    pod = create_pod(api, namespace, spec)

    node = wait_for(
        lambda: read_pod(api, namespace, pod).spec.node_name,
        timeout=30,
        what=f"pod {pod} to be scheduled",
    )
    assert node == kwok_node
