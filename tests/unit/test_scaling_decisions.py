"""Unit tests of the ScaledJob arithmetic: replica bounds, trigger combination, strategies."""

from __future__ import annotations

from typing import Any

import pytest

from jobrunner.resources.scaledjob import ScalingStrategy
from jobrunner.scaling.scaledjob import (
    Combined,
    Decision,
    TriggerValue,
    combine_triggers,
    decide,
    effective_max_replicas,
    effective_min_replicas,
)


def trigger(queue: float, target: float = 1.0, *, active: bool = True) -> TriggerValue:
    return TriggerValue(label="t", queue_length=queue, target=target, active=active)


def decide_for(
    queue: float,
    target: float,
    *,
    max_count: int | None = None,
    min_count: int | None = None,
    running: int = 0,
    pending: int = 0,
    active: bool = True,
    strategy: ScalingStrategy | None = None,
) -> Decision:
    return decide(
        [trigger(queue, target, active=active)],
        running=running,
        pending=pending,
        min_count=min_count,
        max_count=max_count,
        strategy=strategy or ScalingStrategy(),
    )


def custom(percentage: str, deduction: int | None = None) -> ScalingStrategy:
    return ScalingStrategy(
        strategy="custom",
        custom_scaling_queue_length_deduction=deduction,
        custom_scaling_running_job_percentage=percentage,
    )


# --- effective replica bounds ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_count", "max_count", "expected_min", "expected_max"),
    [
        pytest.param(None, None, 0, 100, id="both-unset"),
        pytest.param(1, 10, 1, 9, id="max-10-min-1"),
        pytest.param(1, None, 1, 100, id="max-unset-min-1-not-subtracted"),
        pytest.param(10, 1, 1, 1, id="min-above-max"),
        pytest.param(None, 5, 0, 5, id="min-unset"),
        pytest.param(0, 5, 0, 5, id="min-zero"),
        pytest.param(5, 5, 5, 0, id="min-equals-max"),
    ],
)
def test_effective_replica_bounds(
    min_count: int | None, max_count: int | None, expected_min: int, expected_max: int
) -> None:
    assert effective_min_replicas(min_count, max_count) == expected_min
    assert effective_max_replicas(min_count, max_count) == expected_max


# --- combining triggers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calculation", "values", "expected"),
    [
        pytest.param(
            "max",
            [trigger(5), trigger(8, 2)],
            Combined(active=True, queue_length=8, max_value=4),
            id="max-picks-largest-queue",
        ),
        pytest.param(
            "max",
            [trigger(4, 1), trigger(4, 2)],
            Combined(active=True, queue_length=4, max_value=4),
            id="max-keeps-first-on-tie",
        ),
        pytest.param(
            "max",
            [trigger(5), trigger(50, active=False)],
            Combined(active=True, queue_length=5, max_value=5),
            id="max-ignores-inactive",
        ),
        pytest.param(
            "max",
            [trigger(0)],
            Combined(active=False, queue_length=0, max_value=0),
            id="max-active-zero-is-never-picked",
        ),
        pytest.param(
            "max",
            [trigger(0), trigger(3)],
            Combined(active=True, queue_length=3, max_value=3),
            id="max-skips-active-zero",
        ),
        pytest.param(
            "max",
            [trigger(9, active=False)],
            Combined(active=False, queue_length=0, max_value=0),
            id="max-all-inactive",
        ),
        pytest.param(
            "min",
            [trigger(5), trigger(3), trigger(8)],
            Combined(active=True, queue_length=3, max_value=3),
            id="min-picks-smallest-queue",
        ),
        pytest.param(
            "min",
            [trigger(0), trigger(4)],
            Combined(active=True, queue_length=4, max_value=4),
            id="min-replaces-zero-pick",
        ),
        pytest.param(
            "min",
            [trigger(4), trigger(0)],
            Combined(active=True, queue_length=0, max_value=0),
            id="min-picks-later-zero",
        ),
        pytest.param(
            "min",
            [trigger(4), trigger(0), trigger(3)],
            Combined(active=True, queue_length=3, max_value=3),
            id="min-replaces-zero-again",
        ),
        pytest.param(
            "min",
            [trigger(1, active=False), trigger(6)],
            Combined(active=True, queue_length=6, max_value=6),
            id="min-ignores-inactive",
        ),
        pytest.param(
            "min",
            [trigger(1, active=False)],
            Combined(active=False, queue_length=0, max_value=0),
            id="min-all-inactive",
        ),
        pytest.param(
            "avg",
            [trigger(4, 2), trigger(8, 2)],
            Combined(active=True, queue_length=6, max_value=3),
            id="avg-of-active",
        ),
        pytest.param(
            "avg",
            [trigger(4, 2), trigger(100, 2, active=False)],
            Combined(active=True, queue_length=4, max_value=2),
            id="avg-ignores-inactive",
        ),
        pytest.param(
            "avg",
            [trigger(4, active=False)],
            Combined(active=False, queue_length=0, max_value=0),
            id="avg-all-inactive",
        ),
        pytest.param(
            "sum",
            [trigger(4, 2), trigger(8, 2)],
            Combined(active=True, queue_length=12, max_value=6),
            id="sum-of-active",
        ),
        pytest.param(
            "sum",
            [trigger(4, 2), trigger(100, 2, active=False)],
            Combined(active=True, queue_length=4, max_value=2),
            id="sum-ignores-inactive",
        ),
        pytest.param(
            "sum",
            [trigger(4, active=False)],
            Combined(active=False, queue_length=0, max_value=0),
            id="sum-all-inactive",
        ),
        pytest.param(
            "median",
            [trigger(5), trigger(8)],
            Combined(active=True, queue_length=8, max_value=8),
            id="unknown-behaves-as-max",
        ),
    ],
)
def test_combine_triggers(calculation: str, values: list[TriggerValue], expected: Combined) -> None:
    assert combine_triggers(values, calculation=calculation, max_replicas=100) == expected


