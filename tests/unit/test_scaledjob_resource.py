"""Unit tests of ScaledJob parsing: defaults, invalid fields and the pause annotations."""

from __future__ import annotations

from typing import Any

import pytest

from jobrunner.errors import InvalidSpecError
from jobrunner.resources.scaledjob import ScaledJob, ScalingStrategy, parse_scaled_job

TEMPLATE = {"template": {"spec": {"containers": [{"name": "worker", "image": "worker:1"}]}}}
KAFKA_TRIGGER = {
    "type": "kafka",
    "metadata": {"bootstrapServers": "kafka:9092", "consumerGroup": "workers", "topic": "orders"},
}
MISSING = object()


def scaled_job_object(
    *, annotations: dict[str, str] | None = None, **spec_fields: Any
) -> dict[str, Any]:
    """Build a ScaledJob as the API server returns it, leaving out spec fields set to MISSING."""
    spec: dict[str, Any] = {"jobTargetRef": TEMPLATE, "triggers": [KAFKA_TRIGGER]}
    spec.update(spec_fields)
    spec = {key: value for key, value in spec.items() if value is not MISSING}
    return {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {
            "namespace": "default",
            "name": "orders",
            "uid": "uid-1",
            "generation": 3,
            "labels": {"team": "shop"},
            "annotations": annotations or {},
        },
        "spec": spec,
    }


def parse_error(obj: dict[str, Any]) -> InvalidSpecError:
    with pytest.raises(InvalidSpecError) as caught:
        parse_scaled_job(obj)
    return caught.value


def problems_of(error: InvalidSpecError) -> dict[str, str]:
    return {problem.field: problem.message for problem in error.problems}


# --- valid objects --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        pytest.param("polling_interval", 30, id="polling-interval"),
        pytest.param("successful_jobs_history_limit", 100, id="successful-history-limit"),
        pytest.param("failed_jobs_history_limit", 100, id="failed-history-limit"),
        pytest.param("min_replica_count", None, id="min-replica-count"),
        pytest.param("max_replica_count", None, id="max-replica-count"),
        pytest.param("scaling_strategy", ScalingStrategy(), id="scaling-strategy"),
        pytest.param("env_source_container_name", "", id="env-source-container"),
    ],
)
def test_parse_scaled_job_defaults(attribute: str, expected: object) -> None:
    scaled_job = parse_scaled_job(scaled_job_object())

    assert getattr(scaled_job, attribute) == expected


def test_parse_scaled_job_metadata() -> None:
    scaled_job = parse_scaled_job(scaled_job_object())

    assert scaled_job.key == "default/orders"
    assert scaled_job.uid == "uid-1"
    assert scaled_job.generation == 3
    assert scaled_job.labels == {"team": "shop"}
    assert scaled_job.job_template == TEMPLATE


def test_parse_scaled_job_explicit_fields() -> None:
    obj = scaled_job_object(
        pollingInterval=5,
        successfulJobsHistoryLimit=0,
        failedJobsHistoryLimit=2,
        minReplicaCount=1,
        maxReplicaCount=20,
        envSourceContainerName="worker",
        scalingStrategy={
            "strategy": "custom",
            "customScalingQueueLengthDeduction": 2,
            "customScalingRunningJobPercentage": "0.5",
            "pendingPodConditions": ["Ready", "PodScheduled"],
            "multipleScalersCalculation": "sum",
        },
    )

    scaled_job = parse_scaled_job(obj)

    assert scaled_job.polling_interval == 5
    assert scaled_job.successful_jobs_history_limit == 0
    assert scaled_job.failed_jobs_history_limit == 2
    assert scaled_job.min_replica_count == 1
    assert scaled_job.max_replica_count == 20
    assert scaled_job.env_source_container_name == "worker"
    assert scaled_job.scaling_strategy == ScalingStrategy(
        strategy="custom",
        custom_scaling_queue_length_deduction=2,
        custom_scaling_running_job_percentage="0.5",
        pending_pod_conditions=("Ready", "PodScheduled"),
        multiple_scalers_calculation="sum",
    )


def test_parse_scaled_job_triggers() -> None:
    triggers = [
        {"type": "kafka", "name": "orders", "metadata": {"lagThreshold": 5}},
        {"type": " kafka ", "authenticationRef": {"name": "kafka-auth"}},
    ]

    scaled_job = parse_scaled_job(scaled_job_object(triggers=triggers))

    first, second = scaled_job.triggers
    assert first.label == "orders"
    assert first.metadata == {"lagThreshold": "5"}
    assert first.authentication_ref is None
    assert second.type == "kafka"
    assert second.label == "1"
    assert second.authentication_ref is not None
    assert second.authentication_ref.kind == "TriggerAuthentication"


def test_unnamed_triggers_are_not_duplicates() -> None:
    scaled_job = parse_scaled_job(scaled_job_object(triggers=[KAFKA_TRIGGER, KAFKA_TRIGGER]))

    assert len(scaled_job.triggers) == 2


