"""Scalers, one module per trigger type, and the registry that maps a type to its scaler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobrunner.errors import FieldProblem, InvalidSpecError
from jobrunner.scalers.base import Measurement, Scaler
from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.metadata import TriggerInput
from jobrunner.scalers.pulsar import PulsarScaler

# Keep sorted by trigger type.
REGISTRY: dict[str, type[Scaler]] = {
    KafkaScaler.trigger_type: KafkaScaler,
    PulsarScaler.trigger_type: PulsarScaler,
}


def scaler_class(trigger_type: str, *, subject: str, path: str) -> type[Scaler]:
    """Return the scaler class of a trigger type.

    Raise InvalidSpecError, listing the known types, for an unknown one.
    """
    try:
        return REGISTRY[trigger_type]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise InvalidSpecError(
            subject, [FieldProblem(f"{path}.type", f"unknown trigger type; known types: {known}")]
        ) from None


@dataclass(frozen=True)
class Thresholds:
    """A trigger's scaling thresholds, in the unit of its queue length.

    `target` is the queue length one Job handles, the divisor of the queue length.
    `activation` is the value the trigger must exceed to be active.
    """

    target: float
    activation: float


def _kafka_thresholds(settings: Any) -> Thresholds:
    return Thresholds(
        target=float(settings.lag_threshold), activation=float(settings.activation_lag_threshold)
    )


def _pulsar_thresholds(settings: Any) -> Thresholds:
    return Thresholds(
        target=float(settings.msg_backlog_threshold),
        activation=float(settings.activation_msg_backlog_threshold),
    )


# Keep sorted by trigger type, with one entry per type in REGISTRY.
THRESHOLDS: dict[str, Callable[[Any], Thresholds]] = {
    KafkaScaler.trigger_type: _kafka_thresholds,
    PulsarScaler.trigger_type: _pulsar_thresholds,
}


def trigger_thresholds(trigger_type: str, settings: Any) -> Thresholds:
    """Return the target and activation threshold that parsed settings of `trigger_type` state.

    `settings` is what the type's `parse_settings` returned. Raise KeyError for a type
    without an entry in THRESHOLDS.
    """
    return THRESHOLDS[trigger_type](settings)


__all__ = [
    "REGISTRY",
    "THRESHOLDS",
    "Measurement",
    "Scaler",
    "Thresholds",
    "TriggerInput",
    "scaler_class",
    "trigger_thresholds",
]
