"""`jobrunner logs`: a Job's pod output from the cluster, or the ledger's record once gone."""

from __future__ import annotations

import subprocess

import pytest
from kubernetes import client

from jobrunner.ledger.records import ObservedJob
from jobrunner.ledger.schema import upgrade
from jobrunner.ledger.store import LedgerStore, utcnow
from tests.integration.conftest import JOBRUNNER
from tests.integration.support import ServerEnv, wait_for

pytestmark = pytest.mark.integration

TOLERATION = {
    "key": "jobrunner.dev/process-node",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}


def run_logs(servers: ServerEnv, database_url: str, namespace: str, job: str):
    return subprocess.run(
        [
            JOBRUNNER,
            "logs",
            "-n",
            namespace,
            job,
            "--kubeconfig",
            servers.kubeconfig,
            "--database-url",
            database_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_logs_print_pod_output(servers: ServerEnv, api, namespace, tmp_path):
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "talker"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "nodeSelector": {"type": "process"},
                        "tolerations": [TOLERATION],
                        "containers": [
                            {
                                "name": "main",
                                "image": "x",
                                "command": ["sh", "-c", "echo first line; echo second line"],
                            }
                        ],
                    }
                },
            },
        },
    )
    wait_for(
        lambda: batch.read_namespaced_job("talker", namespace).status.succeeded,
        timeout=30,
        what="the Job to succeed",
    )
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    result = run_logs(servers, url, namespace, "talker")
    assert result.returncode == 0
    assert "first line\nsecond line" in result.stdout
    assert "container main" in result.stdout


def test_logs_of_gone_job_point_at_ledger(servers: ServerEnv, namespace, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    store = LedgerStore.open(url)
    store.observe_job(
        ObservedJob(
            uid="uid-old",
            namespace=namespace,
            name="old-job",
            scaled_object_uid="uid-sj",
            scaled_object_name="orders",
            generation=1,
            created_at=utcnow(),
            state="failed",
            finished_at=utcnow(),
            reason="BackoffLimitExceeded",
        )
    )
    store.close()
    result = run_logs(servers, url, namespace, "old-job")
    assert result.returncode == 1
    assert "are gone from the cluster" in result.stderr
    assert "state failed" in result.stderr
    assert "reason BackoffLimitExceeded" in result.stderr


def test_logs_of_unknown_job(servers: ServerEnv, namespace, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    upgrade(url)
    result = run_logs(servers, url, namespace, "never-existed")
    assert result.returncode == 1
    assert "the ledger has no Job of that name" in result.stderr
