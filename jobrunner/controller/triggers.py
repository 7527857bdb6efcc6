"""The triggers of one ScaledJob: their scalers, built from checked metadata, and one reading."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobrunner.errors import FieldProblem, InvalidSpecError, ScalerError
from jobrunner.resources.scaledjob import ScaledJob, Trigger
from jobrunner.scalers import Scaler, TriggerInput, scaler_class
from jobrunner.scaling.scaledjob import TriggerValue

log = logging.getLogger(__name__)


@dataclass
class TriggerScaler:
    trigger: Trigger
    scaler: Scaler
    last_error: str | None = None


def build_scalers(scaled_job: ScaledJob) -> list[TriggerScaler]:
    """Check every trigger's metadata and build its scaler.

    Raise InvalidSpecError listing the problems of every trigger at once.
    """
    subject = f"ScaledJob {scaled_job.key}"
    problems: list[FieldProblem] = []
    built: list[TriggerScaler] = []
    env = container_env(scaled_job)
    for trigger in scaled_job.triggers:
        path = f"spec.triggers[{trigger.index}]"
        try:
            cls = scaler_class(trigger.type, subject=subject, path=path)
            source = TriggerInput(
                subject=subject, path=path, metadata=trigger.metadata, resolved_env=env
            )
            built.append(TriggerScaler(trigger, cls.from_settings(cls.parse_settings(source))))
        except InvalidSpecError as error:
            problems.extend(error.problems)
    if problems:
        for item in built:
            item.scaler.close()
        raise InvalidSpecError(subject, problems)
    return built


def container_env(scaled_job: ScaledJob) -> dict[str, str]:
    """Literal `env` values of the target container, for `...FromEnv` parameters.

    The target is the container named by envSourceContainerName, else the first one.
    NOTE: values from Secrets, ConfigMaps and `envFrom` are not resolved here yet.
    """
    pod_spec = (scaled_job.job_template.get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    wanted = scaled_job.env_source_container_name
    chosen = next((c for c in containers if c.get("name") == wanted), None) if wanted else None
    if chosen is None and containers:
        chosen = containers[0]
    env = (chosen or {}).get("env") or []
    return {str(e["name"]): str(e["value"]) for e in env if "name" in e and "value" in e}


@dataclass(frozen=True)
class Reading:
    """The trigger values of one poll, and the messages of the triggers that failed."""

    values: list[TriggerValue] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def measure_triggers(scalers: Sequence[TriggerScaler], log_context: dict[str, Any]) -> Reading:
    """Measure every trigger; a failing trigger is logged and left out of the values."""
    reading = Reading()
    for item in scalers:
        trigger_context = {**log_context, "trigger": item.trigger.label}
        try:
            measurement = item.scaler.measure()
        except ScalerError as error:
            message = str(error)
            # Log a failure when it starts or changes; the same failure on every poll
            # would flood the log, so repeats go to DEBUG.
            level = logging.WARNING if message != item.last_error else logging.DEBUG
            log.log(
                level,
                "trigger failed, no Jobs from it on this poll: %s",
                message,
                extra=trigger_context,
            )
            item.last_error = message
            reading.errors.append(f"trigger {item.trigger.label}: {message}")
            continue
        if item.last_error is not None:
            log.info("trigger recovered", extra=trigger_context)
            item.last_error = None
        reading.values.append(
            TriggerValue(
                item.trigger.label, measurement.queue_length, measurement.target, measurement.active
            )
        )
    return reading
