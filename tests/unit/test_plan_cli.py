"""Unit tests of `jobrunner plan` and of the decision explanation it prints."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from jobrunner.cli import main
from jobrunner.resources.scaledjob import ScalingStrategy
from jobrunner.scalers import REGISTRY, THRESHOLDS, TriggerInput, trigger_thresholds
from jobrunner.scaling.explain import (
    TriggerReport,
    decision_report,
    explain_decision,
    format_number,
    trigger_values,
)
from jobrunner.scaling.scaledjob import Decision, TriggerValue, decide

ROOT = Path(__file__).resolve().parents[2]
NOISY_LOGGERS = ("kafka", "kubernetes", "urllib3", "apscheduler", "alembic")
# A value that must never appear in plan's output.
SECRET = "hunter2-s3cret"
DECISION_KEYS = {
    "active": "active",
    "queueLength": "queue_length",
    "maxValue": "max_value",
    "maxScale": "max_scale",
    "scaleTo": "scale_to",
    "running": "running",
    "pending": "pending",
    "minReplicaCount": "min_replicas",
    "maxReplicaCount": "max_replicas",
    "effectiveMaxScale": "effective_max_scale",
    "jobsToCreate": "jobs_to_create",
    "appliedStrategy": "strategy",
}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the root logger set-up that every `jobrunner` invocation performs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def kafka_trigger(
    name: str = "", *, lag_threshold: int = 10, activation: int = 0, topic: str = "orders"
) -> dict[str, Any]:
    trigger: dict[str, Any] = {
        "type": "kafka",
        "metadata": {
            "bootstrapServers": "kafka:9092",
            "consumerGroup": "workers",
            "topic": topic,
            "lagThreshold": str(lag_threshold),
            "activationLagThreshold": str(activation),
        },
    }
    if name:
        trigger["name"] = name
    return trigger


def scaled_job(
    *triggers: dict[str, Any],
    name: str = "orders",
    min_count: int | None = None,
    max_count: int | None = None,
    strategy: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "jobTargetRef": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "triggers": list(triggers) or [kafka_trigger("orders-lag")],
    }
    if min_count is not None:
        spec["minReplicaCount"] = min_count
    if max_count is not None:
        spec["maxReplicaCount"] = max_count
    if strategy is not None:
        spec["scalingStrategy"] = strategy
    metadata: dict[str, Any] = {"name": name}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": "ScaledJob",
        "metadata": metadata,
        "spec": spec,
    }


def write(directory: Path, *documents: dict[str, Any], name: str = "scaledjob.yaml") -> str:
    path = directory / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return str(path)


def invoke(*arguments: str) -> Result:
    return CliRunner().invoke(
        main, ["plan", *arguments], env={"JOBRUNNER_CLUSTER_OBJECT_NAMESPACE": None}
    )


def plan_json(path: str, *arguments: str) -> dict[str, Any]:
    result = invoke(path, "--output", "json", *arguments)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# --- KEDA's documented examples -------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue", "lag_threshold", "max_count", "jobs"),
    [
        pytest.param(10, 2, 3, 3, id="queue-10-target-2-max-3"),
        pytest.param(4, 5, 3, 1, id="queue-4-target-5-max-3"),
    ],
)
def test_plan_keda_examples(
    tmp_path: Path, queue: int, lag_threshold: int, max_count: int, jobs: int
) -> None:
    path = write(
        tmp_path, scaled_job(kafka_trigger("lag", lag_threshold=lag_threshold), max_count=max_count)
    )

    report = plan_json(path, "--queue-length", f"lag={queue}")
    text = invoke(path, "--queue-length", f"lag={queue}")

    assert report["jobsToCreate"] == jobs
    assert report["maxScale"] == jobs
    assert report["effectiveMaxScale"] == jobs
    assert report["scaleTo"] == queue
    assert report["active"] is True
    assert text.exit_code == 0, text.output
    assert text.stdout.splitlines()[0] == (
        f"ScaledJob default/orders: {jobs} {'Job' if jobs == 1 else 'Jobs'} to create"
    )
    assert text.stdout.splitlines()[-1] == (
        f"  jobsToCreate = min(scaleTo {queue}, effectiveMaxScale {jobs}) = {jobs}"
    )


def test_plan_text_explains_arithmetic(tmp_path: Path) -> None:
    path = write(tmp_path, scaled_job(kafka_trigger("lag", lag_threshold=2), max_count=3))

    result = invoke(path, "-q", "lag=10")

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "ScaledJob default/orders: 3 Jobs to create",
        "  effective bounds: minReplicaCount 0, maxReplicaCount 3 (minReplicaCount is unset)",
        "  unfinished Jobs: running 0 (pending ones included), pending 0",
        "  trigger 0 (lag), kafka: maxValue = min(queueLength 10 / target 2 = 5, "
        "maxReplicaCount 3) = 3; active because 10 > activation threshold 0",
        "  multipleScalersCalculation max: trigger 0 (lag) has the largest queueLength of the "
        "active triggers, so queueLength 10, maxValue 3",
        "  the ScaledJob is active",
        "  maxValue = min(3, maxReplicaCount 3) = 3",
        "  scaleTo = ceil(queueLength 10) = 10",
        "  maxScale = ceil(maxValue 3) = 3",
        "  R = running - minReplicaCount = 0 - 0 = 0",
        "  strategy default: effectiveMaxScale = maxScale - R = 3 - 0 = 3",
        "  scaleTo stays 10",
        "  jobsToCreate = min(scaleTo 10, effectiveMaxScale 3) = 3",
    ]


# --- agreement with decide ------------------------------------------------------------------

STRATEGIES: dict[str, dict[str, Any]] = {
    "default": {"strategy": "default"},
    "custom": {
        "strategy": "custom",
        "customScalingQueueLengthDeduction": 1,
        "customScalingRunningJobPercentage": "0.5",
    },
    "custom-without-percentage": {"strategy": "custom"},
    "accurate": {"strategy": "accurate"},
    "eager": {"strategy": "eager"},
}
CALCULATIONS = ("max", "min", "avg", "sum")
# (queue lengths of triggers a and b, running, pending, minReplicaCount, maxReplicaCount);
# a has lagThreshold 2, b has lagThreshold 5 and activationLagThreshold 3.
SCENARIOS = {
    "both-active": ((10, 4), 0, 0, None, 3),
    "b-at-activation-threshold": ((10, 3), 0, 0, None, 10),
    "running-and-pending": ((30, 40), 4, 2, None, 10),
    "min-and-max": ((7, 25), 3, 1, 1, 6),
    "min-above-max": ((7, 25), 0, 0, 5, 2),
    "nothing-active": ((0, 0), 0, 0, None, 5),
    "min-keeps-active": ((0, 0), 1, 0, 2, 5),
    "b-fails": ((9, None), 2, 0, None, None),
    "full": ((100, 100), 10, 3, None, 10),
    "a-zero-b-active": ((0, 12), 0, 0, None, 4),
}


def expected_decision(
    queues: tuple[int | None, int | None],
    *,
    running: int,
    pending: int,
    min_count: int | None,
    max_count: int | None,
    strategy: dict[str, Any],
    calculation: str,
) -> Decision:
    """Call decide directly with the values plan should derive from its options."""
    values = []
    for label, queue, target, activation in (("a", queues[0], 2, 0), ("b", queues[1], 5, 3)):
        if queue is not None:
            values.append(TriggerValue(label, float(queue), float(target), queue > activation))
    return decide(
        values,
        running=running,
        pending=pending,
        min_count=min_count,
        max_count=max_count,
        strategy=ScalingStrategy(
            strategy=strategy["strategy"],
            custom_scaling_queue_length_deduction=strategy.get("customScalingQueueLengthDeduction"),
            custom_scaling_running_job_percentage=strategy.get(
                "customScalingRunningJobPercentage", ""
            ),
            multiple_scalers_calculation=calculation,
        ),
    )


@pytest.mark.parametrize(
    ("strategy_name", "calculation", "scenario"),
    [
        pytest.param(s, c, n, id=f"{s}-{c}-{n}")
        for s, c, n in itertools.product(STRATEGIES, CALCULATIONS, SCENARIOS)
    ],
)
def test_plan_json_agrees_with_decide(
    tmp_path: Path, strategy_name: str, calculation: str, scenario: str
) -> None:
    queues, running, pending, min_count, max_count = SCENARIOS[scenario]
    strategy = {**STRATEGIES[strategy_name], "multipleScalersCalculation": calculation}
    path = write(
        tmp_path,
        scaled_job(
            kafka_trigger("a", lag_threshold=2),
            kafka_trigger("b", lag_threshold=5, activation=3),
            min_count=min_count,
            max_count=max_count,
            strategy=strategy,
        ),
    )
    options = ["--running", str(running), "--pending", str(pending)]
    for label, queue in zip(("a", "1"), queues, strict=True):
        if queue is not None:
            options += ["--queue-length", f"{label}={queue}"]

    report = plan_json(path, *options)
    expected = expected_decision(
        queues,
        running=running,
        pending=pending,
        min_count=min_count,
        max_count=max_count,
        strategy=STRATEGIES[strategy_name],
        calculation=calculation,
    )

    for key, attribute in DECISION_KEYS.items():
        assert report[key] == getattr(expected, attribute), key
    assert report["strategy"] == STRATEGIES[strategy_name]["strategy"]
    assert report["multipleScalersCalculation"] == calculation
    assert [t["reported"] for t in report["triggers"]] == [q is not None for q in queues]


def test_plan_json_triggers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        scaled_job(
            kafka_trigger("a", lag_threshold=2),
            kafka_trigger("b", lag_threshold=5, activation=3),
            kafka_trigger(lag_threshold=4),
            max_count=3,
        ),
    )

    report = plan_json(path, "-q", "a=10", "-q", "b=3")

    assert report["scaledJob"] == "default/orders"
    assert report["paused"] is False
    assert report["triggers"] == [
        {
            "index": 0,
            "name": "a",
            "type": "kafka",
            "reported": True,
            "queueLength": 10.0,
            "target": 2.0,
            "activationThreshold": 0.0,
            "active": True,
            "maxValue": 3.0,
        },
        {
            "index": 1,
            "name": "b",
            "type": "kafka",
            "reported": True,
            "queueLength": 3.0,
            "target": 5.0,
            "activationThreshold": 3.0,
            "active": False,
            "maxValue": 0.6,
        },
        {
            "index": 2,
            "name": "",
            "type": "kafka",
            "reported": False,
            "queueLength": None,
            "target": 4.0,
            "activationThreshold": 0.0,
            "active": False,
            "maxValue": None,
        },
    ]


# --- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param("lag=12", id="by-name"),
        pytest.param("0=12", id="by-index"),
        pytest.param("lag=12.0", id="decimal"),
    ],
)
def test_plan_trigger_by_name_or_index(tmp_path: Path, argument: str) -> None:
    path = write(tmp_path, scaled_job(kafka_trigger("lag")))

    report = plan_json(path, "-q", argument)

    assert report["triggers"][0]["queueLength"] == 12.0
    assert report["jobsToCreate"] == 2


def test_plan_name_before_index(tmp_path: Path) -> None:
    path = write(tmp_path, scaled_job(kafka_trigger("first"), kafka_trigger("0")))

    report = plan_json(path, "-q", "0=30")

    assert [t["queueLength"] for t in report["triggers"]] == [None, 30.0]


def test_plan_activation_is_strict(tmp_path: Path) -> None:
    path = write(tmp_path, scaled_job(kafka_trigger("lag", activation=5)))

    at_threshold = plan_json(path, "-q", "lag=5")
    above = plan_json(path, "-q", "lag=6")

    assert at_threshold["active"] is False
    assert at_threshold["jobsToCreate"] == 0
    assert above["active"] is True
    assert above["jobsToCreate"] == 1


def test_plan_trigger_without_value(tmp_path: Path) -> None:
    path = write(tmp_path, scaled_job(kafka_trigger("a"), kafka_trigger("b")))

    result = invoke(path, "-q", "a=20")

    assert result.exit_code == 0, result.output
    assert (
        "  trigger 1 (b), kafka: reported nothing, as when its scaler fails, so it is left out"
        in (result.stdout.splitlines())
    )
    assert result.stdout.splitlines()[0] == "ScaledJob default/orders: 2 Jobs to create"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            ["-q", "other=5"],
            "--queue-length other=5: no trigger with that name or index; triggers: 0 (lag), 1",
            id="unknown-name",
        ),
        pytest.param(
            ["-q", "2=5"],
            "--queue-length 2=5: no trigger with that name or index; triggers: 0 (lag), 1",
            id="index-out-of-range",
        ),
        pytest.param(["-q", "lag"], "--queue-length lag: expected TRIGGER=VALUE", id="no-equals"),
        pytest.param(["-q", "=5"], "--queue-length =5: expected TRIGGER=VALUE", id="no-trigger"),
        pytest.param(
            ["-q", "lag=-1"], "--queue-length lag=-1: VALUE must be a number >= 0", id="negative"
        ),
        pytest.param(
            ["-q", "lag=many"], "--queue-length lag=many: VALUE must be a number >= 0", id="text"
        ),
        pytest.param(
            ["-q", "lag=nan"], "--queue-length lag=nan: VALUE must be a number >= 0", id="nan"
        ),
        pytest.param(
            ["-q", "lag=inf"], "--queue-length lag=inf: VALUE must be a number >= 0", id="inf"
        ),
        pytest.param(
            ["-q", "lag=1", "-q", "0=2"],
            "--queue-length 0=2: trigger 0 is given twice",
            id="twice",
        ),
        pytest.param(
            ["--running", "1", "--pending", "2"],
            "--pending 2 is greater than --running 1; --running counts every unfinished Job, "
            "pending ones included",
            id="pending-above-running",
        ),
    ],
)
def test_plan_usage_errors(tmp_path: Path, arguments: list[str], message: str) -> None:
    path = write(tmp_path, scaled_job(kafka_trigger("lag"), kafka_trigger()))

    result = invoke(path, *arguments)

    assert result.exit_code == 2
    assert f"Error: {message}" in result.stderr


def test_plan_negative_running_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, scaled_job())

    result = invoke(path, "--running", "-1")

    assert result.exit_code == 2


def test_plan_picks_scaled_job(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        scaled_job(kafka_trigger("lag", lag_threshold=1), name="first"),
        scaled_job(kafka_trigger("lag", lag_threshold=5), name="second"),
    )

    ambiguous = invoke(path, "-q", "lag=10")
    by_name = plan_json(path, "--scaled-job", "second", "-q", "lag=10")
    by_key = plan_json(path, "--scaled-job", "default/first", "-q", "lag=10")
    unknown = invoke(path, "--scaled-job", "third")

    assert ambiguous.exit_code == 2
    assert (
        "FILES define several ScaledJobs (default/first, default/second); "
        "pick one with --scaled-job"
    ) in ambiguous.stderr
    assert by_name["scaledJob"] == "default/second"
    assert by_name["jobsToCreate"] == 2
    assert by_key["scaledJob"] == "default/first"
    assert unknown.exit_code == 2
    assert "--scaled-job third: not found" in unknown.stderr


def test_plan_without_scaled_job(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}},
    )

    result = invoke(path)

    assert result.exit_code == 2
    assert "FILES define no ScaledJob" in result.stderr


def test_plan_invalid_scaled_job(tmp_path: Path) -> None:
    path = write(tmp_path, scaled_job(kafka_trigger("lag", lag_threshold=0), max_count=0))

    result = invoke(path, "-q", "lag=10")

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"error: {path}: ScaledJob default/orders: spec.maxReplicaCount: must be >= 1"
    )
    assert result.stderr.splitlines()[1].startswith(
        f"error: {path}: ScaledJob default/orders: trigger 0: metadata.lagThreshold: "
    )
    assert result.stderr.splitlines()[-1] == (
        "error: fix these problems first; `jobrunner validate` lists them"
    )
    assert result.stdout == ""


def test_plan_ignores_other_problems(tmp_path: Path) -> None:
    broken = scaled_job(name="broken", max_count=0)
    path = write(tmp_path, scaled_job(kafka_trigger("lag")), broken)

    report = plan_json(path, "--scaled-job", "orders", "-q", "lag=10")

    assert report["jobsToCreate"] == 1


def test_plan_paused(tmp_path: Path) -> None:
    path = write(tmp_path, scaled_job(annotations={"autoscaling.keda.sh/paused": "true"}))

    text = invoke(path, "-q", "0=10")
    report = plan_json(path, "-q", "0=10")

    assert "  the ScaledJob is paused, so a real poll would not run" in text.stdout.splitlines()
    assert report["paused"] is True


def test_plan_secret_never_printed(tmp_path: Path) -> None:
    trigger = {**kafka_trigger("lag"), "authenticationRef": {"name": "kafka-auth"}}
    path = write(
        tmp_path,
        scaled_job(trigger),
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "kafka-auth"},
            "spec": {
                "secretTargetRef": [
                    {"parameter": "password", "name": "kafka-credentials", "key": "password"}
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kafka-credentials"},
            "stringData": {"password": SECRET},
        },
    )

    text = invoke(path, "-q", "lag=25")
    report = invoke(path, "-q", "lag=25", "-o", "json")

    assert text.exit_code == 0, text.output
    assert report.exit_code == 0, report.output
    assert SECRET not in text.output
    assert SECRET not in report.output


def test_plan_sasl_example() -> None:
    path = str(ROOT / "examples" / "kafka-scaledjob" / "sasl-auth.yaml")

    report = plan_json(path, "-q", "orders-lag=35")
    text = invoke(path, "-q", "orders-lag=35")

    assert report["scaledJob"] == "default/orders-sasl"
    assert report["jobsToCreate"] == 4
    assert text.exit_code == 0, text.output
    # The example Secret's password.
    assert "change-me" not in text.output


def test_plan_auth_in_separate_file(tmp_path: Path) -> None:
    trigger = {**kafka_trigger("lag"), "authenticationRef": {"name": "kafka-auth"}}
    job_file = write(tmp_path, scaled_job(trigger))
    auth_file = write(
        tmp_path,
        {
            "apiVersion": "jobrunner.dev/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "kafka-auth"},
            "spec": {},
        },
        name="auth.yaml",
    )

    alone = invoke(job_file, "-q", "lag=25")
    together = invoke(job_file, auth_file, "-q", "lag=25")

    assert alone.exit_code == 1
    assert "TriggerAuthentication default/kafka-auth not found" in alone.stderr
    assert together.exit_code == 0, together.output


# --- the explanation itself -----------------------------------------------------------------


def explain(
    reports: list[TriggerReport],
    strategy: ScalingStrategy | None = None,
    *,
    running: int = 0,
    pending: int = 0,
    min_count: int | None = None,
    max_count: int | None = None,
) -> list[str]:
    strategy = strategy or ScalingStrategy()
    decision = decide(
        trigger_values(reports),
        running=running,
        pending=pending,
        min_count=min_count,
        max_count=max_count,
        strategy=strategy,
    )
    return explain_decision(
        decision, reports, strategy=strategy, min_count=min_count, max_count=max_count
    )


def report(
    index: int, queue: float | None, target: float = 2, activation: float = 0
) -> TriggerReport:
    return TriggerReport(
        index=index,
        name=f"t{index}",
        type="kafka",
        target=target,
        activation_threshold=activation,
        queue_length=queue,
    )


@pytest.mark.parametrize(
    ("strategy", "running", "pending", "min_count", "max_count", "expected"),
    [
        pytest.param(
            ScalingStrategy(strategy="accurate"),
            4,
            2,
            1,
            6,
            "strategy accurate: maxScale + R - pending = 5 + 3 - 2 = 6 > maxReplicaCount 5, "
            "so effectiveMaxScale = maxReplicaCount - R = 5 - 3 = 2",
            id="accurate-over-max",
        ),
        pytest.param(
            ScalingStrategy(strategy="accurate"),
            2,
            1,
            None,
            10,
            "strategy accurate: maxScale + R - pending = 5 + 2 - 1 = 6 <= maxReplicaCount 10, "
            "so effectiveMaxScale = maxScale - pending = 5 - 1 = 4",
            id="accurate-within-max",
        ),
        pytest.param(
            ScalingStrategy(
                strategy="custom",
                custom_scaling_queue_length_deduction=1,
                custom_scaling_running_job_percentage="0.5",
            ),
            3,
            0,
            None,
            10,
            "strategy custom: effectiveMaxScale = min(maxScale - deduction - trunc(R * "
            "percentage), maxReplicaCount) = min(5 - 1 - trunc(3 * 0.5), 10) = 3",
            id="custom",
        ),
        pytest.param(
            ScalingStrategy(strategy="eager"),
            3,
            1,
            None,
            10,
            "strategy eager: effectiveMaxScale = min(maxReplicaCount - R - pending, maxScale) = "
            "min(10 - 3 - 1, 5) = 5",
            id="eager",
        ),
        pytest.param(
            ScalingStrategy(),
            2,
            0,
            None,
            10,
            "strategy default: effectiveMaxScale = maxScale - R = 5 - 2 = 3",
            id="default",
        ),
    ],
)
def test_explain_strategy_formula(
    strategy: ScalingStrategy,
    running: int,
    pending: int,
    min_count: int | None,
    max_count: int | None,
    expected: str,
) -> None:
    lines = explain(
        [report(0, 10)],
        strategy,
        running=running,
        pending=pending,
        min_count=min_count,
        max_count=max_count,
    )

    assert expected in lines


def test_explain_eager_replaces_scale_to() -> None:
    lines = explain([report(0, 10)], ScalingStrategy(strategy="eager"), max_count=10)

    assert "scaleTo becomes maxReplicaCount 10" in lines
    assert lines[-1] == "jobsToCreate = min(scaleTo 10, effectiveMaxScale 5) = 5"


def test_explain_custom_fallback() -> None:
    lines = explain([report(0, 10)], ScalingStrategy(strategy="custom"), max_count=10)

    assert (
        "strategy custom needs customScalingRunningJobPercentage to be a number, "
        "so the default strategy is used"
    ) in lines
    assert "strategy default: effectiveMaxScale = maxScale - R = 5 - 0 = 5" in lines


def test_explain_negative_effective_max() -> None:
    lines = explain([report(0, 100)], running=8, max_count=5)

    assert "strategy default: effectiveMaxScale = maxScale - R = 5 - 8 = -3" in lines
    assert "effectiveMaxScale -3 is negative, so it becomes 0" in lines
    assert lines[-1] == "jobsToCreate = 0 because effectiveMaxScale is 0"


def test_explain_below_min_replicas() -> None:
    lines = explain([report(0, 0)], running=1, min_count=3, max_count=10)

    assert (
        "no trigger makes the ScaledJob active, but minReplicaCount 3 > 0 keeps it active" in lines
    )
    assert (
        "running 1 < minReplicaCount 3, so effectiveMaxScale = scaleTo = 3 - 1 = 2 "
        "and the strategy is not used"
    ) in lines
    assert lines[-1] == "jobsToCreate = min(scaleTo 2, effectiveMaxScale 2) = 2"


def test_explain_inactive() -> None:
    lines = explain([report(0, 0), report(1, None)], max_count=10)

    assert (
        "multipleScalersCalculation max: no trigger is active, so queueLength 0, maxValue 0"
        in lines
    )
    assert "the ScaledJob is not active, so no Jobs are created" in lines
    assert lines[-1] == "jobsToCreate = 0 because the ScaledJob is not active"


@pytest.mark.parametrize(
    ("calculation", "expected"),
    [
        pytest.param(
            "max",
            "multipleScalersCalculation max: trigger 0 (t0) has the largest queueLength of the "
            "active triggers, so queueLength 10, maxValue 5",
            id="max",
        ),
        pytest.param(
            "min",
            "multipleScalersCalculation min: trigger 1 (t1) has the smallest queueLength of the "
            "active triggers, where a pick of 0 gives way, so queueLength 4, maxValue 0.8",
            id="min",
        ),
        pytest.param(
            "avg",
            "multipleScalersCalculation avg over 2 active triggers: queueLength = (10 + 4) / 2 = "
            "7, maxValue = (5 + 0.8) / 2 = 2.9",
            id="avg",
        ),
        pytest.param(
            "sum",
            "multipleScalersCalculation sum over 2 active triggers: queueLength = 10 + 4 = 14, "
            "maxValue = 5 + 0.8 = 5.8",
            id="sum",
        ),
    ],
)
def test_explain_combination(calculation: str, expected: str) -> None:
    lines = explain(
        [report(0, 10), report(1, 4, target=5), report(2, 1, activation=1)],
        ScalingStrategy(multiple_scalers_calculation=calculation),
        max_count=10,
    )

    assert expected in lines
    assert (
        "trigger 2 (t2), kafka: maxValue = min(queueLength 1 / target 2 = 0.5, maxReplicaCount "
        "10) = 0.5; not active because 1 <= activation threshold 1, left out"
    ) in lines


def test_explain_max_with_zero_queues() -> None:
    lines = explain([report(0, 0, activation=-1)], max_count=10)

    assert (
        "multipleScalersCalculation max: no active trigger reports a queueLength above 0, "
        "so queueLength 0, maxValue 0"
    ) in lines


@pytest.mark.parametrize(
    ("min_count", "max_count", "expected"),
    [
        pytest.param(
            None,
            None,
            "minReplicaCount 0, maxReplicaCount 100 (maxReplicaCount is "
            "unset, so the default 100 applies)",
            id="unset",
        ),
        pytest.param(
            1,
            None,
            "minReplicaCount 1, maxReplicaCount 100 (maxReplicaCount is unset, "
            "so the default 100 applies and minReplicaCount is not subtracted)",
            id="min-only",
        ),
        pytest.param(
            1,
            10,
            "minReplicaCount 1, maxReplicaCount 9 (maxReplicaCount 10 - minReplicaCount 1)",
            id="both",
        ),
        pytest.param(
            10,
            1,
            "minReplicaCount 1, maxReplicaCount 1 (minReplicaCount 10 > "
            "maxReplicaCount 1, so both are 1)",
            id="min-above-max",
        ),
    ],
)
def test_explain_bounds(min_count: int | None, max_count: int | None, expected: str) -> None:
    lines = explain([report(0, 10)], min_count=min_count, max_count=max_count)

    assert lines[0] == f"effective bounds: {expected}"


def test_decision_report_keys() -> None:
    reports = [report(0, 10)]
    strategy = ScalingStrategy()
    decision = decide(
        trigger_values(reports),
        running=0,
        pending=0,
        min_count=None,
        max_count=3,
        strategy=strategy,
    )

    document = decision_report(decision, reports, strategy=strategy)

    assert set(document) == {
        "triggers",
        "multipleScalersCalculation",
        "strategy",
        "appliedStrategy",
        *DECISION_KEYS,
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3.0, "3"),
        (0.8, "0.8"),
        (2.9, "2.9"),
        (1 / 3, "0.3333"),
        (100, "100"),
        (0.00001, "1e-05"),
        (12.5, "12.5"),
    ],
)
def test_format_number(value: float, expected: str) -> None:
    assert format_number(value) == expected


def test_every_scaler_states_thresholds() -> None:
    assert sorted(THRESHOLDS) == sorted(REGISTRY)


def test_kafka_thresholds_from_settings() -> None:
    metadata = {
        "bootstrapServers": "kafka:9092",
        "consumerGroup": "workers",
        "lagThreshold": "25",
        "activationLagThreshold": "3",
    }
    source = TriggerInput(
        subject="ScaledJob default/orders", path="spec.triggers[0]", metadata=metadata
    )

    thresholds = trigger_thresholds("kafka", REGISTRY["kafka"].parse_settings(source))

    assert thresholds.target == 25.0
    assert thresholds.activation == 3.0


def test_plan_missing_file_names_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    result = invoke(missing, "--queue-length", "0=1")
    assert result.exit_code == 1
    assert f"error: {missing}: cannot read the file" in result.output
    assert "define no ScaledJob" not in result.output


def test_plan_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: v1\nkind: [\n")
    result = invoke(str(path), "--queue-length", "0=1")
    assert result.exit_code == 1
    assert "invalid YAML" in result.output
