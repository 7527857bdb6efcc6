"""KafkaScaler.measure against the real broker of tests/env, one state of the group per test.

Each test makes its own topics and consumer group, commits offsets with the admin client,
and deletes only the groups it made. The `servers` fixture fails every test when the broker
is not up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.net.connection import KafkaConnection
from kafka.structs import OffsetAndMetadata

from jobrunner.errors import ScalerError
from jobrunner.scalers.base import Measurement
from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.kafka_client import KafkaAdminPool
from jobrunner.scalers.kafka_settings import parse_kafka_settings
from jobrunner.scalers.metadata import TriggerInput
from tests.integration.support import ServerEnv, Topic

pytestmark = pytest.mark.integration

MakeTopic = Callable[[int], Topic]


class Broker:
    """Admin actions on the test broker for one test; remembers the groups it commits for."""

    def __init__(self, servers: ServerEnv) -> None:
        self.address = servers.kafka
        self.admin = KafkaAdminClient(bootstrap_servers=servers.kafka, client_id="tests")
        self.groups: set[str] = set()

    def commit(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        committed = {
            TopicPartition(topic, index): OffsetAndMetadata(offset, "", -1)
            for index, offset in offsets.items()
        }
        self.admin.alter_group_offsets(group, committed)
        self.groups.add(group)

    def wait_ready(self, *topics: Topic) -> None:
        self.admin.wait_for_topics([topic.name for topic in topics], timeout_ms=30_000)

    def close(self) -> None:
        if self.groups:
            self.admin.delete_groups(sorted(self.groups))
        self.admin.close()


@pytest.fixture
def broker(servers: ServerEnv) -> Iterator[Broker]:
    broker = Broker(servers)
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[KafkaAdminPool]:
    pool = KafkaAdminPool()
    yield pool
    pool.close()


def scaler_for(pool: KafkaAdminPool, broker: Broker, group: str, **metadata: str) -> KafkaScaler:
    source = TriggerInput(
        subject="ScaledJob it/lag",
        path="spec.triggers[0]",
        metadata={"bootstrapServers": broker.address, "consumerGroup": group, **metadata},
    )
    return KafkaScaler(parse_kafka_settings(source), pool=pool)


def topic_with_messages(
    make_topic: MakeTopic, broker: Broker, *, partitions: int, per_partition: int
) -> Topic:
    topic = make_topic(partitions)
    broker.wait_ready(topic)
    topic.produce(partitions * per_partition)
    return topic


# --- no committed offset --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({"offsetResetPolicy": "latest"}, 3, id="latest-counts-1-per-partition"),
        pytest.param({"offsetResetPolicy": "earliest"}, 12, id="earliest-counts-log-end"),
        pytest.param(
            {"offsetResetPolicy": "latest", "scaleToZeroOnInvalidOffset": "true"},
            0,
            id="latest-scale-to-zero",
        ),
        pytest.param(
            {"offsetResetPolicy": "earliest", "scaleToZeroOnInvalidOffset": "true"},
            0,
            id="earliest-scale-to-zero",
        ),
    ],
)
def test_lag_without_committed_offset(
    pool: KafkaAdminPool,
    broker: Broker,
    make_topic: MakeTopic,
    metadata: dict[str, str],
    expected: int,
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=3, per_partition=4)
    scaler = scaler_for(pool, broker, topic.group, topic=topic.name, lagThreshold="100", **metadata)

    measurement = scaler.measure()

    assert measurement.queue_length == expected
    assert measurement.active is (expected > 0)
    assert measurement.details["partitions"] == 3


# --- records deleted below the committed offset ---------------------------------------------


def test_lag_counts_deleted_records(
    pool: KafkaAdminPool, broker: Broker, make_topic: MakeTopic
) -> None:
    """Deleting records (as retention does) moves the log start, never the log end.

    The group committed offset 2, then records 0 to 5 were deleted, so the consumer can
    only resume at 6. KEDA's lag is log end minus committed offset, so the 4 deleted
    records after the committed offset (2 to 5) still count: the lag is 10 - 2 = 8, not 4.
    """
    topic = topic_with_messages(make_topic, broker, partitions=1, per_partition=10)
    partition = TopicPartition(topic.name, 0)
    broker.commit(topic.group, topic.name, {0: 2})
    broker.admin.delete_records({partition: 6})
    scaler = scaler_for(pool, broker, topic.group, topic=topic.name)

    measurement = scaler.measure()

    log_start = broker.admin.list_partition_offsets({partition: OffsetSpec.EARLIEST})
    assert log_start[partition].offset == 6
    assert measurement.queue_length == 8
    assert measurement.active is True


# --- excludePersistentLag -------------------------------------------------------------------


def test_persistent_lag_across_polls(
    pool: KafkaAdminPool, broker: Broker, make_topic: MakeTopic
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=1, per_partition=10)
    broker.commit(topic.group, topic.name, {0: 4})
    scaler = scaler_for(pool, broker, topic.group, topic=topic.name, excludePersistentLag="true")

    first = scaler.measure()
    stuck = scaler.measure()
    topic.produce(5)
    still_stuck = scaler.measure()
    broker.commit(topic.group, topic.name, {0: 7})
    moved = scaler.measure()

    assert first.queue_length == 6
    assert stuck.queue_length == 0
    assert stuck.active is True
    assert stuck.details["lagWithPersistent"] == 6
    assert still_stuck.queue_length == 0
    assert still_stuck.details["lagWithPersistent"] == 11
    assert moved.queue_length == 8


def test_persistent_lag_new_scaler_counts(
    pool: KafkaAdminPool, broker: Broker, make_topic: MakeTopic
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=1, per_partition=10)
    broker.commit(topic.group, topic.name, {0: 4})
    metadata = {"topic": topic.name, "excludePersistentLag": "true"}
    scaler_for(pool, broker, topic.group, **metadata).measure()

    fresh = scaler_for(pool, broker, topic.group, **metadata).measure()

    assert fresh.queue_length == 6


# --- capping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({}, 20, id="capped-at-2-partitions"),
        pytest.param({"allowIdleConsumers": "true"}, 100, id="allow-idle-consumers"),
    ],
)
def test_lag_capped_at_partitions(
    pool: KafkaAdminPool,
    broker: Broker,
    make_topic: MakeTopic,
    metadata: dict[str, str],
    expected: int,
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=2, per_partition=50)
    broker.commit(topic.group, topic.name, {0: 0, 1: 0})
    scaler = scaler_for(pool, broker, topic.group, topic=topic.name, **metadata)

    measurement = scaler.measure()

    assert measurement.queue_length == expected
    assert measurement.activation_value == 100


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param({}, 40, id="capped-at-4-partitions"),
        pytest.param({"limitToPartitionsWithLag": "true"}, 10, id="capped-at-1-with-lag"),
    ],
)
def test_limit_to_partitions_with_lag(
    pool: KafkaAdminPool,
    broker: Broker,
    make_topic: MakeTopic,
    metadata: dict[str, str],
    expected: int,
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=4, per_partition=50)
    broker.commit(topic.group, topic.name, {0: 50, 1: 50, 2: 50, 3: 0})
    scaler = scaler_for(pool, broker, topic.group, topic=topic.name, **metadata)

    measurement = scaler.measure()

    assert measurement.details["partitionsWithLag"] == 1
    assert measurement.queue_length == expected


def test_even_distribution_of_partitions(
    pool: KafkaAdminPool, broker: Broker, make_topic: MakeTopic
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=6, per_partition=4)
    broker.commit(topic.group, topic.name, dict.fromkeys(range(6), 0))
    metadata = {"topic": topic.name, "ensureEvenDistributionOfPartitions": "true"}

    measurement = scaler_for(pool, broker, topic.group, **metadata).measure()

    # 24 messages need 3 consumers of threshold 10, and 3 divides the 6 partitions.
    assert measurement.queue_length == 30
    assert measurement.activation_value == 24


# --- which partitions count -----------------------------------------------------------------


def test_topicless_group_spans_topics(
    pool: KafkaAdminPool, broker: Broker, make_topic: MakeTopic
) -> None:
    first = topic_with_messages(make_topic, broker, partitions=2, per_partition=5)
    second = topic_with_messages(make_topic, broker, partitions=2, per_partition=5)
    # A topic the group never committed for, so it must not count.
    topic_with_messages(make_topic, broker, partitions=2, per_partition=5)
    group = first.group
    broker.commit(group, first.name, {0: 1})
    broker.commit(group, second.name, {0: 2, 1: 5})
    scaler = scaler_for(pool, broker, group, lagThreshold="100")

    measurement = scaler.measure()

    # first/1 has no committed offset, so the latest policy counts it as 1.
    assert measurement.queue_length == 4 + 1 + 3 + 0
    assert measurement.details["partitions"] == 4


def test_topicless_group_without_offsets(
    pool: KafkaAdminPool, broker: Broker, make_topic: MakeTopic
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=1, per_partition=5)

    measurement = scaler_for(pool, broker, topic.group).measure()

    assert measurement.queue_length == 0
    assert measurement.active is False


@pytest.mark.parametrize(
    ("limitation", "expected_lag", "expected_partitions"),
    [
        pytest.param("1,3", 20, 2, id="items"),
        pytest.param("0-2", 30, 3, id="range"),
        pytest.param("2, 5-9", 10, 1, id="beyond-the-topic"),
    ],
)
def test_partition_limitation(
    pool: KafkaAdminPool,
    broker: Broker,
    make_topic: MakeTopic,
    limitation: str,
    expected_lag: int,
    expected_partitions: int,
) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=4, per_partition=10)
    broker.commit(topic.group, topic.name, dict.fromkeys(range(4), 0))
    metadata = {"topic": topic.name, "partitionLimitation": limitation, "lagThreshold": "100"}

    measurement = scaler_for(pool, broker, topic.group, **metadata).measure()

    assert measurement.queue_length == expected_lag
    assert measurement.details["partitions"] == expected_partitions


# --- errors ---------------------------------------------------------------------------------


def test_missing_topic_is_error(pool: KafkaAdminPool, broker: Broker) -> None:
    name = f"missing-{time.monotonic_ns()}"
    scaler = scaler_for(pool, broker, f"g-{name}", topic=name)

    with pytest.raises(ScalerError) as caught:
        scaler.measure()

    assert str(caught.value) == (
        f"topic {name} not found in Kafka at {broker.address}; check the trigger's topic"
    )


def test_unreachable_broker_is_error(servers: ServerEnv) -> None:
    source = TriggerInput(
        subject="ScaledJob it/lag",
        path="spec.triggers[0]",
        metadata={"bootstrapServers": "127.0.0.1:1", "consumerGroup": "g", "topic": "t"},
    )
    settings = parse_kafka_settings(source)
    pool = KafkaAdminPool()
    started = time.monotonic()

    with pytest.raises(ScalerError) as caught:
        KafkaScaler(settings, pool=pool).measure()
    elapsed = time.monotonic() - started
    pool.close()

    assert "127.0.0.1:1" in str(caught.value)
    assert elapsed < settings.timeout_seconds + 2


# --- cost -----------------------------------------------------------------------------------


def test_triggers_share_one_client(broker: Broker, make_topic: MakeTopic) -> None:
    topic = topic_with_messages(make_topic, broker, partitions=1, per_partition=1)
    pool = KafkaAdminPool()
    scalers = [scaler_for(pool, broker, f"{topic.group}-{i}", topic=topic.name) for i in range(20)]

    measurements = [scaler.measure() for scaler in scalers]
    clients = pool.size()
    pool.close()

    assert [m.queue_length for m in measurements] == [1] * 20
    assert clients == 1


def count_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the type of every request any kafka-python connection sends."""
    sent: list[str] = []
    send_request = KafkaConnection.send_request

    def counting(self: KafkaConnection, request: Any, **kwargs: Any) -> Any:
        sent.append(type(request).__name__)
        return send_request(self, request, **kwargs)

    monkeypatch.setattr(KafkaConnection, "send_request", counting)
    return sent


def poll_requests(scaler: KafkaScaler, sent: list[str]) -> tuple[Measurement, list[str]]:
    scaler.measure()
    sent.clear()
    measurement = scaler.measure()
    return measurement, sorted(sent)


def test_requests_per_poll_constant(
    pool: KafkaAdminPool,
    broker: Broker,
    make_topic: MakeTopic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = topic_with_messages(make_topic, broker, partitions=1, per_partition=1)
    large = topic_with_messages(make_topic, broker, partitions=60, per_partition=1)
    sent = count_requests(monkeypatch)

    small_poll, small_requests = poll_requests(
        scaler_for(pool, broker, small.group, topic=small.name), sent
    )
    large_poll, large_requests = poll_requests(
        scaler_for(pool, broker, large.group, topic=large.name), sent
    )

    assert small_poll.details["partitions"] == 1
    assert large_poll.details["partitions"] == 60
    assert large_requests == small_requests
    assert large_requests == [
        "ListOffsetsRequest",
        "MetadataRequest",
        "MetadataRequest",
        "OffsetFetchRequest",
    ]
