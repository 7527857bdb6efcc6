"""Invalid ScaledJobs and unreachable brokers: reported clearly, never fatal, no Jobs."""

from __future__ import annotations

import subprocess

import pytest
from kubernetes import client

from tests.integration.conftest import JOBRUNNER
from tests.integration.support import ServerEnv, apply, scaled_job_manifest, wait_for

pytestmark = pytest.mark.integration


def job_count(api: client.ApiClient, namespace: str) -> int:
    return len(client.BatchV1Api(api).list_namespaced_job(namespace).items)


def error_lines(log: str, name: str) -> list[str]:
    return [line for line in log.splitlines() if " ERROR " in line and f"/{name}:" in line]


def test_invalid_scaledjobs_reported_once(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    runner = start_runner(namespace, log_level="DEBUG")
    no_group = scaled_job_manifest("no-group", topic, polling_interval=1)
    del no_group["spec"]["triggers"][0]["metadata"]["consumerGroup"]
    unknown = scaled_job_manifest("unknown-type", topic, trigger_type="kafkaa")
    bad_lag = scaled_job_manifest("bad-lag", topic, lag_threshold="ten")
    good = scaled_job_manifest("good", topic, max_replicas=1)
    for manifest in (no_group, unknown, bad_lag, good):
        apply(servers, namespace, manifest)
    topic.produce(10)

    wait_for(lambda: job_count(api, namespace) == 1, timeout=20, what="the valid ScaledJob's Job")
    # Several polling intervals pass; each invalid object is still reported only once.
    wait_for(lambda: runner.log().count("poll: active") >= 4, timeout=20, what="four polls")
    log = runner.log()
    expected = {
        "no-group": "spec.triggers[0].metadata.consumerGroup: missing required parameter",
        "unknown-type": "spec.triggers[0].type: unknown trigger type; known types: kafka, pulsar",
        "bad-lag": "spec.triggers[0].metadata.lagThreshold: must be an integer",
    }
    for name, message in expected.items():
        lines = error_lines(log, name)
        assert len(lines) == 1, f"{name}: {lines}"
        assert message in lines[0]
        assert f"ScaledJob {namespace}/{name}" in lines[0]
    assert "ten" not in "".join(error_lines(log, "bad-lag"))
    assert runner.alive()


def test_fixing_invalid_scaledjob_starts_polling(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    runner = start_runner(namespace)
    broken = scaled_job_manifest("later-fixed", topic, lag_threshold="0", max_replicas=1)
    apply(servers, namespace, broken)
    topic.produce(10)
    wait_for(lambda: error_lines(runner.log(), "later-fixed"), timeout=15, what="the report")
    assert "lagThreshold: must be > 0" in error_lines(runner.log(), "later-fixed")[0]

    apply(servers, namespace, scaled_job_manifest("later-fixed", topic, max_replicas=1))
    wait_for(lambda: job_count(api, namespace) == 1, timeout=15, what="a Job after the fix")


def test_unreachable_broker_creates_no_jobs(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    topic.bootstrap = "127.0.0.1:1"  # nothing listens on port 1 of loopback
    runner = start_runner(namespace, log_level="DEBUG")
    apply(servers, namespace, scaled_job_manifest("unreachable", topic, polling_interval=1))

    def failures() -> list[str]:
        return [line for line in runner.log().splitlines() if "trigger failed" in line]

    wait_for(lambda: len(failures()) >= 4, timeout=60, what="four failed polls")
    first = failures()[0]
    assert " WARNING " in first
    assert "127.0.0.1:1" in first
    # The failure is reported when it starts and when its message changes (once the broker
    # pool starts failing fast); the same failure on later polls goes to DEBUG.
    warnings = [line for line in failures() if " WARNING " in line]
    assert len(warnings) <= 2
    assert " DEBUG " in failures()[-1]
    assert job_count(api, namespace) == 0
    assert runner.alive()


def test_run_refuses_database_without_schema(servers: ServerEnv, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = subprocess.run(
        [JOBRUNNER, "run", "--database-url", url, "--kubeconfig", servers.kubeconfig],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "jobrunner db upgrade" in result.stderr