@pytest.mark.parametrize(
    ("calculation", "expected_max_value"),
    [
        pytest.param("max", 5, id="max"),
        pytest.param("sum", 10, id="sum"),
    ],
)
def test_combine_triggers_caps_each_trigger(calculation: str, expected_max_value: float) -> None:
    values = [trigger(100), trigger(50)]

    combined = combine_triggers(values, calculation=calculation, max_replicas=5)

    assert combined.max_value == expected_max_value


def test_combine_triggers_zero_target_gives_zero() -> None:
    combined = combine_triggers([trigger(10, 0)], calculation="max", max_replicas=100)

    assert combined.active is True
    assert combined.queue_length == 10
    assert combined.max_value == 0


# --- decide: the default strategy -----------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected_jobs"),
    [
        pytest.param(dict(queue=10, target=2, max_count=3), 3, id="queue-10-target-2-max-3"),
        pytest.param(dict(queue=4, target=5, max_count=3), 1, id="queue-4-target-5-max-3"),
        pytest.param(dict(queue=50, target=10, max_count=5), 5, id="queue-50-running-0"),
        pytest.param(dict(queue=50, target=10, max_count=5, running=5), 0, id="queue-50-running-5"),
        pytest.param(dict(queue=50, target=10, max_count=5, running=3), 2, id="queue-50-running-3"),
        pytest.param(dict(queue=3, target=1, max_count=10), 3, id="queue-below-max"),
        pytest.param(dict(queue=0, target=1, max_count=10), 0, id="active-zero-queue"),
        pytest.param(dict(queue=500, target=1), 100, id="max-unset-uses-100"),
    ],
)
def test_default_strategy_jobs(inputs: dict[str, Any], expected_jobs: int) -> None:
    assert decide_for(**inputs).jobs_to_create == expected_jobs


def test_default_strategy_worked_example() -> None:
    decision = decide_for(10, 2, max_count=3)

    assert decision.max_value == 3
    assert decision.max_scale == 3
    assert decision.scale_to == 10
    assert decision.effective_max_scale == 3
    assert decision.strategy == "default"


def test_default_strategy_rounds_max_value_up() -> None:
    decision = decide_for(4, 5, max_count=3)

    assert decision.max_value == pytest.approx(0.8)
    assert decision.max_scale == 1


def test_decide_clamps_negative_effective_max() -> None:
    decision = decide_for(10, 1, max_count=5, running=8)

    assert decision.effective_max_scale == 0
    assert decision.jobs_to_create == 0


def test_decide_inactive_creates_no_jobs() -> None:
    decision = decide_for(10, 1, max_count=5, active=False)

    assert decision.active is False
    assert decision.jobs_to_create == 0


def test_decide_caps_combined_max_value() -> None:
    decision = decide(
        [trigger(100), trigger(100)],
        running=0,
        pending=0,
        min_count=None,
        max_count=5,
        strategy=ScalingStrategy(multiple_scalers_calculation="sum"),
    )

    assert decision.max_value == 5
    assert decision.jobs_to_create == 5


def test_decide_unknown_strategy_uses_default() -> None:
    decision = decide_for(10, 1, max_count=10, running=4, strategy=ScalingStrategy(strategy="fast"))

    assert decision.strategy == "default"
    assert decision.jobs_to_create == 6


# --- decide: minReplicaCount ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected_jobs"),
    [
        pytest.param(dict(queue=0, min_count=2, max_count=10), 2, id="empty-queue-running-0"),
        pytest.param(dict(queue=0, min_count=2, max_count=10, running=1), 1, id="running-1"),
        pytest.param(dict(queue=50, min_count=2, max_count=10), 2, id="large-queue-fills-min-only"),
        pytest.param(dict(queue=0, min_count=10, max_count=1), 1, id="min-above-max"),
    ],
)
def test_decide_running_below_min(inputs: dict[str, Any], expected_jobs: int) -> None:
    decision = decide_for(target=1, active=False, **inputs)

    assert decision.active is True
    assert decision.strategy == "minReplicaCount"
    assert decision.jobs_to_create == expected_jobs