# --- invalid objects ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_fields", "field", "message"),
    [
        pytest.param(
            {"pollingInterval": 0}, "spec.pollingInterval", "must be >= 1", id="polling-0"
        ),
        pytest.param(
            {"pollingInterval": "30"},
            "spec.pollingInterval",
            "must be an integer",
            id="polling-text",
        ),
        pytest.param(
            {"maxReplicaCount": "10"},
            "spec.maxReplicaCount",
            "must be an integer",
            id="max-replicas-text",
        ),
        pytest.param(
            {"maxReplicaCount": 2.5},
            "spec.maxReplicaCount",
            "must be an integer",
            id="max-replicas-fraction",
        ),
        pytest.param(
            {"maxReplicaCount": True},
            "spec.maxReplicaCount",
            "must be an integer",
            id="max-replicas-boolean",
        ),
        pytest.param(
            {"maxReplicaCount": 0}, "spec.maxReplicaCount", "must be >= 1", id="max-replicas-0"
        ),
        pytest.param(
            {"minReplicaCount": -1},
            "spec.minReplicaCount",
            "must be >= 0",
            id="min-replicas-negative",
        ),
        pytest.param(
            {"successfulJobsHistoryLimit": -1},
            "spec.successfulJobsHistoryLimit",
            "must be >= 0",
            id="successful-limit-negative",
        ),
        pytest.param(
            {"failedJobsHistoryLimit": -1},
            "spec.failedJobsHistoryLimit",
            "must be >= 0",
            id="failed-limit-negative",
        ),
        pytest.param(
            {"triggers": MISSING},
            "spec.triggers",
            "missing; give at least one trigger",
            id="triggers-missing",
        ),
        pytest.param(
            {"triggers": []},
            "spec.triggers",
            "missing; give at least one trigger",
            id="triggers-empty",
        ),
        pytest.param(
            {"triggers": ["kafka"]},
            "spec.triggers[0]",
            "must be an object",
            id="trigger-not-object",
        ),
        pytest.param(
            {"triggers": [{"metadata": {}}]}, "spec.triggers[0].type", "missing", id="trigger-type"
        ),
        pytest.param(
            {"triggers": [{"type": "kafka", "metadata": "topic=orders"}]},
            "spec.triggers[0].metadata",
            "must be a map of strings",
            id="trigger-metadata-not-map",
        ),
        pytest.param(
            {"triggers": [{**KAFKA_TRIGGER, "name": "a"}, {**KAFKA_TRIGGER, "name": " a "}]},
            "spec.triggers[1].name",
            "duplicate trigger name",
            id="duplicate-trigger-names",
        ),
        pytest.param(
            {"jobTargetRef": MISSING},
            "spec.jobTargetRef.template",
            "missing; give a pod template",
            id="job-target-ref-missing",
        ),
        pytest.param(
            {"jobTargetRef": {"backoffLimit": 2}},
            "spec.jobTargetRef.template",
            "missing; give a pod template",
            id="template-missing",
        ),
        pytest.param(
            {"scalingStrategy": {"strategy": "fast"}},
            "spec.scalingStrategy.strategy",
            "must be one of default, custom, accurate, eager",
            id="strategy-unknown",
        ),
        pytest.param(
            {"scalingStrategy": {"multipleScalersCalculation": "median"}},
            "spec.scalingStrategy.multipleScalersCalculation",
            "must be one of max, min, avg, sum",
            id="calculation-unknown",
        ),
        pytest.param(
            {"scalingStrategy": {"customScalingQueueLengthDeduction": "1"}},
            "spec.scalingStrategy.customScalingQueueLengthDeduction",
            "must be an integer",
            id="deduction-text",
        ),
        pytest.param(
            {"scalingStrategy": "eager"},
            "spec.scalingStrategy",
            "must be an object",
            id="strategy-not-object",
        ),
    ],
)
def test_parse_scaled_job_invalid_field(
    spec_fields: dict[str, Any], field: str, message: str
) -> None:
    error = parse_error(scaled_job_object(**spec_fields))

    assert problems_of(error) == {field: message}


def test_parse_scaled_job_reports_every_problem() -> None:
    obj = scaled_job_object(
        pollingInterval=0, maxReplicaCount="10", triggers=MISSING, jobTargetRef=MISSING
    )

    error = parse_error(obj)

    assert sorted(problems_of(error)) == [
        "spec.jobTargetRef.template",
        "spec.maxReplicaCount",
        "spec.pollingInterval",
        "spec.triggers",
    ]


def test_parse_scaled_job_error_names_object() -> None:
    error = parse_error(scaled_job_object(pollingInterval=0))

    assert error.subject == "ScaledJob default/orders"


def test_parse_scaled_job_without_spec() -> None:
    obj = scaled_job_object()
    del obj["spec"]

    error = parse_error(obj)

    assert problems_of(error) == {"spec": "missing"}


# --- pause annotations ----------------------------------------------------------------------

JOBRUNNER_PAUSED = "autoscaling.jobrunner.dev/paused"
KEDA_PAUSED = "autoscaling.keda.sh/paused"


def paused(annotations: dict[str, str]) -> bool:
    scaled_job: ScaledJob = parse_scaled_job(scaled_job_object(annotations=annotations))
    return scaled_job.paused


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("true", True, id="true"),
        pytest.param("True", True, id="True"),
        pytest.param("TRUE", True, id="TRUE"),
        pytest.param(" true ", True, id="true-padded"),
        pytest.param("false", False, id="false"),
        pytest.param("False", False, id="False"),
        pytest.param("0", False, id="0"),
        pytest.param("f", False, id="f"),
    ],
)
@pytest.mark.parametrize("annotation", [JOBRUNNER_PAUSED, KEDA_PAUSED])
def test_paused_annotation(annotation: str, value: str, expected: bool) -> None:
    assert paused({annotation: value}) is expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1", id="1"),
        pytest.param("t", id="t"),
        pytest.param("yes", id="unparseable-yes"),
    ],
)
def test_keda_paused_annotation_parse_bool(value: str) -> None:
    assert paused({KEDA_PAUSED: value}) is True


def test_not_paused_without_annotation() -> None:
    assert paused({"team": "shop"}) is False


def test_paused_by_either_annotation() -> None:
    assert paused({JOBRUNNER_PAUSED: "false", KEDA_PAUSED: "true"}) is True
