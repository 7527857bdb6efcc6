"""Unit tests of the Kafka lag arithmetic: offsets in, total lag and capping out."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import TopicPartition

from jobrunner.errors import ScalerError
from jobrunner.scalers.kafka import NO_OFFSET, LagResult, compute_lag, even_distribution_factor
from jobrunner.scalers.kafka_settings import KafkaSettings

TOPIC = "orders"


def settings(**overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": ("kafka:9092",),
        "consumer_group": "workers",
        "topic": TOPIC,
        **overrides,
    }
    return KafkaSettings(**values)


def partition(index: int) -> TopicPartition:
    return TopicPartition(TOPIC, index)


def lag_of(
    kafka_settings: KafkaSettings,
    offsets: list[tuple[int | None, int]],
    previous_committed: dict[TopicPartition, int] | None = None,
) -> LagResult:
    """Compute the lag of partitions given as (committed offset or None, log-end offset).

    None stands for no committed offset, which the broker reports as -1.
    """
    committed = {
        partition(index): NO_OFFSET if offset is None else offset
        for index, (offset, _) in enumerate(offsets)
    }
    log_end = {partition(index): end for index, (_, end) in enumerate(offsets)}
    return compute_lag(
        kafka_settings,
        committed=committed,
        log_end=log_end,
        previous_committed={} if previous_committed is None else previous_committed,
    )


def even_lag(partitions: int, lag: int) -> list[tuple[int | None, int]]:
    """Build offsets of partitions whose lags add up to `lag`, spread as evenly as possible."""
    share, rest = divmod(lag, partitions)
    return [(1000, 1000 + share + (index < rest)) for index in range(partitions)]


# --- partitions without a committed offset --------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected_lag"),
    [
        pytest.param({}, 3, id="latest-counts-1-per-partition"),
        pytest.param({"offset_reset_policy": "earliest"}, 12, id="earliest-counts-log-end"),
        pytest.param({"scale_to_zero_on_invalid_offset": True}, 0, id="latest-scale-to-zero"),
        pytest.param(
            {"offset_reset_policy": "earliest", "scale_to_zero_on_invalid_offset": True},
            0,
            id="earliest-scale-to-zero",
        ),
    ],
)
def test_compute_lag_without_committed_offset(overrides: dict[str, Any], expected_lag: int) -> None:
    result = lag_of(settings(**overrides), [(None, 7), (None, 5), (None, 0)])

    assert result.total_lag == expected_lag
    assert result.total_lag_with_persistent == expected_lag


def test_compute_lag_minus_one_offset() -> None:
    result = lag_of(settings(), [(NO_OFFSET, 7), (NO_OFFSET, 5)])

    assert result.total_lag == 2


# --- committed offsets ----------------------------------------------------------------------


def test_compute_lag_sums_partitions() -> None:
    result = lag_of(settings(), [(90, 100), (95, 100), (100, 100)])

    assert result.total_lag == 15
    assert result.total_lag_with_persistent == 15
    assert result.partitions == 3
    assert result.partitions_with_lag == 2
    assert result.per_partition == {"orders/0": 10, "orders/1": 5, "orders/2": 0}


def test_exclude_persistent_lag_across_polls() -> None:
    kafka_settings = settings(exclude_persistent_lag=True)
    previous: dict[TopicPartition, int] = {}

    first = lag_of(kafka_settings, [(90, 100)], previous)
    stuck = lag_of(kafka_settings, [(90, 110)], previous)
    moved = lag_of(kafka_settings, [(95, 110)], previous)

    assert first.total_lag == 10
    assert stuck.total_lag == 0
    assert stuck.total_lag_with_persistent == 20
    assert stuck.partitions_with_lag == 0
    assert moved.total_lag == 15
    assert previous == {partition(0): 95}


def test_persistent_lag_counts_without_exclusion() -> None:
    kafka_settings = settings(lag_threshold=100)
    previous: dict[TopicPartition, int] = {}

    lag_of(kafka_settings, [(90, 100)], previous)
    second = lag_of(kafka_settings, [(90, 110)], previous)

    assert second.total_lag == 20


# --- capping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "partitions", "lag", "expected_lag"),
    [
        pytest.param({}, 3, 35, 35, id="integer-division-keeps-35"),
        pytest.param({}, 3, 41, 30, id="3-partitions-cap-at-30"),
        pytest.param({}, 5, 100, 50, id="100-on-5-partitions-gives-50"),
        pytest.param({}, 5, 50, 50, id="at-the-cap"),
        pytest.param({"lag_threshold": 20}, 5, 100, 100, id="threshold-20-no-cap"),
        pytest.param({"allow_idle_consumers": True}, 5, 100, 100, id="allow-idle-consumers"),
    ],
)
def test_compute_lag_caps_at_partition_count(
    overrides: dict[str, Any], partitions: int, lag: int, expected_lag: int
) -> None:
    result = lag_of(settings(**overrides), even_lag(partitions, lag))

    assert result.total_lag == expected_lag
    assert result.total_lag_with_persistent == lag


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="alone"),
        pytest.param({"allow_idle_consumers": True}, id="with-allow-idle-consumers"),
    ],
)
def test_limit_to_partitions_with_lag_caps(overrides: dict[str, Any]) -> None:
    kafka_settings = settings(limit_to_partitions_with_lag=True, **overrides)

    result = lag_of(kafka_settings, [(0, 50), (0, 50), (7, 7), (7, 7), (7, 7)])

    assert result.partitions_with_lag == 2
    assert result.total_lag == 20
    assert result.total_lag_with_persistent == 100


# --- offsets the broker may report ----------------------------------------------------------


def test_missing_committed_entry_is_error() -> None:
    log_end = {partition(0): 10, partition(1): 10}

    with pytest.raises(ScalerError) as caught:
        compute_lag(
            settings(),
            committed={partition(0): 5},
            log_end=log_end,
            previous_committed={},
        )

    assert "partition 1 of topic orders" in str(caught.value)


def test_only_log_end_partitions_counted() -> None:
    committed = {partition(0): 5, partition(1): 5}

    result = compute_lag(
        settings(), committed=committed, log_end={partition(0): 10}, previous_committed={}
    )

    assert result.partitions == 1
    assert result.total_lag == 5


def test_offset_past_log_end_is_negative() -> None:
    result = lag_of(settings(), [(120, 100), (90, 100)])

    assert result.total_lag == -10
    assert result.total_lag_with_persistent == -10
    assert result.partitions_with_lag == 1


def test_persistent_lag_ignores_missing_offset() -> None:
    kafka_settings = settings(exclude_persistent_lag=True, offset_reset_policy="earliest")
    previous: dict[TopicPartition, int] = {}

    lag_of(kafka_settings, [(None, 10)], previous)
    second = lag_of(kafka_settings, [(None, 10)], previous)

    assert second.total_lag == 10
    assert previous == {}


def test_persistent_lag_per_partition() -> None:
    kafka_settings = settings(exclude_persistent_lag=True, lag_threshold=100)
    previous: dict[TopicPartition, int] = {}

    lag_of(kafka_settings, [(10, 20), (10, 20)], previous)
    second = lag_of(kafka_settings, [(10, 30), (15, 30)], previous)

    assert second.per_partition == {"orders/0": 0, "orders/1": 15}
    assert second.total_lag == 15
    assert second.total_lag_with_persistent == 35


# --- ensureEvenDistributionOfPartitions -----------------------------------------------------


@pytest.mark.parametrize(
    ("partitions", "threshold", "lag", "expected"),
    [
        pytest.param(6, 10, 0, 1, id="zero-lag-gives-1"),
        pytest.param(6, 10, 10, 1, id="one-threshold"),
        pytest.param(6, 10, 11, 2, id="just-over-one"),
        pytest.param(6, 10, 25, 3, id="25-needs-3"),
        pytest.param(6, 10, 31, 6, id="4-is-not-a-divisor"),
        pytest.param(6, 10, 1000, 6, id="beyond-gives-partitions"),
        pytest.param(7, 10, 11, 7, id="prime-count"),
        pytest.param(1000, 10, 2001, 250, id="1000-partitions"),
        pytest.param(0, 10, 5, 0, id="no-partitions"),
    ],
)
def test_even_distribution_factor(partitions: int, threshold: int, lag: int, expected: int) -> None:
    assert even_distribution_factor(lag, partitions, threshold) == expected


@pytest.mark.parametrize(
    ("overrides", "lag", "expected_lag"),
    [
        pytest.param({}, 25, 30, id="rounds-up-to-3-consumers"),
        pytest.param({}, 0, 10, id="zero-lag-reports-one-threshold"),
        pytest.param({}, 1000, 60, id="capped-at-partitions"),
        pytest.param({"allow_idle_consumers": True}, 1000, 60, id="capped-despite-idle"),
    ],
)
def test_even_distribution_lag(overrides: dict[str, Any], lag: int, expected_lag: int) -> None:
    kafka_settings = settings(ensure_even_distribution_of_partitions=True, **overrides)

    result = lag_of(kafka_settings, even_lag(6, lag))

    assert result.total_lag == expected_lag
    assert result.total_lag_with_persistent == lag


def test_limit_to_partitions_with_lag_integer_division() -> None:
    kafka_settings = settings(limit_to_partitions_with_lag=True)

    result = lag_of(kafka_settings, [(0, 15), (0, 0), (0, 0)])

    assert result.partitions_with_lag == 1
    assert result.total_lag == 15
