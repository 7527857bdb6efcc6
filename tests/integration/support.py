"""Helpers shared by the integration tests: the test servers' addresses and waiting."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer
from kubernetes import client
from sqlalchemy import create_engine, select

from jobrunner.ledger.models import JobRow

START_HINT = "start the test servers with tests/env/up"
HOLD_ANNOTATION = "jobrunner.dev/hold"
NAME_LABEL = "scaledjob.jobrunner.dev/name"


def read_env_file() -> dict[str, str]:
    path = Path(os.environ.get("JOBRUNNER_ENV_DIR", "/tmp/jobrunner-env")) / "env"
    if not path.exists():
        pytest.fail(f"{path} is missing; {START_HINT}", pytrace=False)
    values = {}
    for line in path.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = shlex.split(value)[0] if value else ""
    return values


@dataclass(frozen=True)
class ServerEnv:
    kubeconfig: str
    kubectl: str
    kafka: str

    def kubectl_run(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [self.kubectl, f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout


def wait_for(
    condition: Callable[[], Any], *, timeout: float, interval: float = 0.25, what: str
) -> Any:
    """Poll `condition` until it returns a truthy value; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)
        time.sleep(interval)


def port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@dataclass
class Topic:
    name: str
    group: str
    partitions: int
    bootstrap: str

    def produce(self, count: int) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap)
        for number in range(count):
            producer.send(self.name, value=b"m%d" % number, partition=number % self.partitions)
        producer.flush()
        producer.close()


@dataclass
class RunnerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    database_url: str
    started_at: float = field(default_factory=time.monotonic)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait()
        return int(self.process.returncode)


def scaled_job_manifest(
    name: str,
    topic: Topic,
    *,
    max_replicas: int = 5,
    lag_threshold: str = "10",
    polling_interval: int = 1,
    hold: bool = True,
    extra_metadata: dict[str, str] | None = None,
    trigger_type: str = "kafka",
) -> dict[str, Any]:
    """A ScaledJob on `topic`; with `hold`, its pods stay Running until released."""
    annotations = {HOLD_ANNOTATION: "true"} if hold else {"jobrunner.dev/run-for": "1s"}
    metadata = {
        "bootstrapServers": topic.bootstrap,
        "consumerGroup": topic.group,
        "topic": topic.name,
        "lagThreshold": lag_threshold,
        "offsetResetPolicy": "earliest",
        **(extra_metadata or {}),
    }
    return {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": name},
        "spec": {
            "pollingInterval": polling_interval,
            "maxReplicaCount": max_replicas,
            "jobTargetRef": {
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "worker", "image": "example/worker:1"}],
                    },
                }
            },
            "triggers": [{"type": trigger_type, "metadata": metadata}],
        },
    }


def apply(servers: ServerEnv, namespace: str, manifest: dict[str, Any]) -> None:
    servers.kubectl_run("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))


def jobs_of(api: client.ApiClient, namespace: str, name: str) -> list[client.V1Job]:
    batch = client.BatchV1Api(api)
    return list(batch.list_namespaced_job(namespace, label_selector=f"{NAME_LABEL}={name}").items)


def unfinished(jobs: list[client.V1Job]) -> list[client.V1Job]:
    return [j for j in jobs if not (j.status.succeeded or j.status.failed)]


def ledger_states(runner: RunnerProcess) -> dict[str, str]:
    """Map each Job name in the runner's ledger to its recorded state."""
    engine = create_engine(runner.database_url)
    try:
        with engine.connect() as connection:
            return {
                name: state for name, state in connection.execute(select(JobRow.name, JobRow.state))
            }
    finally:
        engine.dispose()
