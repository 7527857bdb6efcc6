"""How many Jobs one poll of a ScaledJob creates: pure functions of numbers, no I/O.

The arithmetic follows KEDA's ScaledJob executor (kedacore/keda, pkg/scaling/executor):
per-trigger values are combined by `multipleScalersCalculation`, capped by the effective
maximum, and passed with the running and pending Job counts to the scaling strategy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jobrunner.resources.scaledjob import DEFAULT_MAX_REPLICA_COUNT, ScalingStrategy

# (maxScale, running, pending, maxReplicas, scaleTo) -> (effectiveMaxScale, scaleTo)
StrategyFunction = Callable[[int, int, int, int, int], tuple[int, int]]


def effective_min_replicas(min_count: int | None, max_count: int | None) -> int:
    """Return the lower bound: `min`, or `max` when `min > max`, or 0 when `min` is unset."""
    if min_count is None:
        return 0
    if max_count is not None and min_count > max_count:
        return max_count
    return min_count


def effective_max_replicas(min_count: int | None, max_count: int | None) -> int:
    """Return the bound the strategies use: `max - min`, `max` when `min > max`, or 100.

    When `max` is unset the default of 100 is returned without subtracting `min`, as KEDA does.
    """
    if max_count is None:
        return DEFAULT_MAX_REPLICA_COUNT
    if min_count is None:
        return max_count
    if min_count > max_count:
        return max_count
    return max_count - min_count


@dataclass(frozen=True)
class TriggerValue:
    """One trigger's report on this poll: its queue length, target and activity."""

    label: str
    queue_length: float
    target: float
    active: bool


@dataclass(frozen=True)
class Combined:
    active: bool
    queue_length: float
    max_value: float


def trigger_max_value(value: TriggerValue, max_replicas: int) -> float:
    """`min(queueLength / target, max)`, or 0 for a target of 0."""
    if value.target == 0:
        return 0.0
    return min(value.queue_length / value.target, float(max_replicas))


def combine_triggers(
    values: Sequence[TriggerValue], *, calculation: str, max_replicas: int
) -> Combined:
    """Combine the active triggers' values by `max` (the default), `min`, `avg` or `sum`."""
    active = [v for v in values if v.active]
    pairs = [(v.queue_length, trigger_max_value(v, max_replicas)) for v in active]
    if calculation in ("avg", "sum") and pairs:
        queue = sum(q for q, _ in pairs)
        maximum = sum(m for _, m in pairs)
        if calculation == "avg":
            queue, maximum = queue / len(pairs), maximum / len(pairs)
        return Combined(True, queue, maximum)
    if calculation == "min" and pairs:
        pick = pairs[0]
        for candidate in pairs[1:]:
            if pick[0] == 0 or candidate[0] < pick[0]:
                pick = candidate
        return Combined(True, pick[0], pick[1])
    # max: only a strictly larger queue length replaces the pick, which starts at zero, so a
    # trigger that is active but reports 0 never makes the ScaledJob active on its own.
    best: tuple[float, float] | None = None
    for queue, maximum in pairs:
        if queue > (best[0] if best else 0):
            best = (queue, maximum)
    if best is None:
        return Combined(False, 0.0, 0.0)
    return Combined(True, best[0], best[1])


@dataclass(frozen=True)
class Decision:
    """The outcome of one poll, with every intermediate value so it can be explained."""

    active: bool
    queue_length: float
    max_value: float
    max_scale: int
    scale_to: int
    running: int
    pending: int
    min_replicas: int
    max_replicas: int
    effective_max_scale: int
    jobs_to_create: int
    strategy: str
    # effectiveMaxScale as the strategy returned it, before a negative value becomes 0.
    strategy_effective_max_scale: int


def decide(
    values: Sequence[TriggerValue],
    *,
    running: int,
    pending: int,
    min_count: int | None,
    max_count: int | None,
    strategy: ScalingStrategy,
) -> Decision:
    """Decide how many Jobs to create from the trigger values and the unfinished Job counts.

    `running` counts every unfinished Job, pending ones included; `pending` counts those of
    them whose pods have not started.
    """
    min_replicas = effective_min_replicas(min_count, max_count)
    max_replicas = effective_max_replicas(min_count, max_count)
    combined = combine_triggers(
        values, calculation=strategy.multiple_scalers_calculation, max_replicas=max_replicas
    )
    active = combined.active or min_replicas > 0
    max_value = min(combined.max_value, float(max_replicas))
    scale_to = math.ceil(combined.queue_length)
    max_scale = math.ceil(max_value)

    if running < min_replicas:
        effective_max = scale_to = min_replicas - running
        name = "minReplicaCount"
    else:
        name, apply = _strategy(strategy)
        effective_max, scale_to = apply(
            max_scale, running - min_replicas, pending, max_replicas, scale_to
        )
    strategy_effective_max = effective_max
    effective_max = max(effective_max, 0)
    jobs = min(scale_to, effective_max) if active and effective_max > 0 else 0
    return Decision(
        active=active,
        queue_length=combined.queue_length,
        max_value=max_value,
        max_scale=max_scale,
        scale_to=scale_to,
        running=running,
        pending=pending,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        effective_max_scale=effective_max,
        jobs_to_create=max(jobs, 0),
        strategy=name,
        strategy_effective_max_scale=strategy_effective_max,
    )


def default_strategy(
    max_scale: int, running: int, pending: int, max_replicas: int, scale_to: int
) -> tuple[int, int]:
    return max_scale - running, scale_to


def accurate_strategy(
    max_scale: int, running: int, pending: int, max_replicas: int, scale_to: int
) -> tuple[int, int]:
    if max_scale + running - pending > max_replicas:
        return max_replicas - running, scale_to
    return max_scale - pending, scale_to


def eager_strategy(
    max_scale: int, running: int, pending: int, max_replicas: int, scale_to: int
) -> tuple[int, int]:
    return min(max_replicas - running - pending, max_scale), max_replicas


def _strategy(strategy: ScalingStrategy) -> tuple[str, StrategyFunction]:
    """Pick the strategy function; `custom` falls back to `default` without a valid percentage."""
    if strategy.strategy == "custom":
        try:
            percentage = float(strategy.custom_scaling_running_job_percentage)
        except ValueError:
            return "default", default_strategy
        if not math.isfinite(percentage):
            return "default", default_strategy
        deduction = strategy.custom_scaling_queue_length_deduction or 0

        def custom(
            max_scale: int, running: int, pending: int, max_replicas: int, scale_to: int
        ) -> tuple[int, int]:
            return min(max_scale - deduction - int(running * percentage), max_replicas), scale_to

        return "custom", custom
    if strategy.strategy == "accurate":
        return "accurate", accurate_strategy
    if strategy.strategy == "eager":
        return "eager", eager_strategy
    return "default", default_strategy
