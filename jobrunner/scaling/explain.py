"""Step-by-step explanation and JSON report of one ScaledJob decision, for `jobrunner plan`.

The numbers come from `decide` and the helpers it uses. This module only arranges them into
the formulas of KEDA's ScaledJob executor with the actual values substituted, so that a user
can see why a poll creates N Jobs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobrunner.resources.scaledjob import ScalingStrategy
from jobrunner.scaling.scaledjob import (
    Combined,
    Decision,
    TriggerValue,
    combine_triggers,
    trigger_max_value,
)

CALCULATIONS = ("max", "min", "avg", "sum")


@dataclass(frozen=True)
class TriggerReport:
    """One trigger on one poll.

    `queue_length` is None when the trigger reported nothing, as when its scaler fails, and
    such a trigger is left out of the decision. `target` and `activation_threshold` come from the
    trigger's settings (for Kafka, lagThreshold and activationLagThreshold).
    """

    index: int
    name: str
    type: str
    target: float
    activation_threshold: float
    queue_length: float | None

    @property
    def label(self) -> str:
        return f"trigger {self.index} ({self.name})" if self.name else f"trigger {self.index}"

    @property
    def value(self) -> TriggerValue | None:
        """The value `decide` takes, active when the queue length exceeds the threshold.

        NOTE: a Kafka poll compares its uncapped lag, which can exceed the capped queue
        length, with the threshold. Here the given queue length stands in for both.
        """
        if self.queue_length is None:
            return None
        return TriggerValue(
            label=self.name or str(self.index),
            queue_length=self.queue_length,
            target=self.target,
            active=self.queue_length > self.activation_threshold,
        )


def trigger_values(triggers: Sequence[TriggerReport]) -> list[TriggerValue]:
    """Return the values of the triggers that reported one, in trigger order."""
    return [value for value in (t.value for t in triggers) if value is not None]


def format_number(value: float) -> str:
    """Format a whole number without a decimal point and others with at most 4 decimals.

    A value too small for 4 decimals gets 4 significant digits instead, so it never reads 0.
    """
    if value == int(value):
        return str(int(value))
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    if float(text) == 0:
        text = f"{value:.4g}"
    return text


# --- text -----------------------------------------------------------------------------------


def explain_decision(
    decision: Decision,
    triggers: Sequence[TriggerReport],
    *,
    strategy: ScalingStrategy,
    min_count: int | None,
    max_count: int | None,
) -> list[str]:
    """Explain `decision`, made from `triggers` and the spec's bounds, one step per line.

    `min_count` and `max_count` are the spec's minReplicaCount and maxReplicaCount, None
    when unset. `strategy` is the spec's scalingStrategy.
    """
    lines = [
        _bounds_line(decision, min_count, max_count),
        f"unfinished Jobs: running {decision.running} (pending ones included), "
        f"pending {decision.pending}",
    ]
    lines.extend(_trigger_line(report, decision.max_replicas) for report in triggers)
    calculation = strategy.multiple_scalers_calculation
    if calculation not in CALCULATIONS:
        calculation = "max"
    combined = combine_triggers(
        trigger_values(triggers), calculation=calculation, max_replicas=decision.max_replicas
    )
    lines.append(_combination_line(calculation, triggers, combined, decision.max_replicas))
    lines.append(_activity_line(decision, combined))
    lines.append(
        f"maxValue = min({format_number(combined.max_value)}, maxReplicaCount "
        f"{decision.max_replicas}) = {format_number(decision.max_value)}"
    )
    lines.append(
        f"scaleTo = ceil(queueLength {format_number(decision.queue_length)}) = "
        f"{math.ceil(decision.queue_length)}"
    )
    lines.append(
        f"maxScale = ceil(maxValue {format_number(decision.max_value)}) = {decision.max_scale}"
    )
    lines.extend(_strategy_lines(decision, strategy))
    lines.append(_result_line(decision))
    return lines


def _bounds_line(decision: Decision, min_count: int | None, max_count: int | None) -> str:
    low, high = decision.min_replicas, decision.max_replicas
    if max_count is None:
        reason = "maxReplicaCount is unset, so the default 100 applies"
        if min_count is not None:
            reason += " and minReplicaCount is not subtracted"
    elif min_count is None:
        reason = "minReplicaCount is unset"
    elif min_count > max_count:
        reason = f"minReplicaCount {min_count} > maxReplicaCount {max_count}, so both are {high}"
    else:
        reason = f"maxReplicaCount {max_count} - minReplicaCount {min_count}"
    return f"effective bounds: minReplicaCount {low}, maxReplicaCount {high} ({reason})"


def _trigger_line(report: TriggerReport, max_replicas: int) -> str:
    value = report.value
    prefix = f"{report.label}, {report.type}"
    if value is None:
        return f"{prefix}: reported nothing, as when its scaler fails, so it is left out"
    queue, target = format_number(value.queue_length), format_number(value.target)
    maximum = format_number(trigger_max_value(value, max_replicas))
    if value.target == 0:
        arithmetic = f"queueLength {queue}, target 0, so maxValue 0"
    else:
        ratio = format_number(value.queue_length / value.target)
        arithmetic = (
            f"maxValue = min(queueLength {queue} / target {target} = {ratio}, "
            f"maxReplicaCount {max_replicas}) = {maximum}"
        )
    threshold = format_number(report.activation_threshold)
    if value.active:
        activity = f"active because {queue} > activation threshold {threshold}"
    else:
        activity = f"not active because {queue} <= activation threshold {threshold}, left out"
    return f"{prefix}: {arithmetic}; {activity}"


def _combination_line(
    calculation: str,
    triggers: Sequence[TriggerReport],
    combined: Combined,
    max_replicas: int,
) -> str:
    active = [(t, v) for t in triggers if (v := t.value) is not None and v.active]
    head = f"multipleScalersCalculation {calculation}"
    result = (
        f"queueLength {format_number(combined.queue_length)}, "
        f"maxValue {format_number(combined.max_value)}"
    )
    if not active:
        return f"{head}: no trigger is active, so {result}"
    if calculation in ("avg", "sum"):
        queues = " + ".join(format_number(v.queue_length) for _, v in active)
        maxima = " + ".join(format_number(trigger_max_value(v, max_replicas)) for _, v in active)
        if calculation == "avg":
            queues, maxima = f"({queues}) / {len(active)}", f"({maxima}) / {len(active)}"
        return (
            f"{head} over {len(active)} active triggers: "
            f"queueLength = {queues} = {format_number(combined.queue_length)}, "
            f"maxValue = {maxima} = {format_number(combined.max_value)}"
        )
    if not combined.active:
        return f"{head}: no active trigger reports a queueLength above 0, so {result}"
    # Name the trigger whose values were picked: the first active one that has them.
    picked = next(
        report
        for report, value in active
        if value.queue_length == combined.queue_length
        and trigger_max_value(value, max_replicas) == combined.max_value
    )
    if calculation == "min":
        rule = "the smallest queueLength of the active triggers, where a pick of 0 gives way"
    else:
        rule = "the largest queueLength of the active triggers"
    return f"{head}: {picked.label} has {rule}, so {result}"


def _activity_line(decision: Decision, combined: Combined) -> str:
    if not decision.active:
        return "the ScaledJob is not active, so no Jobs are created"
    if not combined.active:
        return (
            f"no trigger makes the ScaledJob active, but minReplicaCount "
            f"{decision.min_replicas} > 0 keeps it active"
        )
    return "the ScaledJob is active"


def _strategy_lines(decision: Decision, strategy: ScalingStrategy) -> list[str]:
    running, pending = decision.running, decision.pending
    low, high = decision.min_replicas, decision.max_replicas
    max_scale, result = decision.max_scale, decision.strategy_effective_max_scale
    scale_to = math.ceil(decision.queue_length)
    if decision.strategy == "minReplicaCount":
        return [
            f"running {running} < minReplicaCount {low}, so effectiveMaxScale = scaleTo = "
            f"{low} - {running} = {result} and the strategy is not used"
        ]

    lines = []
    if strategy.strategy == "custom" and decision.strategy != "custom":
        lines.append(
            "strategy custom needs customScalingRunningJobPercentage to be a number, "
            "so the default strategy is used"
        )
    others = running - low
    lines.append(f"R = running - minReplicaCount = {running} - {low} = {others}")
    name = f"strategy {decision.strategy}"
    if decision.strategy == "custom":
        deduction = strategy.custom_scaling_queue_length_deduction or 0
        percentage = format_number(float(strategy.custom_scaling_running_job_percentage))
        lines.append(
            f"{name}: effectiveMaxScale = min(maxScale - deduction - trunc(R * percentage), "
            f"maxReplicaCount) = min({max_scale} - {deduction} - trunc({others} * {percentage}), "
            f"{high}) = {result}"
        )
    elif decision.strategy == "accurate":
        total = max_scale + others - pending
        if total > high:
            branch = f"> maxReplicaCount {high}, so effectiveMaxScale = maxReplicaCount - R"
            arithmetic = f"{high} - {others}"
        else:
            branch = f"<= maxReplicaCount {high}, so effectiveMaxScale = maxScale - pending"
            arithmetic = f"{max_scale} - {pending}"
        lines.append(
            f"{name}: maxScale + R - pending = {max_scale} + {others} - {pending} = {total} "
            f"{branch} = {arithmetic} = {result}"
        )
    elif decision.strategy == "eager":
        lines.append(
            f"{name}: effectiveMaxScale = min(maxReplicaCount - R - pending, maxScale) = "
            f"min({high} - {others} - {pending}, {max_scale}) = {result}"
        )
    else:
        lines.append(
            f"{name}: effectiveMaxScale = maxScale - R = {max_scale} - {others} = {result}"
        )

    if decision.strategy == "eager":
        lines.append(f"scaleTo becomes maxReplicaCount {decision.scale_to}")
    else:
        lines.append(f"scaleTo stays {scale_to}")
    if result < 0:
        lines.append(f"effectiveMaxScale {result} is negative, so it becomes 0")
    return lines


def _result_line(decision: Decision) -> str:
    jobs = decision.jobs_to_create
    if not decision.active:
        return f"jobsToCreate = {jobs} because the ScaledJob is not active"
    if decision.effective_max_scale <= 0:
        return f"jobsToCreate = {jobs} because effectiveMaxScale is 0"
    return (
        f"jobsToCreate = min(scaleTo {decision.scale_to}, effectiveMaxScale "
        f"{decision.effective_max_scale}) = {jobs}"
    )


# --- JSON -----------------------------------------------------------------------------------


def decision_report(
    decision: Decision, triggers: Sequence[TriggerReport], *, strategy: ScalingStrategy
) -> dict[str, Any]:
    """The decision and its inputs as a JSON-ready dict with KEDA's camelCase names.

    `minReplicaCount` and `maxReplicaCount` are the effective bounds. `strategy` is the
    spec's, and `appliedStrategy` is the one that decided: `default` for a custom strategy
    without a valid percentage, `minReplicaCount` while fewer Jobs than that run.
    """
    return {
        "triggers": [_trigger_report(report, decision.max_replicas) for report in triggers],
        "multipleScalersCalculation": strategy.multiple_scalers_calculation,
        "strategy": strategy.strategy,
        "appliedStrategy": decision.strategy,
        "active": decision.active,
        "queueLength": decision.queue_length,
        "maxValue": decision.max_value,
        "maxScale": decision.max_scale,
        "scaleTo": decision.scale_to,
        "running": decision.running,
        "pending": decision.pending,
        "minReplicaCount": decision.min_replicas,
        "maxReplicaCount": decision.max_replicas,
        "effectiveMaxScale": decision.effective_max_scale,
        "jobsToCreate": decision.jobs_to_create,
    }


def _trigger_report(report: TriggerReport, max_replicas: int) -> dict[str, Any]:
    value = report.value
    return {
        "index": report.index,
        "name": report.name,
        "type": report.type,
        "reported": value is not None,
        "queueLength": report.queue_length,
        "target": report.target,
        "activationThreshold": report.activation_threshold,
        "active": value is not None and value.active,
        "maxValue": None if value is None else trigger_max_value(value, max_replicas),
    }
