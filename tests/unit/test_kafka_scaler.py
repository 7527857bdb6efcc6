"""Unit tests of KafkaScaler.measure against a fake admin client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError
from kafka.structs import OffsetAndMetadata, OffsetAndTimestamp

from jobrunner.errors import ScalerError
from jobrunner.scalers import kafka
from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.kafka_client import KafkaAdminPool
from jobrunner.scalers.kafka_settings import KafkaSettings

GROUP = "workers"


@dataclass
class FakeAdmin:
    """Returns what KafkaAdminClient would for given topic sizes, offsets and log ends."""

    partitions: Mapping[str, int]
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    log_end: dict[TopicPartition, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    requested_log_end: list[TopicPartition] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        self.calls.append("describe_topics")
        return [
            {
                "name": topic,
                "error_code": 0 if topic in self.partitions else 3,
                "partitions": [
                    {"partition_index": index} for index in range(self.partitions.get(topic, 0))
                ],
            }
            for topic in topics
        ]

    def list_group_offsets(self, specs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("list_group_offsets")
        if self.failures:
            raise self.failures.pop(0)
        ((group, partitions),) = specs.items()
        if partitions is None:
            offsets = self.committed
        else:
            offsets = {tp: self.committed.get(tp, -1) for tp in partitions}
        return {group: {tp: OffsetAndMetadata(value, "", -1) for tp, value in offsets.items()}}

    def list_partition_offsets(self, specs: dict[TopicPartition, Any]) -> dict[Any, Any]:
        self.calls.append("list_partition_offsets")
        self.requested_log_end.extend(specs)
        return {tp: OffsetAndTimestamp(self.log_end.get(tp, 0), -1, None) for tp in specs}

    def close(self) -> None:
        pass


def scaler_for(admin: FakeAdmin, **values: Any) -> KafkaScaler:
    settings = KafkaSettings(bootstrap_servers=("kafka:9092",), consumer_group=GROUP, **values)
    return KafkaScaler(settings, pool=KafkaAdminPool(client_factory=lambda _: admin))


def tp(topic: str, index: int) -> TopicPartition:
    return TopicPartition(topic, index)


# --- requests per poll ----------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 1000])
def test_measure_calls_per_poll(partitions: int) -> None:
    admin = FakeAdmin({"orders": partitions})
    admin.committed = {tp("orders", i): 5 for i in range(partitions)}
    admin.log_end = {tp("orders", i): 7 for i in range(partitions)}
    scaler = scaler_for(admin, topic="orders", allow_idle_consumers=True)

    measurement = scaler.measure()

    assert measurement.queue_length == 2 * partitions
    assert admin.calls == ["describe_topics", "list_group_offsets", "list_partition_offsets"]


def test_topicless_calls_per_poll() -> None:
    admin = FakeAdmin({"a": 3}, committed={tp("a", 0): 1}, log_end={tp("a", 0): 4})

    scaler_for(admin).measure()

    assert admin.calls == ["list_group_offsets", "describe_topics", "list_partition_offsets"]


# --- partitions measured --------------------------------------------------------------------


def test_topicless_group_spans_topics() -> None:
    admin = FakeAdmin({"a": 2, "b": 2, "unrelated": 4})
    admin.committed = {tp("a", 0): 10, tp("b", 0): 0, tp("b", 1): 3}
    admin.log_end = {tp("a", 0): 15, tp("a", 1): 9, tp("b", 0): 20, tp("b", 1): 3}

    measurement = scaler_for(admin, lag_threshold=100).measure()

    # a/1 has no committed offset, so the latest policy counts it as 1.
    assert measurement.queue_length == 5 + 1 + 20
    assert measurement.details["partitions"] == 4
    assert {partition.topic for partition in admin.requested_log_end} == {"a", "b"}


def test_topicless_group_without_offsets() -> None:
    admin = FakeAdmin({"a": 2})

    measurement = scaler_for(admin).measure()

    assert measurement.queue_length == 0
    assert measurement.active is False
    assert measurement.details["partitions"] == 0
    assert admin.calls == ["list_group_offsets"]


def test_partition_limitation_filters() -> None:
    admin = FakeAdmin({"orders": 4})
    admin.committed = {tp("orders", i): 0 for i in range(4)}
    admin.log_end = {tp("orders", i): 10 * (i + 1) for i in range(4)}
    scaler = scaler_for(admin, topic="orders", partition_limitation=(1, 3), lag_threshold=100)

    measurement = scaler.measure()

    assert sorted(admin.requested_log_end) == [tp("orders", 1), tp("orders", 3)]
    assert measurement.queue_length == 20 + 40
    assert measurement.details["partitions"] == 2


def test_partition_limitation_leaves_nothing() -> None:
    scaler = scaler_for(FakeAdmin({"orders": 2}), topic="orders", partition_limitation=(5,))

    with pytest.raises(ScalerError) as caught:
        scaler.measure()

    assert str(caught.value) == (
        "topic orders has no partition left to measure after partitionLimitation"
    )


@pytest.mark.parametrize(
    ("topic", "committed", "hint"),
    [
        pytest.param("gone", {}, "check the trigger's topic", id="trigger-topic"),
        pytest.param(
            "", {tp("gone", 0): 1}, "the consumer group has committed offsets for it", id="group"
        ),
    ],
)
def test_missing_topic(topic: str, committed: dict[TopicPartition, int], hint: str) -> None:
    scaler = scaler_for(FakeAdmin({"orders": 1}, committed=committed), topic=topic)

    with pytest.raises(ScalerError) as caught:
        scaler.measure()

    assert str(caught.value) == f"topic gone not found in Kafka at kafka:9092; {hint}"


# --- the measurement ------------------------------------------------------------------------


def test_activation_uses_uncapped_lag() -> None:
    admin = FakeAdmin({"orders": 1}, committed={tp("orders", 0): 0}, log_end={tp("orders", 0): 100})
    scaler = scaler_for(admin, topic="orders", activation_lag_threshold=50)

    measurement = scaler.measure()

    assert measurement.queue_length == 10
    assert measurement.target == 10
    assert measurement.activation_value == 100
    assert measurement.active is True


def test_activation_is_strictly_greater() -> None:
    admin = FakeAdmin({"orders": 1}, committed={tp("orders", 0): 0}, log_end={tp("orders", 0): 5})

    measurement = scaler_for(admin, topic="orders", activation_lag_threshold=5).measure()

    assert measurement.active is False


def test_persistent_lag_stays_active() -> None:
    admin = FakeAdmin({"orders": 1}, committed={tp("orders", 0): 3}, log_end={tp("orders", 0): 8})
    scaler = scaler_for(admin, topic="orders", exclude_persistent_lag=True)

    first = scaler.measure()
    second = scaler.measure()
    admin.committed[tp("orders", 0)] = 4
    third = scaler.measure()

    assert first.queue_length == 5
    assert second.queue_length == 0
    assert second.active is True
    assert second.details["lagWithPersistent"] == 5
    assert third.queue_length == 4


def test_persistent_memory_per_scaler() -> None:
    admin = FakeAdmin({"orders": 1}, committed={tp("orders", 0): 3}, log_end={tp("orders", 0): 8})
    first = scaler_for(admin, topic="orders", exclude_persistent_lag=True)
    second = scaler_for(admin, topic="orders", exclude_persistent_lag=True)

    first.measure()

    assert first.measure().queue_length == 0
    assert second.measure().queue_length == 5


def test_negative_lag_reported_as_zero() -> None:
    admin = FakeAdmin({"orders": 1}, committed={tp("orders", 0): 9}, log_end={tp("orders", 0): 4})

    measurement = scaler_for(admin, topic="orders").measure()

    assert measurement.queue_length == 0
    assert measurement.activation_value == -5
    assert measurement.active is False


# --- errors ---------------------------------------------------------------------------------


def test_broker_error_becomes_scaler_error() -> None:
    admin = FakeAdmin({"orders": 1}, failures=[GroupAuthorizationFailedError(GROUP)])

    with pytest.raises(ScalerError) as caught:
        scaler_for(admin, topic="orders").measure()

    message = str(caught.value)
    assert message.startswith("cannot read the lag of consumer group workers from Kafka at ")
    assert "kafka:9092" in message
    assert "GroupAuthorizationFailedError" in message


def test_coordinator_not_available_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "COORDINATOR_RETRY_SECONDS", 0)
    admin = FakeAdmin({"orders": 1}, committed={tp("orders", 0): 1}, log_end={tp("orders", 0): 3})
    admin.failures = [CoordinatorNotAvailableError(), CoordinatorNotAvailableError()]

    measurement = scaler_for(admin, topic="orders").measure()

    assert measurement.queue_length == 2
    assert admin.calls.count("list_group_offsets") == 3


def test_coordinator_retries_exhausted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "COORDINATOR_RETRY_SECONDS", 0)
    admin = FakeAdmin({"orders": 1})
    admin.failures = [CoordinatorNotAvailableError() for _ in range(kafka.COORDINATOR_RETRIES)]

    with pytest.raises(ScalerError) as caught:
        scaler_for(admin, topic="orders").measure()

    assert "CoordinatorNotAvailableError" in str(caught.value)
