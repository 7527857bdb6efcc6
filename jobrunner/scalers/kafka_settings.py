"""Settings of the `kafka` trigger: its metadata and authentication parameters, checked.

Parsing follows KEDA's Kafka scaler: every parameter from its declared sources, every problem
reported at once with the parameter's path, and never a value in a message.
"""

from __future__ import annotations

import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace

from jobrunner.scalers.metadata import MetadataReader, TriggerInput, masked_repr

SASL_MECHANISMS = {
    "plaintext": "PLAIN",
    "scram_sha256": "SCRAM-SHA-256",
    "scram_sha512": "SCRAM-SHA-512",
    "oauthbearer": "OAUTHBEARER",
}
SASL_MODES = ("none", *SASL_MECHANISMS, "gssapi")
PASSWORD_MODES = ("plaintext", "scram_sha256", "scram_sha512")
# Go regexp's \d is ASCII only, so [0-9] rather than Python's Unicode \d.
_VERSION_BEFORE_1 = re.compile(r"0\.[0-9]+\.[0-9]+\.[0-9]+")
_VERSION = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+")
_INT32_MAX = 2**31 - 1
# partitionLimitation expands to a list of partition numbers; this bounds its size. Topics
# with more partitions than this are far beyond what Kafka clusters run.
MAX_LIMITED_PARTITIONS = 100_000


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaAuth:
    """Authentication parameters of the admin client: SASL mode, TLS and credentials.

    `repr` shows only which credentials are set, never their values.
    """

    sasl: str = "none"
    tls: bool = False
    unsafe_ssl: bool = False
    username: str = ""
    password: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    key_password: str = ""
    oauth_token_endpoint_uri: str = ""
    # Split on `,` without trimming, as KEDA does, so an absent value is one empty scope.
    scopes: tuple[str, ...] = ()
    oauth_extensions: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return masked_repr(self, shown=("sasl", "tls", "unsafe_ssl"))

    def credential_values(self) -> list[str]:
        """List the credential values, for scrubbing them out of third-party messages."""
        values = [self.username, self.password, self.key, self.key_password]
        values += [self.oauth_token_endpoint_uri]
        values += [value for _, value in self.oauth_extensions]
        return [value for value in values if value]


@dataclass(frozen=True)
class KafkaSettings:
    """One kafka trigger's parameters, with the names and defaults of KEDA's metadata."""

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
    ensure_even_distribution_of_partitions: bool = False
    partition_limitation: tuple[int, ...] = ()
    # NOTE: parsed and checked as KEDA (sarama) does, but not passed to kafka-python, which
    # negotiates protocol versions with the broker through ApiVersions.
    version: tuple[int, ...] = (1, 0, 0)
    auth: KafkaAuth = field(default_factory=KafkaAuth)
    # Bootstrap and request timeout of the admin client. KEDA has no such parameter.
    timeout_seconds: float = 5.0


def parse_kafka_settings(source: TriggerInput) -> KafkaSettings:
    """Parse a kafka trigger, or raise InvalidSpecError listing every invalid parameter."""
    reader = MetadataReader(source)
    topic = reader.string("topic", sources="ME")
    settings = KafkaSettings(
        bootstrap_servers=reader.string_list("bootstrapServers", sources="ME", required=True),
        consumer_group=reader.string("consumerGroup", sources="ME", required=True),
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
        ensure_even_distribution_of_partitions=reader.boolean("ensureEvenDistributionOfPartitions"),
        partition_limitation=_parse_partition_limitation(reader, topic),
        version=_parse_version(reader),
        auth=_parse_auth(reader),
    )
    _check_lag_options(reader, settings)
    reader.check()
    return settings


def _check_lag_options(reader: MetadataReader, settings: KafkaSettings) -> None:
    if settings.limit_to_partitions_with_lag:
        if settings.allow_idle_consumers:
            reader.problem("limitToPartitionsWithLag", "cannot be combined with allowIdleConsumers")
        if not settings.topic:
            reader.problem("limitToPartitionsWithLag", "needs a topic")
        if settings.ensure_even_distribution_of_partitions:
            reader.problem(
                "limitToPartitionsWithLag",
                "cannot be combined with ensureEvenDistributionOfPartitions",
            )
    if settings.ensure_even_distribution_of_partitions and not settings.topic:
        reader.problem("ensureEvenDistributionOfPartitions", "needs a topic")