def test_decide_running_at_min_uses_strategy() -> None:
    # max 10 and min 2 give an effective max of 8, and the strategy gets 3 - 2 = 1 running Job.
    decision = decide_for(10, 1, min_count=2, max_count=10, running=3)

    assert decision.strategy == "default"
    assert decision.max_scale == 8
    assert decision.jobs_to_create == 7


def test_decide_min_keeps_inactive_trigger_active() -> None:
    decision = decide_for(0, 1, min_count=1, max_count=10, running=1, active=False)

    assert decision.active is True
    assert decision.jobs_to_create == 0


# --- decide: the custom strategy ------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "inputs", "expected_effective_max"),
    [
        pytest.param(custom("0.5", deduction=1), dict(running=4), 7, id="deduction-and-percentage"),
        pytest.param(custom("0.3"), dict(running=5), 9, id="percentage-truncates"),
        pytest.param(custom("1"), dict(running=3), 7, id="deduction-unset-counts-0"),
        pytest.param(custom("0", deduction=-5), dict(queue=20), 10, id="capped-at-max"),
        pytest.param(custom("-0.5"), dict(running=3, max_count=20), 11, id="truncates-toward-zero"),
    ],
)
def test_custom_strategy_effective_max(
    strategy: ScalingStrategy, inputs: dict[str, Any], expected_effective_max: int
) -> None:
    arguments: dict[str, Any] = {"queue": 10, "max_count": 10, **inputs}

    decision = decide_for(target=1, strategy=strategy, **arguments)

    assert decision.strategy == "custom"
    assert decision.effective_max_scale == expected_effective_max


def test_custom_strategy_jobs() -> None:
    decision = decide_for(10, 1, max_count=10, running=4, strategy=custom("0.5", deduction=1))

    assert decision.jobs_to_create == 7


@pytest.mark.parametrize(
    "percentage",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="word"),
        pytest.param("50%", id="percent-sign"),
    ],
)
def test_custom_strategy_falls_back_to_default(percentage: str) -> None:
    decision = decide_for(10, 1, max_count=10, running=4, strategy=custom(percentage, deduction=3))

    assert decision.strategy == "default"
    assert decision.effective_max_scale == 6
    assert decision.jobs_to_create == 6


# --- decide: the accurate strategy ----------------------------------------------------------


@pytest.mark.parametrize(
    ("inputs", "expected_effective_max"),
    [
        pytest.param(
            dict(queue=10, max_count=10, running=5, pending=1),
            5,
            id="over-max-uses-max-minus-running",
        ),
        pytest.param(
            dict(queue=10, max_count=20, running=5, pending=2), 8, id="under-max-subtracts-pending"
        ),
        pytest.param(
            dict(queue=6, max_count=10, running=6, pending=3), 3, id="condition-subtracts-pending"
        ),
        pytest.param(dict(queue=10, max_count=10), 10, id="nothing-running"),
    ],
)
def test_accurate_strategy_effective_max(
    inputs: dict[str, Any], expected_effective_max: int
) -> None:
    decision = decide_for(target=1, strategy=ScalingStrategy(strategy="accurate"), **inputs)

    assert decision.strategy == "accurate"
    assert decision.effective_max_scale == expected_effective_max


def test_accurate_strategy_jobs() -> None:
    strategy = ScalingStrategy(strategy="accurate")

    decision = decide_for(10, 1, max_count=20, running=5, pending=2, strategy=strategy)

    assert decision.jobs_to_create == 8


# --- decide: the eager strategy -------------------------------------------------------------


def test_eager_strategy_uses_free_capacity() -> None:
    # The default strategy would create 3 - 2 = 1 Job here, but eager fills the free slots.
    strategy = ScalingStrategy(strategy="eager")

    decision = decide_for(3, 1, max_count=10, running=2, pending=1, strategy=strategy)

    assert decision.effective_max_scale == 3
    assert decision.jobs_to_create == 3


def test_eager_strategy_scale_to_is_max() -> None:
    strategy = ScalingStrategy(strategy="eager")

    decision = decide_for(0.5, 1, max_count=10, strategy=strategy)

    assert decision.scale_to == 10
    assert decision.jobs_to_create == 1


def test_eager_strategy_caps_at_max() -> None:
    strategy = ScalingStrategy(strategy="eager")

    decision = decide_for(50, 1, max_count=10, strategy=strategy)

    assert decision.effective_max_scale == 10
    assert decision.jobs_to_create == 10


def test_eager_strategy_subtracts_running_and_pending() -> None:
    strategy = ScalingStrategy(strategy="eager")

    decision = decide_for(50, 1, max_count=10, running=4, pending=2, strategy=strategy)

    assert decision.effective_max_scale == 4
    assert decision.jobs_to_create == 4


def test_eager_strategy_clamps_negative() -> None:
    strategy = ScalingStrategy(strategy="eager")

    decision = decide_for(50, 1, max_count=5, running=4, pending=2, strategy=strategy)

    assert decision.effective_max_scale == 0
    assert decision.jobs_to_create == 0
