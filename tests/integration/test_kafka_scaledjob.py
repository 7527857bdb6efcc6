"""Kafka lag becomes Jobs on the real API server, and the ledger records each of them."""

from __future__ import annotations

import sqlite3
import time

import pytest
from kubernetes import client
from sqlalchemy import create_engine, func, select

from jobrunner.ledger.models import JobRow, ScalingDecisionRow
from tests.integration.support import (
    HOLD_ANNOTATION,
    RunnerProcess,
    ServerEnv,
    apply,
    jobs_of,
    ledger_states,
    scaled_job_manifest,
    unfinished,
    wait_for,
)

pytestmark = pytest.mark.integration


def ledger_rows(runner: RunnerProcess, model: type) -> int:
    engine = create_engine(runner.database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def release_pods(api: client.ApiClient, namespace: str, job_names: list[str]) -> None:
    """Let the held pods of these Jobs finish; the KWOK stage then marks them Succeeded."""
    core = client.CoreV1Api(api)
    for job_name in job_names:
        for pod in core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items:
            patch = {"metadata": {"annotations": {HOLD_ANNOTATION: None}}}
            core.patch_namespaced_pod(pod.metadata.name, namespace, patch)


def stays(condition, *, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    """Check that `condition` holds throughout `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.25)
    return True


def test_lag_creates_jobs_up_to_max(
    servers: ServerEnv, api, namespace, make_topic, start_runner, capsys
):
    topic = make_topic(5)
    runner = start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("orders", topic, max_replicas=5))
    wait_for(lambda: "polling every 1s" in runner.log(), timeout=30, what="the first poll")
    assert stays(lambda: not jobs_of(api, namespace, "orders"), seconds=2.5), "Jobs without lag"

    produced_at = time.monotonic()
    topic.produce(100)
    wait_for(lambda: len(jobs_of(api, namespace, "orders")) >= 5, timeout=15, what="5 Jobs")
    latency = time.monotonic() - produced_at
    with capsys.disabled():
        print(f"\n[measured] first Jobs appeared {latency:.2f}s after the lag (pollingInterval 1s)")

    # Five unfinished Jobs already cover the capped lag of 50, so later polls add none.
    assert stays(lambda: len(jobs_of(api, namespace, "orders")) == 5, seconds=3.5)

    first_two = sorted(j.metadata.name for j in jobs_of(api, namespace, "orders"))[:2]
    release_pods(api, namespace, first_two)
    wait_for(
        lambda: len(unfinished(jobs_of(api, namespace, "orders"))) == 3,
        timeout=20,
        what="2 released Jobs to complete",
    )
    wait_for(
        lambda: len(jobs_of(api, namespace, "orders")) == 7,
        timeout=10,
        what="2 new Jobs replacing the completed ones",
    )
    assert stays(lambda: len(jobs_of(api, namespace, "orders")) == 7, seconds=3)
    assert len(unfinished(jobs_of(api, namespace, "orders"))) == 5

    wait_for(lambda: ledger_rows(runner, JobRow) == 7, timeout=10, what="7 ledger rows")
    assert ledger_rows(runner, JobRow) == len(jobs_of(api, namespace, "orders"))
    assert ledger_rows(runner, ScalingDecisionRow) == 2


def test_no_messages_create_no_jobs(servers: ServerEnv, api, namespace, make_topic, start_runner):
    topic = make_topic(5)
    runner = start_runner(namespace, log_level="DEBUG")
    apply(servers, namespace, scaled_job_manifest("idle", topic))
    wait_for(
        lambda: runner.log().count("poll: active=False") >= 3, timeout=30, what="three idle polls"
    )
    assert jobs_of(api, namespace, "idle") == []
    assert ledger_rows(runner, JobRow) == 0


def test_deleting_scaledjob_collects_its_jobs(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    runner = start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("short", topic, max_replicas=2, hold=False))
    topic.produce(20)
    wait_for(lambda: ledger_rows(runner, JobRow) >= 4, timeout=30, what="Jobs to be recorded")
    batch = client.BatchV1Api(api)
    # The ScaledJob owns its Jobs, so deleting it garbage-collects them.
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        "jobrunner.dev", "v1alpha1", namespace, "scaledjobs", "short"
    )
    wait_for(
        lambda: not batch.list_namespaced_job(namespace).items,
        timeout=30,
        what="the garbage collector to delete the Jobs",
    )
    recorded = ledger_rows(runner, JobRow)
    assert recorded >= 4
    assert runner.alive()


def test_restart_reconciles_job_states(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(2)
    runner = start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("restart", topic, max_replicas=2))
    topic.produce(40)
    wait_for(lambda: len(jobs_of(api, namespace, "restart")) == 2, timeout=15, what="2 Jobs")
    assert runner.stop() == 0

    # While the runner is down, both Jobs finish.
    release_pods(api, namespace, [j.metadata.name for j in jobs_of(api, namespace, "restart")])
    wait_for(
        lambda: not unfinished(jobs_of(api, namespace, "restart")),
        timeout=20,
        what="the Jobs to complete while the runner is down",
    )

    second = start_runner(namespace, upgrade=False)
    wait_for(
        lambda: len(jobs_of(api, namespace, "restart")) == 4,
        timeout=20,
        what="2 new Jobs after the restart",
    )
    engine = create_engine(second.database_url)

    def states() -> dict[str, str]:
        with engine.connect() as connection:
            return dict(connection.execute(select(JobRow.name, JobRow.state)).all())

    finished = {j.metadata.name for j in jobs_of(api, namespace, "restart") if j.status.succeeded}
    wait_for(
        lambda: all(states().get(name) == "succeeded" for name in finished),
        timeout=10,
        what="the ledger to record the Jobs that finished while the runner was down",
    )
    assert len(states()) == 4
    engine.dispose()


def test_kill_mid_burst_then_restart(servers: ServerEnv, api, namespace, make_topic, start_runner):
    topic = make_topic(10)
    topic.produce(200)
    runner = start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("burst", topic, max_replicas=10))
    wait_for(
        lambda: jobs_of(api, namespace, "burst"),
        timeout=20,
        interval=0.02,
        what="the first Job of the burst",
    )
    runner.process.kill()  # SIGKILL: no clean shutdown, whatever the runner was doing
    runner.process.wait()

    # While the runner is down, two Jobs finish and one is deleted by hand.
    jobs = sorted(j.metadata.name for j in jobs_of(api, namespace, "burst"))
    assert jobs, "the runner created no Job before it was killed"
    finished, removed = jobs[:2], jobs[2:3]
    release_pods(api, namespace, finished)
    batch = client.BatchV1Api(api)
    for name in removed:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    wait_for(
        lambda: all(
            j.status.succeeded
            for j in jobs_of(api, namespace, "burst")
            if j.metadata.name in finished
        ),
        timeout=20,
        what="the released Jobs to complete while the runner is down",
    )

    second = start_runner(namespace, upgrade=False)
    wait_for(lambda: "runner started" in second.log(), timeout=30, what="the restart")

    def consistent() -> bool:
        cluster = {j.metadata.name: j for j in jobs_of(api, namespace, "burst")}
        states = ledger_states(second)
        if any(name not in states for name in cluster):
            return False
        if any(states[name] != "succeeded" for name in finished):
            return False
        return all(states.get(name) == "deleted" for name in removed if name not in cluster)

    wait_for(consistent, timeout=20, what="the ledger to match the cluster after the restart")
    engine = create_engine(second.database_url)
    with engine.connect() as connection:
        names = [name for (name,) in connection.execute(select(JobRow.name))]
    engine.dispose()
    assert len(names) == len(set(names)), "a Job was recorded twice"


def test_ledger_outage_loses_nothing(servers: ServerEnv, api, namespace, make_topic, start_runner):
    topic = make_topic(2)
    runner = start_runner(namespace)
    apply(servers, namespace, scaled_job_manifest("outage", topic, max_replicas=2))
    topic.produce(40)
    wait_for(lambda: len(ledger_states(runner)) == 2, timeout=20, what="2 recorded Jobs")
    names = sorted(ledger_states(runner))

    # Lock the SQLite ledger longer than the runner's busy timeout while both Jobs finish.
    lock = sqlite3.connect(runner.database_url.removeprefix("sqlite:///"), timeout=1)
    lock.execute("BEGIN EXCLUSIVE")
    release_pods(api, namespace, names)
    wait_for(
        lambda: all(
            j.status.succeeded
            for j in jobs_of(api, namespace, "outage")
            if j.metadata.name in names
        ),
        timeout=20,
        what="the Jobs to complete during the outage",
    )
    # The Jobs' own state changes must fail to be written too, not only their pods'.
    wait_for(
        lambda: "update of a Job's state failed" in runner.log(),
        timeout=30,
        what="a failed write of a Job's state",
    )
    lock.rollback()
    lock.close()

    wait_for(
        lambda: all(ledger_states(runner).get(n) == "succeeded" for n in names),
        timeout=40,
        what="the ledger to record the final states after the outage",
    )
