"""The `kafka` trigger: consumer-group lag, computed as KEDA's Kafka scaler computes it.

Per poll the scaler sends a fixed number of requests, whatever the partition count. With a
topic: one Metadata request to list its partitions, one OffsetFetch for the group, and one
Metadata plus one ListOffsets per partition leader to read the log-end offsets. Without a
topic, one OffsetFetch for every committed offset of the group comes first and replaces the
second OffsetFetch. The first poll also sends a FindCoordinator request.

Settings live in `kafka_settings`, and the shared admin clients in `kafka_client`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.admin import OffsetSpec
from kafka.errors import (
    CoordinatorNotAvailableError,
    KafkaError,
    for_code,
)

from jobrunner.errors import ScalerError
from jobrunner.scalers.base import Measurement, Scaler
from jobrunner.scalers.kafka_client import (
    DEFAULT_POOL,
    KafkaAdminPool,
    describe_kafka_error,
)
from jobrunner.scalers.kafka_settings import (
    KafkaSettings,
    parse_kafka_settings,
)
from jobrunner.scalers.metadata import TriggerInput

log = logging.getLogger(__name__)


NO_OFFSET = -1
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_RETRIES = 3
COORDINATOR_RETRY_SECONDS = 0.5


# --- lag arithmetic (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class LagResult:
    """One poll's lag: `total_lag` drives scaling, `total_lag_with_persistent` activation."""

    total_lag: int
    total_lag_with_persistent: int
    partitions: int
    partitions_with_lag: int
    per_partition: Mapping[str, int] = field(default_factory=dict)


def compute_lag(
    settings: KafkaSettings,
    *,
    committed: Mapping[TopicPartition, int],
    log_end: Mapping[TopicPartition, int],
    previous_committed: dict[TopicPartition, int],
) -> LagResult:
    """Sum the lag of every partition in `log_end` and apply KEDA's capping rules.

    `committed` must contain an offset, or NO_OFFSET, for every partition of `log_end`.
    A missing one raises ScalerError, as KEDA fails on a missing offset block.
    `previous_committed` is the committed offset seen per partition on earlier polls. It
    is updated in place, and only used when excludePersistentLag is set.
    """
    total = total_with_persistent = with_lag = 0
    per_partition: dict[str, int] = {}
    for partition, end in sorted(log_end.items()):
        if partition not in committed:
            raise ScalerError(
                f"the committed offsets of consumer group {settings.consumer_group} have no "
                f"entry for partition {partition.partition} of topic {partition.topic}"
            )
        lag, raw = _partition_lag(
            settings, committed[partition], end, partition, previous_committed
        )
        per_partition[f"{partition.topic}/{partition.partition}"] = lag
        total += lag
        total_with_persistent += raw
        with_lag += lag > 0

    partition_count = len(log_end)
    total = _cap_total_lag(
        settings, total, partitions=partition_count, partitions_with_lag=with_lag
    )
    return LagResult(total, total_with_persistent, partition_count, with_lag, per_partition)


def _partition_lag(
    settings: KafkaSettings,
    offset: int,
    end: int,
    partition: TopicPartition,
    previous_committed: dict[TopicPartition, int],
) -> tuple[int, int]:
    """Return (scaling lag, lag with persistent) of one partition.

    A committed offset past the log end gives a negative lag, as in KEDA. Only the
    reported metric clamps the total at 0.
    """
    if offset == NO_OFFSET:
        if settings.offset_reset_policy == "latest":
            # KEDA counts 1 so that a consumer starts and commits an offset.
            lag = 0 if settings.scale_to_zero_on_invalid_offset else 1
            return lag, lag
        lag = 0 if settings.scale_to_zero_on_invalid_offset else end
        return lag, lag
    raw = end - offset
    if settings.exclude_persistent_lag:
        previous = previous_committed.get(partition)
        previous_committed[partition] = offset
        if previous == offset:
            return 0, raw
    return raw, raw


def _cap_total_lag(
    settings: KafkaSettings, total: int, *, partitions: int, partitions_with_lag: int
) -> int:
    """Keep the lag from asking for more consumers than partitions, as KEDA does."""
    limit = settings.limit_to_partitions_with_lag
    even = settings.ensure_even_distribution_of_partitions
    if settings.allow_idle_consumers and not (limit or even):
        return total
    threshold = settings.lag_threshold
    if even:
        total = even_distribution_factor(total, partitions, threshold) * threshold
    upper = partitions_with_lag if limit else partitions
    # Go's division truncates toward zero, so the capped lag may exceed upper * threshold
    # by less than one threshold (3 partitions, threshold 10, lag 35 stays 35).
    quotient = abs(total) // threshold * (1 if total >= 0 else -1)
    if quotient > upper:
        total = upper * threshold
    return total


def even_distribution_factor(total_lag: int, partitions: int, threshold: int) -> int:
    """Return the smallest divisor `f` of `partitions` with `f * threshold >= total_lag`.

    Return `partitions` itself when no divisor qualifies. Zero lag gives 1, so KEDA reports
    one threshold of lag, but the trigger stays inactive because activation uses the raw lag.
    """
    for factor in range(1, partitions + 1):
        if partitions % factor == 0 and factor * threshold >= total_lag:
            return factor
    return partitions


