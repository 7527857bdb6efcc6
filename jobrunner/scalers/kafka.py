"""The `kafka` trigger: consumer-group lag, computed as KEDA's Kafka scaler computes it.

Per poll the scaler sends a constant number of requests, whatever the partition count: one
metadata request for the topic, one OffsetFetch for the group (per coordinator) and one
ListOffsets per partition leader. Admin connections are shared by every trigger that names
the same bootstrap servers and credentials.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import (
    CoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
)

from jobrunner.errors import ScalerError
from jobrunner.logconfig import context
from jobrunner.scalers.base import Measurement, Scaler
from jobrunner.scalers.metadata import MetadataReader, TriggerInput

log = logging.getLogger(__name__)

NO_OFFSET = -1
UNKNOWN_TOPIC = 3
COORDINATOR_RETRIES = 3
COORDINATOR_RETRY_SECONDS = 0.5
# Errors after which a shared admin client is replaced rather than reused.
CONNECTION_ERRORS = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: tuple[str, ...]
    consumer_group: str
    topic: str = ""
    lag_threshold: int = 10
    activation_lag_threshold: int = 0
    offset_reset_policy: str = "latest"
    allow_idle_consumers: bool = False
    exclude_persistent_lag: bool = False
    scale_to_zero_on_invalid_offset: bool = False
    limit_to_partitions_with_lag: bool = False
    partition_limitation: tuple[int, ...] = ()
    timeout_seconds: float = 5.0


def parse_kafka_settings(source: TriggerInput) -> KafkaSettings:
    reader = MetadataReader(source)
    servers = reader.string_list("bootstrapServers", sources="ME", required=True)
    group = reader.string("consumerGroup", sources="ME", required=True)
    topic = reader.string("topic", sources="ME")
    settings = KafkaSettings(
        bootstrap_servers=servers,
        consumer_group=group,
        topic=topic,
        lag_threshold=reader.integer("lagThreshold", default=10, minimum=0, exclusive_minimum=True),
        activation_lag_threshold=reader.integer("activationLagThreshold", default=0, minimum=0),
        offset_reset_policy=reader.enum(
            "offsetResetPolicy", ("latest", "earliest"), default="latest"
        ),
        allow_idle_consumers=reader.boolean("allowIdleConsumers"),
        exclude_persistent_lag=reader.boolean("excludePersistentLag"),
        scale_to_zero_on_invalid_offset=reader.boolean("scaleToZeroOnInvalidOffset"),
        limit_to_partitions_with_lag=reader.boolean("limitToPartitionsWithLag"),
        partition_limitation=_parse_partition_limitation(reader, topic),
    )
    if settings.limit_to_partitions_with_lag:
        if settings.allow_idle_consumers:
            reader.problem("limitToPartitionsWithLag", "cannot be combined with allowIdleConsumers")
        if not topic:
            reader.problem("limitToPartitionsWithLag", "needs a topic")
    reader.check()
    return settings


def _parse_partition_limitation(reader: MetadataReader, topic: str) -> tuple[int, ...]:
    text = reader.string("partitionLimitation")
    if not text or not topic:
        return ()
    partitions: list[int] = []
    for item in (part.strip() for part in text.split(",")):
        bounds = item.split("-")
        try:
            if len(bounds) == 1:
                partitions.append(int(bounds[0]))
            elif len(bounds) == 2:
                partitions.extend(range(int(bounds[0]), int(bounds[1]) + 1))
            else:
                raise ValueError(item)
        except ValueError:
            reader.problem(
                "partitionLimitation", "must list partition numbers or ranges such as 1,2,10-20"
            )
            return ()
    return tuple(sorted(set(partitions)))


# --- lag arithmetic (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class LagResult:
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
    """Sum the lag of every partition in `log_end` and apply the capping rules.

    `previous_committed` is the committed offset seen per partition on the last poll; it is
    updated in place, and only read when excludePersistentLag is set.
    """
    total = total_with_persistent = with_lag = 0
    per_partition: dict[str, int] = {}
    for partition, end in sorted(log_end.items()):
        offset = committed.get(partition, NO_OFFSET)
        lag, raw = _partition_lag(settings, offset, end, partition, previous_committed)
        per_partition[f"{partition.topic}/{partition.partition}"] = lag
        total += lag
        total_with_persistent += raw
        with_lag += lag > 0

    partition_count = len(log_end)
    if not settings.allow_idle_consumers or settings.limit_to_partitions_with_lag:
        upper = with_lag if settings.limit_to_partitions_with_lag else partition_count
        # Integer division, as KEDA does: the result may exceed upper * threshold by less
        # than one threshold.
        if total // settings.lag_threshold > upper:
            total = upper * settings.lag_threshold
    return LagResult(total, total_with_persistent, partition_count, with_lag, per_partition)


def _partition_lag(
    settings: KafkaSettings,
    offset: int,
    end: int,
    partition: TopicPartition,
    previous_committed: dict[TopicPartition, int],
) -> tuple[int, int]:
    """Return (scaling lag, raw lag) of one partition."""
    if offset == NO_OFFSET:
        if settings.scale_to_zero_on_invalid_offset:
            return 0, 0
        if settings.offset_reset_policy == "latest":
            return 1, 1
        return end, end
    raw = max(end - offset, 0)
    if settings.exclude_persistent_lag:
        previous = previous_committed.get(partition)
        previous_committed[partition] = offset
        if previous == offset:
            return 0, raw
    return raw, raw


# --- broker access --------------------------------------------------------------------------


class KafkaAdminPool:
    """One admin client per bootstrap-server set and credentials, shared by every trigger.

    kafka-python's admin client is not documented as thread-safe, so each shared client has a
    lock and calls through it are serialised. A client whose call fails is closed and
    replaced on the next call, so a restarted broker is picked up without a runner restart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[tuple[Any, ...], tuple[KafkaAdminClient, threading.Lock]] = {}

    def call(self, settings: KafkaSettings, action: Any) -> Any:
        key = (settings.bootstrap_servers,)
        client, lock = self._client(key, settings)
        with lock:
            try:
                return action(client)
            except CONNECTION_ERRORS:
                self._discard(key, client)
                raise

    def _client(
        self, key: tuple[Any, ...], settings: KafkaSettings
    ) -> tuple[KafkaAdminClient, threading.Lock]:
        with self._lock:
            entry = self._clients.get(key)
            if entry is None:
                timeout_ms = int(settings.timeout_seconds * 1000)
                client = KafkaAdminClient(
                    bootstrap_servers=list(settings.bootstrap_servers),
                    client_id="jobrunner",
                    bootstrap_timeout_ms=timeout_ms,
                    request_timeout_ms=timeout_ms,
                )
                entry = (client, threading.Lock())
                self._clients[key] = entry
            return entry

    def _discard(self, key: tuple[Any, ...], client: KafkaAdminClient) -> None:
        with self._lock:
            if self._clients.get(key, (None,))[0] is client:
                del self._clients[key]
        try:
            client.close()
        except KafkaError:
            log.debug("closing a failed Kafka admin client raised", exc_info=True)

    def size(self) -> int:
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        with self._lock:
            clients = [client for client, _ in self._clients.values()]
            self._clients.clear()
        for client in clients:
            client.close()


