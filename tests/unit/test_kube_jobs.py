"""Unit tests of the Job manifest, the Job and Pod records, and the running/pending counts."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from jobrunner import __version__
from jobrunner.kube.jobs import build_job
from jobrunner.kube.records import (
    GENERATION_ANNOTATION,
    NAME_LABEL,
    JobInfo,
    PodInfo,
    job_info,
    pod_info,
)
from jobrunner.resources.scaledjob import ScaledJob, Trigger
from jobrunner.scaling.counts import JobCounts, count_jobs

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def template(**pod_spec: Any) -> dict[str, Any]:
    return {
        "backoffLimit": 2,
        "template": {
            "metadata": {"labels": {"app": "worker"}},
            "spec": {"containers": [{"name": "worker", "image": "worker:1"}], **pod_spec},
        },
    }


def scaled_job(
    *,
    job_template: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> ScaledJob:
    return ScaledJob(
        namespace="shop",
        name="orders",
        uid="uid-orders",
        generation=7,
        job_template=template() if job_template is None else job_template,
        triggers=(Trigger(index=0, type="kafka", name="", metadata={}),),
        labels=labels or {},
        annotations=annotations or {},
    )


# --- build_job ------------------------------------------------------------------------------


def test_build_job_generate_name() -> None:
    metadata = build_job(scaled_job())["metadata"]

    assert metadata["generateName"] == "orders-"
    assert "name" not in metadata
    assert metadata["namespace"] == "shop"


def test_build_job_kind() -> None:
    manifest = build_job(scaled_job())

    assert manifest["apiVersion"] == "batch/v1"
    assert manifest["kind"] == "Job"


def test_build_job_built_in_labels() -> None:
    labels = build_job(scaled_job())["metadata"]["labels"]

    assert labels == {
        "app.kubernetes.io/name": "orders",
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/part-of": "orders",
        "app.kubernetes.io/managed-by": "jobrunner",
        NAME_LABEL: "orders",
    }


def test_build_job_scaled_job_labels_override() -> None:
    job = scaled_job(labels={"app.kubernetes.io/part-of": "shop", "team": "checkout"})

    labels = build_job(job)["metadata"]["labels"]

    assert labels["app.kubernetes.io/part-of"] == "shop"
    assert labels["team"] == "checkout"


@pytest.mark.parametrize(
    ("annotations", "expected_keys"),
    [
        pytest.param(
            {"scaledjob.jobrunner.dev/job-excluded-labels": "team,env"},
            {"keep"},
            id="jobrunner-annotation",
        ),
        pytest.param(
            {"scaledjob.keda.sh/job-excluded-labels": "team,env"},
            {"keep"},
            id="keda-annotation",
        ),
        pytest.param(
            {"scaledjob.jobrunner.dev/job-excluded-labels": "team, env"},
            {"keep", "env"},
            id="items-not-trimmed",
        ),
        pytest.param({}, {"keep", "team", "env"}, id="no-annotation"),
    ],
)
def test_build_job_excluded_labels(annotations: dict[str, str], expected_keys: set[str]) -> None:
    job = scaled_job(labels={"team": "a", "env": "b", "keep": "c"}, annotations=annotations)

    labels = build_job(job)["metadata"]["labels"]

    assert {key for key in labels if "/" not in key} == expected_keys


def test_build_job_exclusion_keeps_built_in_labels() -> None:
    job = scaled_job(annotations={"scaledjob.jobrunner.dev/job-excluded-labels": NAME_LABEL})

    labels = build_job(job)["metadata"]["labels"]

    assert labels[NAME_LABEL] == "orders"


def test_build_job_annotations() -> None:
    job = scaled_job(annotations={"owner": "team-a", LAST_APPLIED: '{"kind": "ScaledJob"}'})

    annotations = build_job(job)["metadata"]["annotations"]

    assert annotations == {GENERATION_ANNOTATION: "7", "owner": "team-a"}


def test_build_job_owner_reference() -> None:
    references = build_job(scaled_job())["metadata"]["ownerReferences"]

    assert references == [
        {
            "apiVersion": "jobrunner.dev/v1alpha1",
            "kind": "ScaledJob",
            "name": "orders",
            "uid": "uid-orders",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


@pytest.mark.parametrize(
    ("pod_spec", "expected"),
    [
        pytest.param({}, "OnFailure", id="missing"),
        pytest.param({"restartPolicy": ""}, "OnFailure", id="empty"),
        pytest.param({"restartPolicy": "Never"}, "Never", id="never-kept"),
    ],
)
def test_build_job_restart_policy(pod_spec: dict[str, Any], expected: str) -> None:
    job = scaled_job(job_template=template(**pod_spec))

    pod_template = build_job(job)["spec"]["template"]

    assert pod_template["spec"]["restartPolicy"] == expected


def test_build_job_pod_template_label() -> None:
    labels = build_job(scaled_job())["spec"]["template"]["metadata"]["labels"]

    assert labels == {"app": "worker", NAME_LABEL: "orders"}


def test_build_job_template_without_metadata() -> None:
    job = scaled_job(job_template={"template": {"spec": {"containers": []}}})

    labels = build_job(job)["spec"]["template"]["metadata"]["labels"]

    assert labels == {NAME_LABEL: "orders"}


def test_build_job_copies_job_spec() -> None:
    spec = build_job(scaled_job())["spec"]

    assert spec["backoffLimit"] == 2
    assert spec["template"]["spec"]["containers"] == [{"name": "worker", "image": "worker:1"}]


def test_build_job_leaves_template_unchanged() -> None:
    job_template = template()
    original = copy.deepcopy(job_template)
    job = scaled_job(job_template=job_template)

    manifest = build_job(job)
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})

    assert job_template == original


# --- job_info and pod_info ------------------------------------------------------------------


def raw_job(
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
    owner_references: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "shop",
            "name": "orders-abcde",
            "uid": "uid-job",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "labels": {NAME_LABEL: "orders"} if labels is None else labels,
            "annotations": {GENERATION_ANNOTATION: "7"} if annotations is None else annotations,
            "ownerReferences": (
                [{"uid": "other"}, {"uid": "uid-orders", "controller": True}]
                if owner_references is None
                else owner_references
            ),
        },
        "status": status or {},
    }


def condition(kind: str, status: str = "True", **fields: str) -> dict[str, str]:
    return {"type": kind, "status": status, **fields}


def test_job_info_fields() -> None:
    info = job_info(raw_job())

    assert info == JobInfo(
        namespace="shop",
        name="orders-abcde",
        uid="uid-job",
        scaled_job="orders",
        owner_uid="uid-orders",
        generation=7,
        created_at=CREATED,
        complete=False,
        failed=False,
        ready_pods=0,
        finished_at=None,
    )


def test_job_info_without_name_label() -> None:
    assert job_info(raw_job(labels={"app": "worker"})) is None


@pytest.mark.parametrize(
    ("status", "expected_state", "expected_finished_at"),
    [
        pytest.param({}, "pending", None, id="no-status"),
        pytest.param({"ready": 1}, "running", None, id="ready-pod"),
        pytest.param(
            {"conditions": [condition("Complete")], "completionTime": "2026-01-02T04:00:00Z"},
            "succeeded",
            datetime(2026, 1, 2, 4, tzinfo=UTC),
            id="complete",
        ),
        pytest.param(
            {"conditions": [condition("Failed", lastTransitionTime="2026-01-02T05:00:00Z")]},
            "failed",
            datetime(2026, 1, 2, 5, tzinfo=UTC),
            id="failed-uses-transition-time",
        ),
        pytest.param(
            {"conditions": [condition("Complete", "False")], "ready": 1},
            "running",
            None,
            id="complete-false",
        ),
    ],
)
def test_job_info_state(
    status: dict[str, Any], expected_state: str, expected_finished_at: datetime | None
) -> None:
    info = job_info(raw_job(status=status))

    assert info is not None
    assert info.state == expected_state
    assert info.finished_at == expected_finished_at


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param({}, None, id="missing"),
        pytest.param({GENERATION_ANNOTATION: "x"}, None, id="not-a-number"),
        pytest.param({GENERATION_ANNOTATION: "12"}, 12, id="number"),
    ],
)
def test_job_info_generation(annotations: dict[str, str], expected: int | None) -> None:
    info = job_info(raw_job(annotations=annotations))

    assert info is not None
    assert info.generation == expected


def test_job_info_without_controller_reference() -> None:
    info = job_info(raw_job(owner_references=[{"uid": "other"}]))

    assert info is not None
    assert info.owner_uid == ""


def raw_pod(labels: dict[str, str], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "orders-abcde-x1", "labels": labels},
        "status": status or {},
    }


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({"batch.kubernetes.io/job-name": "orders-abcde"}, id="batch-label"),
        pytest.param({"job-name": "orders-abcde"}, id="legacy-label"),
    ],
)
def test_pod_info_job_name(labels: dict[str, str]) -> None:
    info = pod_info(raw_pod(labels))

    assert info is not None
    assert info.job_key == "shop/orders-abcde"


def test_pod_info_without_job_label() -> None:
    assert pod_info(raw_pod({"app": "worker"})) is None


def test_pod_info_phase_and_conditions() -> None:
    status = {
        "phase": "Running",
        "conditions": [
            condition("Ready"),
            condition("PodScheduled"),
            condition("Initialized", "False"),
        ],
    }

    info = pod_info(raw_pod({"job-name": "orders-abcde"}, status))

    assert info is not None
    assert info.phase == "Running"
    assert info.true_conditions == frozenset({"Ready", "PodScheduled"})


def test_pod_info_phase_defaults_to_pending() -> None:
    info = pod_info(raw_pod({"job-name": "orders-abcde"}))

    assert info is not None
    assert info.phase == "Pending"


# --- count_jobs -----------------------------------------------------------------------------


def job(name: str, *, complete: bool = False, failed: bool = False) -> JobInfo:
    return JobInfo(
        namespace="shop",
        name=name,
        uid=f"uid-{name}",
        scaled_job="orders",
        owner_uid="uid-orders",
        generation=7,
        created_at=CREATED,
        complete=complete,
        failed=failed,
        ready_pods=0,
        finished_at=None,
    )


def pod(job_name: str, phase: str = "Pending", *conditions: str) -> PodInfo:
    return PodInfo(
        namespace="shop",
        name=f"{job_name}-pod",
        job_name=job_name,
        phase=phase,
        true_conditions=frozenset(conditions),
    )


def counts_for(
    pods: list[PodInfo], *, conditions: tuple[str, ...] = (), jobs: list[JobInfo] | None = None
) -> JobCounts:
    """Count one unfinished Job `a` (unless `jobs` is given) whose pods are `pods`."""
    by_job: dict[str, list[PodInfo]] = {}
    for item in pods:
        by_job.setdefault(item.job_key, []).append(item)
    return count_jobs(
        [job("a")] if jobs is None else jobs,
        lambda key: by_job.get(key, []),
        pending_pod_conditions=conditions,
    )


@pytest.mark.parametrize(
    ("pods", "expected_pending"),
    [
        pytest.param([], 1, id="no-pods"),
        pytest.param([pod("a", "Pending")], 1, id="pod-pending"),
        pytest.param([pod("a", "Running")], 0, id="pod-running"),
        pytest.param([pod("a", "Succeeded")], 0, id="pod-succeeded"),
        pytest.param([pod("a", "Failed")], 1, id="pod-failed"),
        pytest.param([pod("a", "Failed"), pod("a", "Running")], 0, id="one-pod-running"),
        pytest.param([pod("b", "Running")], 1, id="pod-of-other-job"),
    ],
)
def test_count_jobs_pending_by_phase(pods: list[PodInfo], expected_pending: int) -> None:
    assert counts_for(pods) == JobCounts(running=1, pending=expected_pending)


@pytest.mark.parametrize(
    ("pods", "expected_pending"),
    [
        pytest.param([], 1, id="no-pods"),
        pytest.param([pod("a", "Pending", "Ready", "PodScheduled")], 0, id="all-conditions"),
        pytest.param([pod("a", "Running", "PodScheduled")], 1, id="running-missing-one"),
        pytest.param(
            [pod("a", "Running", "Ready"), pod("a", "Running", "PodScheduled")],
            1,
            id="split-across-pods",
        ),
        pytest.param(
            [pod("a", "Running", "Ready"), pod("a", "Running", "Ready", "PodScheduled")],
            0,
            id="one-pod-has-all",
        ),
    ],
)
def test_count_jobs_pending_by_conditions(pods: list[PodInfo], expected_pending: int) -> None:
    counts = counts_for(pods, conditions=("Ready", "PodScheduled"))

    assert counts == JobCounts(running=1, pending=expected_pending)


def test_count_jobs_skips_finished() -> None:
    jobs = [job("a"), job("b", complete=True), job("c", failed=True), job("d")]

    counts = counts_for([pod("a", "Running")], jobs=jobs)

    assert counts == JobCounts(running=2, pending=1)


def test_count_jobs_none() -> None:
    assert counts_for([], jobs=[]) == JobCounts(running=0, pending=0)