def _parse_partition_limitation(reader: MetadataReader, topic: str) -> tuple[int, ...]:
    """Parse `1,2,10-20` into partition numbers, or none without a topic as KEDA does.

    Items and range ends are JSON integers, so `+5` and `010` are invalid.
    NOTE: a range that ends below its start is rejected here. KEDA accepts it and adds no
    partition, which leaves `5-3` alone meaning every partition. More than
    MAX_LIMITED_PARTITIONS partitions in all are rejected too, because the list is expanded
    in memory (KEDA expands it as well, without a bound).
    """
    text = reader.string("partitionLimitation")
    if not text or not topic:
        return ()
    partitions: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        bounds = [_json_partition(bound) for bound in item.split("-")]
        if len(bounds) > 2 or -1 in bounds or bounds[0] > bounds[-1]:
            reader.problem(
                "partitionLimitation", "must list partition numbers or ranges such as 1,2,10-20"
            )
            return ()
        if bounds[-1] - bounds[0] + 1 + len(partitions) > MAX_LIMITED_PARTITIONS:
            reader.problem(
                "partitionLimitation",
                f"names more than {MAX_LIMITED_PARTITIONS} partitions; list only partitions "
                "the topic has",
            )
            return ()
        partitions.update(range(bounds[0], bounds[-1] + 1))
    return tuple(sorted(partitions))


def _json_partition(text: str) -> int:
    """Parse a partition number as a JSON integer, or return -1 if it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return -1
    if type(value) is not int or not 0 <= value <= _INT32_MAX:
        return -1
    return value


def _parse_version(reader: MetadataReader) -> tuple[int, ...]:
    """Parse `version` with sarama's rules: `0.10.2.0` before 1.0, `2.8.1` from 1.0 on."""
    found = reader.raw("version")
    if found is None:
        return (1, 0, 0)
    text = found[0]
    pattern = _VERSION_BEFORE_1 if text.startswith("0") else _VERSION
    if len(text) < 5 or not pattern.fullmatch(text):
        reader.problem(
            "version", "must be a Kafka version such as 2.8.1, or 0.10.2.0 before Kafka 1.0"
        )
        return (1, 0, 0)
    return tuple(int(part) for part in text.split("."))


def _parse_auth(reader: MetadataReader) -> KafkaAuth:
    """Parse the SASL and TLS parameters. Credentials are read only from authentication."""
    sasl = reader.enum("sasl", SASL_MODES, default="none", sources="MA")
    tls = reader.enum("tls", ("enable", "disable"), default="disable", sources="MA") == "enable"
    auth = KafkaAuth(
        sasl=sasl,
        tls=tls,
        unsafe_ssl=reader.boolean("unsafeSsl"),
        username=reader.string("username", sources="A"),
        password=reader.string("password", sources="A"),
        ca=reader.string("ca", sources="A"),
        cert=reader.string("cert", sources="A"),
        key=reader.string("key", sources="A"),
        key_password=reader.string("keyPassword", sources="A"),
    )
    if tls:
        _check_tls(reader, auth)
    if sasl == "gssapi":
        reader.problem(
            "sasl", "Kerberos (gssapi) is not supported yet", where=_source_of(reader, "sasl")
        )
    elif sasl in PASSWORD_MODES:
        _require_credentials(reader, auth, "when sasl is plaintext, scram_sha256 or scram_sha512")
    elif sasl == "oauthbearer":
        auth = _parse_oauth(reader, auth)
    return auth


def _source_of(reader: MetadataReader, name: str) -> str:
    found = reader.raw(name, "MA")
    return found[1] if found else "M"


def _check_tls(reader: MetadataReader, auth: KafkaAuth) -> None:
    if auth.cert and not auth.key:
        reader.problem("key", "required when tls is enable and cert is set", where="A")
    if auth.key and not auth.cert:
        reader.problem("cert", "required when tls is enable and key is set", where="A")
    if auth.ca:
        try:
            ssl.create_default_context(cadata=auth.ca)
        except (ssl.SSLError, ValueError):
            reader.problem("ca", "must be one or more PEM certificates", where="A")
    if auth.cert and "-----BEGIN CERTIFICATE-----" not in auth.cert:
        reader.problem("cert", "must be a PEM certificate", where="A")
    if auth.key and not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", auth.key):
        reader.problem("key", "must be a PEM private key", where="A")


def _require_credentials(reader: MetadataReader, auth: KafkaAuth, when: str) -> None:
    if not auth.username:
        reader.problem("username", f"required {when}", where="A")
    if not auth.password:
        reader.problem("password", f"required {when}", where="A")


def _parse_oauth(reader: MetadataReader, auth: KafkaAuth) -> KafkaAuth:
    provider = reader.enum(
        "saslTokenProvider", ("bearer", "aws_msk_iam"), default="bearer", sources="MA"
    )
    if provider == "aws_msk_iam":
        where = _source_of(reader, "saslTokenProvider")
        reader.problem("saslTokenProvider", "AWS MSK IAM is not supported yet", where=where)
        return auth
    _require_credentials(reader, auth, "when sasl is oauthbearer")
    endpoint = reader.string("oauthTokenEndpointUri", sources="A")
    if not endpoint:
        reader.problem("oauthTokenEndpointUri", "required when sasl is oauthbearer", where="A")
    elif urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
        reader.problem("oauthTokenEndpointUri", "must be an http or https URL", where="A")
    scopes = tuple(reader.string("scopes", sources="A").split(","))
    extensions = reader.key_value_pairs("oauthExtensions", sources="A")
    return replace(
        auth, oauth_token_endpoint_uri=endpoint, scopes=scopes, oauth_extensions=extensions
    )