DEFAULT_POOL = KafkaAdminPool()


class KafkaScaler(Scaler):
    trigger_type = "kafka"

    def __init__(self, settings: KafkaSettings, *, pool: KafkaAdminPool = DEFAULT_POOL) -> None:
        self.settings = settings
        self.pool = pool
        self._previous_committed: dict[TopicPartition, int] = {}

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
        try:
            partitions = self.pool.call(self.settings, self._partitions)
            committed = self._committed_offsets(partitions)
            log_end = self.pool.call(
                self.settings, lambda client: _log_end_offsets(client, partitions)
            )
        except KafkaError as error:
            raise ScalerError(
                f"cannot read consumer group lag from Kafka at "
                f"{','.join(self.settings.bootstrap_servers)}: {type(error).__name__}: {error}"
            ) from error
        lag = compute_lag(
            self.settings,
            committed=committed,
            log_end=log_end,
            previous_committed=self._previous_committed,
        )
        return Measurement(
            queue_length=float(lag.total_lag),
            target=float(self.settings.lag_threshold),
            active=lag.total_lag_with_persistent > self.settings.activation_lag_threshold,
            activation_value=float(lag.total_lag_with_persistent),
            details={
                "partitions": lag.partitions,
                "partitionsWithLag": lag.partitions_with_lag,
                "lagWithPersistent": lag.total_lag_with_persistent,
            },
        )

    def _partitions(self, client: KafkaAdminClient) -> list[TopicPartition]:
        if self.settings.topic:
            topics = [self.settings.topic]
        else:
            offsets = client.list_group_offsets({self.settings.consumer_group: None})
            topics = sorted({tp.topic for tp in offsets.get(self.settings.consumer_group, {})})
            if not topics:
                raise ScalerError(
                    f"consumer group {self.settings.consumer_group} has no committed offsets, "
                    "so no topic to measure; set the trigger's topic"
                )
        partitions = []
        for description in client.describe_topics(topics):
            if description["error_code"] == UNKNOWN_TOPIC:
                raise ScalerError(
                    f"topic {description['name']} does not exist in Kafka at "
                    f"{','.join(self.settings.bootstrap_servers)}"
                )
            allowed = set(self.settings.partition_limitation)
            for item in description["partitions"]:
                if not allowed or item["partition_index"] in allowed:
                    partitions.append(TopicPartition(description["name"], item["partition_index"]))
        if not partitions:
            raise ScalerError(
                f"no partitions left to measure in topics {', '.join(topics)} "
                "after partitionLimitation"
            )
        return partitions

    def _committed_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        group = self.settings.consumer_group
        # A new broker creates its offsets topic on the first group request, and answers
        # CoordinatorNotAvailable until it exists; a few quick retries hide that.
        for attempt in range(COORDINATOR_RETRIES):
            try:
                response = self.pool.call(
                    self.settings, lambda client: client.list_group_offsets({group: partitions})
                )
                break
            except CoordinatorNotAvailableError:
                if attempt == COORDINATOR_RETRIES - 1:
                    raise
                log.debug("group coordinator not available yet", extra=context(trigger=group))
                time.sleep(COORDINATOR_RETRY_SECONDS)
        return {tp: meta.offset for tp, meta in response.get(group, {}).items()}

    def close(self) -> None:
        self._previous_committed.clear()


def _log_end_offsets(
    client: KafkaAdminClient, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    offsets = client.list_partition_offsets({tp: OffsetSpec.LATEST for tp in partitions})
    return {tp: value.offset for tp, value in offsets.items()}
