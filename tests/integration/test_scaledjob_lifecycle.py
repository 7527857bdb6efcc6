"""History limits, rollout, pause, status and Events of a ScaledJob on the real API server."""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client

from tests.integration.support import (
    ServerEnv,
    apply,
    jobs_of,
    ledger_states,
    scaled_job_manifest,
    unfinished,
    wait_for,
)

pytestmark = pytest.mark.integration

GENERATION = "scaledjob.jobrunner.dev/generation"


def scaled_job_status(api: client.ApiClient, namespace: str, name: str) -> dict:
    custom = client.CustomObjectsApi(api)
    obj = custom.get_namespaced_custom_object(
        "jobrunner.dev", "v1alpha1", namespace, "scaledjobs", name
    )
    return dict(obj.get("status") or {})


def condition(status: dict, kind: str) -> dict:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def events(api: client.ApiClient, namespace: str, reason: str) -> list[str]:
    items = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e.message for e in items if e.reason == reason]


def test_history_limit_deletes_oldest_jobs(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    runner = start_runner(namespace)
    manifest = scaled_job_manifest("history", topic, max_replicas=1, hold=False)
    manifest["spec"]["successfulJobsHistoryLimit"] = 2
    apply(servers, namespace, manifest)
    topic.produce(50)

    wait_for(lambda: len(ledger_states(runner)) >= 5, timeout=60, what="5 recorded Jobs")
    succeeded_in_cluster = [j for j in jobs_of(api, namespace, "history") if j.status.succeeded]
    assert len(succeeded_in_cluster) <= 2
    states = ledger_states(runner)
    # Jobs deleted by the history limit keep their final state in the ledger.
    assert list(states.values()).count("succeeded") >= 3


def test_spec_change_deletes_older_generation(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    # 4 partitions, so the lag of 40 is not capped below 3 Jobs.
    topic = make_topic(4)
    runner = start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("rolling", topic, max_replicas=2))
    topic.produce(40)
    wait_for(lambda: len(jobs_of(api, namespace, "rolling")) == 2, timeout=15, what="2 Jobs")
    old = {j.metadata.name for j in jobs_of(api, namespace, "rolling")}

    apply(servers, namespace, scaled_job_manifest("rolling", topic, max_replicas=3))

    def only_new_generation() -> bool:
        jobs = [j for j in jobs_of(api, namespace, "rolling") if not j.metadata.deletion_timestamp]
        return len(jobs) == 3 and all(j.metadata.annotations[GENERATION] == "2" for j in jobs)

    wait_for(only_new_generation, timeout=30, what="3 Jobs of generation 2 only")
    wait_for(
        lambda: all(ledger_states(runner).get(n) == "deleted" for n in old),
        timeout=15,
        what="the ledger to mark the rolled-out Jobs deleted",
    )


def test_gradual_rollout_keeps_older_jobs(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(4)
    start_runner(namespace)
    manifest = scaled_job_manifest("gradual", topic, max_replicas=2)
    manifest["spec"]["rollout"] = {"strategy": "gradual"}
    apply(servers, namespace, manifest)
    topic.produce(40)
    wait_for(lambda: len(jobs_of(api, namespace, "gradual")) == 2, timeout=15, what="2 Jobs")

    manifest["spec"]["maxReplicaCount"] = 3
    apply(servers, namespace, manifest)
    wait_for(
        lambda: len(jobs_of(api, namespace, "gradual")) == 3,
        timeout=15,
        what="1 more Job beside the 2 kept ones",
    )
    generations = sorted(
        j.metadata.annotations[GENERATION] for j in jobs_of(api, namespace, "gradual")
    )
    assert generations == ["1", "1", "2"]


def test_pause_annotation_stops_and_resumes(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    start_runner(namespace)
    manifest = scaled_job_manifest("paused", topic, max_replicas=1)
    manifest["metadata"]["annotations"] = {"autoscaling.keda.sh/paused": "true"}
    apply(servers, namespace, manifest)
    topic.produce(10)
    wait_for(
        lambda: (
            condition(scaled_job_status(api, namespace, "paused"), "Paused").get("status") == "True"
        ),
        timeout=15,
        what="Paused=True",
    )
    assert jobs_of(api, namespace, "paused") == []

    manifest["metadata"]["annotations"] = {"autoscaling.keda.sh/paused": "false"}
    apply(servers, namespace, manifest)
    wait_for(
        lambda: len(jobs_of(api, namespace, "paused")) == 1,
        timeout=15,
        what="a Job after unpausing",
    )
    status = scaled_job_status(api, namespace, "paused")
    assert condition(status, "Paused")["status"] == "False"


def test_status_and_events_report_jobs(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(2)
    start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("reported", topic, max_replicas=2))
    topic.produce(40)
    wait_for(lambda: len(jobs_of(api, namespace, "reported")) == 2, timeout=15, what="2 Jobs")

    wait_for(
        lambda: (
            condition(scaled_job_status(api, namespace, "reported"), "Active").get("status")
            == "True"
        ),
        timeout=15,
        what="Active=True",
    )
    status = scaled_job_status(api, namespace, "reported")
    assert condition(status, "Ready")["reason"] == "ScaledJobReady"
    assert condition(status, "Active")["reason"] == "ScalerActive"
    assert status["triggersTypes"] == "kafka"
    assert "lastActiveTime" in status
    wait_for(lambda: events(api, namespace, "JobsCreated"), timeout=10, what="a JobsCreated Event")
    assert events(api, namespace, "JobsCreated") == ["Created 2 Jobs"]
    assert events(api, namespace, "ScaledJobActive")
    assert len(unfinished(jobs_of(api, namespace, "reported"))) == 2


def test_trigger_error_sets_ready_false(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    topic.bootstrap = "127.0.0.1:1"
    start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("broken", topic))

    wait_for(
        lambda: (
            condition(scaled_job_status(api, namespace, "broken"), "Ready").get("status") == "False"
        ),
        timeout=30,
        what="Ready=False",
    )
    ready = condition(scaled_job_status(api, namespace, "broken"), "Ready")
    assert ready["reason"] == "TriggerError"
    assert "127.0.0.1:1" in ready["message"]
    wait_for(
        lambda: events(api, namespace, "TriggerError"), timeout=10, what="a TriggerError Event"
    )
    assert "127.0.0.1:1" in events(api, namespace, "TriggerError")[0]


def test_rejected_job_template_sets_ready_false(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    start_runner(namespace)
    manifest = scaled_job_manifest("rejected-template", topic, max_replicas=1)
    # The API server rejects container names that are not DNS labels when the Job is created.
    container = manifest["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]
    container["name"] = "Not_A_Label"
    apply(servers, namespace, manifest)
    topic.produce(10)

    wait_for(
        lambda: (
            condition(scaled_job_status(api, namespace, "rejected-template"), "Ready").get("reason")
            == "JobCreateFailed"
        ),
        timeout=30,
        what="Ready=False with reason JobCreateFailed",
    )
    ready = condition(scaled_job_status(api, namespace, "rejected-template"), "Ready")
    assert ready["status"] == "False"
    assert "HTTP 422" in ready["message"]
    assert jobs_of(api, namespace, "rejected-template") == []


def test_invalid_spec_sets_check_failed(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("invalid", topic, lag_threshold="-3"))
    wait_for(
        lambda: (
            condition(scaled_job_status(api, namespace, "invalid"), "Ready").get("reason")
            == "ScaledJobCheckFailed"
        ),
        timeout=15,
        what="ScaledJobCheckFailed",
    )
    message = condition(scaled_job_status(api, namespace, "invalid"), "Ready")["message"]
    assert "spec.triggers[0].metadata.lagThreshold: must be > 0" in message
    assert events(api, namespace, "ScaledJobCheckFailed")


def test_crd_rejects_invalid_spec(servers: ServerEnv, namespace, make_topic):
    topic = make_topic(1)
    manifest = scaled_job_manifest("rejected", topic)
    manifest["spec"]["minReplicaCount"] = 5
    manifest["spec"]["maxReplicaCount"] = 2
    trigger = manifest["spec"]["triggers"][0]
    manifest["spec"]["triggers"] = [{**trigger, "name": "a"}, {**trigger, "name": "a"}]
    with pytest.raises(AssertionError) as failure:
        servers.kubectl_run(
            "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest)
        )
    assert "minReplicaCount must not exceed maxReplicaCount" in str(failure.value)
    assert "trigger names must be unique within the ScaledJob" in str(failure.value)
