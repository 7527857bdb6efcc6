"""Unit tests of Kafka trigger metadata parsing: sources, conversions and problem messages."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from jobrunner.errors import InvalidSpecError
from jobrunner.scalers.kafka_settings import KafkaAuth, KafkaSettings, parse_kafka_settings
from jobrunner.scalers.metadata import TriggerInput

SUBJECT = "ScaledJob default/orders"
PREFIX = "spec.triggers[0].metadata"
BASE = {"bootstrapServers": "kafka:9092", "consumerGroup": "workers", "topic": "orders"}
# A value that must never appear in an error message, since metadata can carry credentials.
SECRET = "hunter2-s3cret"

BOOLEAN_ATTRIBUTES = {
    "allowIdleConsumers": "allow_idle_consumers",
    "excludePersistentLag": "exclude_persistent_lag",
    "scaleToZeroOnInvalidOffset": "scale_to_zero_on_invalid_offset",
    "limitToPartitionsWithLag": "limit_to_partitions_with_lag",
    "ensureEvenDistributionOfPartitions": "ensure_even_distribution_of_partitions",
}


def parse(metadata: Mapping[str, str], *, env: Mapping[str, str] | None = None) -> KafkaSettings:
    source = TriggerInput(
        subject=SUBJECT, path="spec.triggers[0]", metadata=metadata, resolved_env=env or {}
    )
    return parse_kafka_settings(source)


def parse_error(
    metadata: Mapping[str, str], *, env: Mapping[str, str] | None = None
) -> InvalidSpecError:
    with pytest.raises(InvalidSpecError) as caught:
        parse(metadata, env=env)
    return caught.value


def problems_of(error: InvalidSpecError) -> dict[str, str]:
    return {problem.field: problem.message for problem in error.problems}


# --- valid metadata -------------------------------------------------------------------------


def test_parse_kafka_settings_defaults() -> None:
    assert parse(BASE) == KafkaSettings(
        bootstrap_servers=("kafka:9092",),
        consumer_group="workers",
        topic="orders",
        lag_threshold=10,
        activation_lag_threshold=0,
        offset_reset_policy="latest",
        allow_idle_consumers=False,
        exclude_persistent_lag=False,
        scale_to_zero_on_invalid_offset=False,
        limit_to_partitions_with_lag=False,
        ensure_even_distribution_of_partitions=False,
        partition_limitation=(),
        version=(1, 0, 0),
        auth=KafkaAuth(),
    )


def test_parse_kafka_settings_topic_optional() -> None:
    settings = parse({"bootstrapServers": "kafka:9092", "consumerGroup": "workers"})

    assert settings.topic == ""


@pytest.mark.parametrize(
    ("metadata", "attribute", "expected"),
    [
        pytest.param(
            {"bootstrapServers": " a:9092 , b:9092 "},
            "bootstrap_servers",
            ("a:9092", "b:9092"),
            id="bootstrap-servers-list",
        ),
        pytest.param({"consumerGroup": " workers\n"}, "consumer_group", "workers", id="group"),
        pytest.param({"topic": "  orders "}, "topic", "orders", id="topic"),
        pytest.param({"lagThreshold": " 20 "}, "lag_threshold", 20, id="lag-threshold"),
        pytest.param(
            {"activationLagThreshold": "0"}, "activation_lag_threshold", 0, id="activation-zero"
        ),
        pytest.param(
            {"activationLagThreshold": "-0"}, "activation_lag_threshold", 0, id="activation-minus-0"
        ),
        pytest.param(
            {"offsetResetPolicy": " earliest "}, "offset_reset_policy", "earliest", id="policy"
        ),
        pytest.param({"lagThreshold": "   "}, "lag_threshold", 10, id="blank-uses-default"),
    ],
)
def test_parse_kafka_settings_trims_values(
    metadata: dict[str, str], attribute: str, expected: object
) -> None:
    settings = parse({**BASE, **metadata})

    assert getattr(settings, attribute) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1", True, id="1"),
        pytest.param("t", True, id="t"),
        pytest.param("T", True, id="T"),
        pytest.param("TRUE", True, id="TRUE"),
        pytest.param("true", True, id="true"),
        pytest.param("True", True, id="True"),
        pytest.param(" true ", True, id="true-padded"),
        pytest.param("0", False, id="0"),
        pytest.param("f", False, id="f"),
        pytest.param("F", False, id="F"),
        pytest.param("FALSE", False, id="FALSE"),
        pytest.param("false", False, id="false"),
        pytest.param("False", False, id="False"),
    ],
)
@pytest.mark.parametrize("key", BOOLEAN_ATTRIBUTES)
def test_parse_kafka_settings_booleans(key: str, text: str, expected: bool) -> None:
    settings = parse({**BASE, key: text})

    assert getattr(settings, BOOLEAN_ATTRIBUTES[key]) is expected


# --- sources --------------------------------------------------------------------------------


def test_from_env_reads_resolved_env() -> None:
    metadata = {
        "bootstrapServersFromEnv": "KAFKA_BROKERS",
        "consumerGroupFromEnv": "KAFKA_GROUP",
        "topicFromEnv": "KAFKA_TOPIC",
    }
    env = {"KAFKA_BROKERS": "a:9092,b:9092", "KAFKA_GROUP": " workers ", "KAFKA_TOPIC": "orders"}

    settings = parse(metadata, env=env)

    assert settings.bootstrap_servers == ("a:9092", "b:9092")
    assert settings.consumer_group == "workers"
    assert settings.topic == "orders"


def test_metadata_wins_over_from_env() -> None:
    metadata = {**BASE, "consumerGroupFromEnv": "KAFKA_GROUP"}

    settings = parse(metadata, env={"KAFKA_GROUP": "from-env"})

    assert settings.consumer_group == "workers"


def test_blank_metadata_falls_back_to_env() -> None:
    metadata = {**BASE, "consumerGroup": "  ", "consumerGroupFromEnv": "KAFKA_GROUP"}

    settings = parse(metadata, env={"KAFKA_GROUP": "from-env"})

    assert settings.consumer_group == "from-env"


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="variable-missing"),
        pytest.param({"KAFKA_GROUP": "   "}, id="variable-blank"),
    ],
)
def test_from_env_without_value_is_missing(env: dict[str, str]) -> None:
    metadata = {"bootstrapServers": "kafka:9092", "consumerGroupFromEnv": "KAFKA_GROUP"}

    error = parse_error(metadata, env=env)

    assert problems_of(error) == {
        f"{PREFIX}.consumerGroup": "missing required parameter (looked in metadata, <name>FromEnv)"
    }


# --- required parameters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "missing"),
    [
        pytest.param({"consumerGroup": "workers"}, "bootstrapServers", id="bootstrap-servers"),
        pytest.param({"bootstrapServers": "kafka:9092"}, "consumerGroup", id="consumer-group"),
        pytest.param(
            {"bootstrapServers": " ", "consumerGroup": "workers"},
            "bootstrapServers",
            id="whitespace-only",
        ),
    ],
)
def test_required_parameter_missing(metadata: dict[str, str], missing: str) -> None:
    error = parse_error(metadata)

    assert list(problems_of(error)) == [f"{PREFIX}.{missing}"]
    assert "missing required parameter" in error.problems[0].message


def test_both_required_parameters_missing() -> None:
    error = parse_error({"topic": "orders"})

    assert list(problems_of(error)) == [f"{PREFIX}.bootstrapServers", f"{PREFIX}.consumerGroup"]


# --- invalid values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("AA", "must be an integer", id="letters"),
        pytest.param("1.5", "must be an integer", id="fraction"),
        pytest.param("+5", "must be an integer", id="plus-sign"),
        pytest.param("010", "must be an integer", id="leading-zero"),
        pytest.param("1e3", "must be an integer", id="exponent"),
        pytest.param("1_0", "must be an integer", id="underscore"),
        pytest.param("0", "must be > 0", id="zero"),
        pytest.param("-3", "must be > 0", id="negative"),
    ],
)
def test_lag_threshold_invalid(text: str, message: str) -> None:
    error = parse_error({**BASE, "lagThreshold": text})

    assert problems_of(error) == {f"{PREFIX}.lagThreshold": message}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("-1", "must be >= 0", id="negative"),
        pytest.param("1.5", "must be an integer", id="fraction"),
        pytest.param("AA", "must be an integer", id="letters"),
    ],
)
def test_activation_lag_threshold_invalid(text: str, message: str) -> None:
    error = parse_error({**BASE, "activationLagThreshold": text})

    assert problems_of(error) == {f"{PREFIX}.activationLagThreshold": message}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("smallest", id="kafka-consumer-spelling"),
        pytest.param("Latest", id="wrong-case"),
        pytest.param("latest,earliest", id="list"),
    ],
)
def test_offset_reset_policy_invalid(text: str) -> None:
    error = parse_error({**BASE, "offsetResetPolicy": text})

    assert problems_of(error) == {f"{PREFIX}.offsetResetPolicy": "must be one of latest, earliest"}


@pytest.mark.parametrize("text", ["yes", "no", "tRuE", "2", "on"])
@pytest.mark.parametrize("key", BOOLEAN_ATTRIBUTES)
def test_boolean_invalid(key: str, text: str) -> None:
    error = parse_error({**BASE, key: text})

    assert problems_of(error) == {f"{PREFIX}.{key}": "must be true or false"}


# --- cross-field rules ----------------------------------------------------------------------


def test_limit_to_partitions_with_lag_and_idle_consumers() -> None:
    metadata = {**BASE, "limitToPartitionsWithLag": "true", "allowIdleConsumers": "true"}

    error = parse_error(metadata)

    assert problems_of(error) == {
        f"{PREFIX}.limitToPartitionsWithLag": "cannot be combined with allowIdleConsumers"
    }


def test_limit_to_partitions_with_lag_needs_topic() -> None:
    metadata = {"bootstrapServers": "kafka:9092", "consumerGroup": "workers"}

    error = parse_error({**metadata, "limitToPartitionsWithLag": "true"})

    assert problems_of(error) == {f"{PREFIX}.limitToPartitionsWithLag": "needs a topic"}


def test_limit_to_partitions_with_lag_both_problems() -> None:
    metadata = {
        "bootstrapServers": "kafka:9092",
        "consumerGroup": "workers",
        "limitToPartitionsWithLag": "true",
        "allowIdleConsumers": "true",
    }

    error = parse_error(metadata)

    assert [problem.message for problem in error.problems] == [
        "cannot be combined with allowIdleConsumers",
        "needs a topic",
    ]


def test_limit_to_partitions_with_lag_valid() -> None:
    settings = parse({**BASE, "limitToPartitionsWithLag": "true"})

    assert settings.limit_to_partitions_with_lag is True


# --- partitionLimitation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("1,2,10-12", (1, 2, 10, 11, 12), id="items-and-range"),
        pytest.param(" 3 , 1 ,2", (1, 2, 3), id="items-trimmed-and-sorted"),
        pytest.param("1,1,0-2", (0, 1, 2), id="duplicates-merged"),
        pytest.param("4-4", (4,), id="single-item-range"),
        pytest.param("   ", (), id="blank-means-no-limit"),
        pytest.param("0", (0,), id="zero"),
        pytest.param("2 - 4", (2, 3, 4), id="range-ends-trimmed"),
    ],
)
def test_partition_limitation_valid(text: str, expected: tuple[int, ...]) -> None:
    settings = parse({**BASE, "partitionLimitation": text})

    assert settings.partition_limitation == expected


def test_partition_limitation_ignored_without_topic() -> None:
    metadata = {"bootstrapServers": "kafka:9092", "consumerGroup": "workers"}

    settings = parse({**metadata, "partitionLimitation": "1,2"})

    assert settings.partition_limitation == ()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a", id="word"),
        pytest.param("1-2-3", id="range-with-three-parts"),
        pytest.param("1,,2", id="empty-item"),
        pytest.param("5-", id="range-without-end"),
        pytest.param("-5", id="range-without-start"),
        pytest.param("1;2", id="wrong-separator"),
        pytest.param("1.5", id="fraction"),
        pytest.param("+5", id="plus-sign"),
        pytest.param("010", id="leading-zero"),
        pytest.param("1e1", id="exponent"),
        pytest.param("2147483648", id="beyond-int32"),
        pytest.param("1-+3", id="range-end-plus-sign"),
        pytest.param("5-3", id="reversed-range"),
    ],
)
def test_partition_limitation_invalid(text: str) -> None:
    error = parse_error({**BASE, "partitionLimitation": text})

    assert list(problems_of(error)) == [f"{PREFIX}.partitionLimitation"]


# --- how problems are reported --------------------------------------------------------------


def test_every_problem_reported_at_once() -> None:
    metadata = {
        "bootstrapServers": "kafka:9092",
        "topic": "orders",
        "lagThreshold": "x",
        "activationLagThreshold": "-1",
        "offsetResetPolicy": "smallest",
        "allowIdleConsumers": "yes",
        "partitionLimitation": "a",
    }

    error = parse_error(metadata)

    assert sorted(problems_of(error)) == [
        f"{PREFIX}.activationLagThreshold",
        f"{PREFIX}.allowIdleConsumers",
        f"{PREFIX}.consumerGroup",
        f"{PREFIX}.lagThreshold",
        f"{PREFIX}.offsetResetPolicy",
        f"{PREFIX}.partitionLimitation",
    ]


def test_error_names_subject_and_field() -> None:
    error = parse_error({**BASE, "lagThreshold": "0"})

    assert error.subject == SUBJECT
    assert str(error) == f"{SUBJECT}: {PREFIX}.lagThreshold: must be > 0"


@pytest.mark.parametrize(
    "key",
    [
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "partitionLimitation",
        "version",
        *BOOLEAN_ATTRIBUTES,
    ],
)
def test_error_never_contains_value(key: str) -> None:
    error = parse_error({**BASE, key: SECRET})

    assert list(problems_of(error)) == [f"{PREFIX}.{key}"]
    assert SECRET not in str(error)
    assert SECRET not in repr(error.problems)


# --- ensureEvenDistributionOfPartitions -----------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param(
            {"bootstrapServers": "kafka:9092", "consumerGroup": "workers"},
            {f"{PREFIX}.ensureEvenDistributionOfPartitions": "needs a topic"},
            id="needs-topic",
        ),
        pytest.param(
            {**BASE, "limitToPartitionsWithLag": "true"},
            {
                f"{PREFIX}.limitToPartitionsWithLag": (
                    "cannot be combined with ensureEvenDistributionOfPartitions"
                )
            },
            id="not-with-limit-to-partitions-with-lag",
        ),
    ],
)
def test_even_distribution_invalid(metadata: dict[str, str], expected: dict[str, str]) -> None:
    error = parse_error({**metadata, "ensureEvenDistributionOfPartitions": "true"})

    assert problems_of(error) == expected


def test_even_distribution_with_idle_consumers() -> None:
    metadata = {**BASE, "ensureEvenDistributionOfPartitions": "true", "allowIdleConsumers": "1"}

    settings = parse(metadata)

    assert settings.ensure_even_distribution_of_partitions is True
    assert settings.allow_idle_consumers is True


# --- version --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2.8.1", (2, 8, 1), id="three-numbers"),
        pytest.param(" 3.7.0 ", (3, 7, 0), id="trimmed"),
        pytest.param("0.10.2.0", (0, 10, 2, 0), id="before-1.0-four-numbers"),
        pytest.param("10.0.0", (10, 0, 0), id="two-digit-major"),
        pytest.param("1.02.3", (1, 2, 3), id="leading-zero-in-minor"),
        pytest.param("9.9.99", (9, 9, 99), id="unknown-release-accepted"),
    ],
)
def test_version_valid(text: str, expected: tuple[int, ...]) -> None:
    assert parse({**BASE, "version": text}).version == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1.0", id="two-numbers"),
        pytest.param("2.8", id="shorter-than-5"),
        pytest.param("2.8.1.0", id="four-numbers-from-1.0"),
        pytest.param("0.10.2", id="three-numbers-before-1.0"),
        pytest.param("v2.8.1", id="v-prefix"),
        pytest.param("2.8.x", id="letter"),
        pytest.param("01.2.3", id="leading-zero-major"),
        pytest.param("\u0662.\u0668.\u0661", id="non-ascii-digits"),
    ],
)
def test_version_invalid(text: str) -> None:
    error = parse_error({**BASE, "version": text})

    assert problems_of(error) == {
        f"{PREFIX}.version": "must be a Kafka version such as 2.8.1, or 0.10.2.0 before Kafka 1.0"
    }


def test_partition_limitation_too_large() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_kafka_settings(
            TriggerInput(
                subject="ScaledJob shop/orders",
                path="spec.triggers[0]",
                metadata={
                    "bootstrapServers": "b:9092",
                    "consumerGroup": "g",
                    "topic": "t",
                    "partitionLimitation": "1-999999999",
                },
            )
        )
    assert "names more than 100000 partitions" in str(caught.value)
