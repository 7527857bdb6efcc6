"""Scalers, one module per trigger type, and the registry that maps a type to its scaler."""

from __future__ import annotations

from jobrunner.errors import FieldProblem, InvalidSpecError
from jobrunner.scalers.base import Measurement, Scaler
from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.metadata import TriggerInput

# Keep sorted by trigger type.
REGISTRY: dict[str, type[Scaler]] = {
    KafkaScaler.trigger_type: KafkaScaler,
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


__all__ = ["REGISTRY", "Measurement", "Scaler", "TriggerInput", "scaler_class"]
