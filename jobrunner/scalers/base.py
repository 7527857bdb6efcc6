"""The contract every scaler implements.

A scaler is built from one trigger's settings, measures its event source once per poll, and
reports a queue length, a target (the queue length one Job handles) and whether the trigger
is active. Scalers never touch Kubernetes or the ledger: the controller feeds them resolved
metadata and acts on what they measure.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jobrunner.scalers.metadata import TriggerInput


@dataclass(frozen=True)
class Measurement:
    """One trigger's reading on one poll.

    `activation_value` is what is compared with the activation threshold; for Kafka it is the
    uncapped lag, which can differ from `queue_length`. `details` holds per-source numbers
    (per-partition lag, for example) for logs and the ledger, and never credentials.
    """

    queue_length: float
    target: float
    active: bool
    activation_value: float
    details: Mapping[str, Any] = field(default_factory=dict)


class Scaler(ABC):
    """Measures one trigger's event source. Subclasses register in `jobrunner.scalers`."""

    trigger_type: ClassVar[str]

    @classmethod
    @abstractmethod
    def parse_settings(cls, source: TriggerInput) -> Any:
        """Parse and check the trigger's parameters.

        Raise InvalidSpecError listing every invalid parameter. Must not do I/O: `jobrunner
        validate` calls it with no cluster and no broker.
        """

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Any) -> Scaler:
        """Build a scaler from settings that `parse_settings` returned."""

    @abstractmethod
    def measure(self) -> Measurement:
        """Read the event source once; raise ScalerError when it cannot be read."""

    @abstractmethod
    def describe_source(self) -> str:
        """Name the event source for messages (broker addresses, topic), never credentials."""

    def close(self) -> None:  # noqa: B027 - most scalers hold nothing of their own
        """Release what this scaler holds; shared connections stay open for other triggers."""