# --- the scaler -----------------------------------------------------------------------------


Offsets = dict[TopicPartition, int]


class KafkaScaler(Scaler):
    trigger_type = "kafka"

    def __init__(self, settings: KafkaSettings, *, pool: KafkaAdminPool = DEFAULT_POOL) -> None:
        self.settings = settings
        self.pool = pool
        # The committed offsets of the last poll, for excludePersistentLag.
        self._previous_committed: Offsets = {}

    @classmethod
    def parse_settings(cls, source: TriggerInput) -> KafkaSettings:
        return parse_kafka_settings(source)

    @classmethod
    def from_settings(cls, settings: Any) -> KafkaScaler:
        return cls(settings)

    def describe_source(self) -> str:
        topic = self.settings.topic or "(every topic of the group)"
        return f"Kafka {','.join(self.settings.bootstrap_servers)} topic {topic}"

    def measure(self) -> Measurement:
        settings = self.settings
        try:
            offsets = self.pool.call(settings, self._read_offsets)
        except KafkaError as error:
            reason = describe_kafka_error(error, settings.auth)
            raise ScalerError(
                f"cannot read the lag of consumer group {settings.consumer_group} from Kafka "
                f"at {','.join(settings.bootstrap_servers)}: {reason}"
            ) from None
        committed, log_end = offsets
        lag = compute_lag(
            settings,
            committed=committed,
            log_end=log_end,
            previous_committed=self._previous_committed,
        )
        log.debug(
            "consumer group %s: lag %d, with persistent lag %d, over %d partitions",
            settings.consumer_group,
            lag.total_lag,
            lag.total_lag_with_persistent,
            lag.partitions,
        )
        return Measurement(
            # KEDA reports a negative metric as 0.
            queue_length=float(max(lag.total_lag, 0)),
            target=float(settings.lag_threshold),
            active=lag.total_lag_with_persistent > settings.activation_lag_threshold,
            activation_value=float(lag.total_lag_with_persistent),
            details={
                "partitions": lag.partitions,
                "partitionsWithLag": lag.partitions_with_lag,
                "lagWithPersistent": lag.total_lag_with_persistent,
            },
        )

    def _read_offsets(self, client: Any) -> tuple[Offsets, Offsets]:
        """Read the committed and the log-end offset of every partition to measure."""
        group_offsets: Offsets | None = None
        if self.settings.topic:
            topics = [self.settings.topic]
        else:
            group_offsets = self._committed_offsets(client, None)
            topics = sorted({partition.topic for partition in group_offsets})
        if not topics:
            # NOTE: KEDA passes the empty topic list on to DescribeTopics. This scaler
            # reports zero lag over zero partitions for a group with no committed offsets.
            return {}, {}

        partitions = self._partitions(client, topics)
        if group_offsets is None:
            committed = self._committed_offsets(client, partitions)
        else:
            # The group-wide OffsetFetch lists only partitions with a committed offset, so
            # it replaces KEDA's second OffsetFetch of every partition.
            committed = {tp: group_offsets.get(tp, NO_OFFSET) for tp in partitions}
        log_end = _log_end_offsets(client, partitions)
        return committed, log_end

    def _partitions(self, client: Any, topics: list[str]) -> list[TopicPartition]:
        servers = ",".join(self.settings.bootstrap_servers)
        allowed = set(self.settings.partition_limitation)
        partitions: list[TopicPartition] = []
        for description in client.describe_topics(topics):
            name, code = description["name"], description["error_code"]
            if code == UNKNOWN_TOPIC_OR_PARTITION:
                hint = (
                    "check the trigger's topic"
                    if self.settings.topic
                    else "the consumer group has committed offsets for it"
                )
                raise ScalerError(f"topic {name} not found in Kafka at {servers}; {hint}")
            if code:
                raise ScalerError(
                    f"describing topic {name} in Kafka at {servers} failed: "
                    f"{for_code(code).__name__}"
                )
            measured = [
                TopicPartition(name, item["partition_index"])
                for item in description["partitions"]
                if not allowed or item["partition_index"] in allowed
            ]
            if not measured:
                raise ScalerError(
                    f"topic {name} has no partition left to measure after partitionLimitation"
                )
            partitions.extend(measured)
        return partitions

    def _committed_offsets(self, client: Any, partitions: list[TopicPartition] | None) -> Offsets:
        group = self.settings.consumer_group
        # A new broker creates its offsets topic on the first group request and returns
        # CoordinatorNotAvailable until it exists, so a few quick retries hide that.
        for attempt in range(COORDINATOR_RETRIES):
            try:
                response = client.list_group_offsets({group: partitions})
                break
            except CoordinatorNotAvailableError:
                if attempt == COORDINATOR_RETRIES - 1:
                    raise
                log.debug("group coordinator of %s not available yet; retrying", group)
                time.sleep(COORDINATOR_RETRY_SECONDS)
        return {tp: meta.offset for tp, meta in response.get(group, {}).items()}

    def close(self) -> None:
        self._previous_committed.clear()


def _log_end_offsets(client: Any, partitions: Iterable[TopicPartition]) -> Offsets:
    offsets = client.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
    return {tp: value.offset for tp, value in offsets.items()}
