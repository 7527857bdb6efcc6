"""The `kafka` trigger: consumer-group lag, computed as KEDA's Kafka scaler computes it.

Per poll the scaler sends a fixed number of requests, whatever the partition count. With a
topic: one Metadata request to list its partitions, one OffsetFetch for the group, and one
Metadata plus one ListOffsets per partition leader to read the log-end offsets. Without a
topic, one OffsetFetch for every committed offset of the group comes first and replaces the
second OffsetFetch. The first poll also sends a FindCoordinator request.

Admin clients are shared by every trigger that names the same bootstrap servers and
credentials, and credentials never reach a repr, a log line or an error message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import secrets
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kafka.errors import (
    CoordinatorNotAvailableError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
    for_code,
)
from kafka.net.compat import KafkaNetClient
from kafka.net.manager import KafkaConnectionManager
from kafka.net.sasl.oauth import AbstractTokenProvider
from kafka.net.selector import NetworkSelector

from jobrunner.errors import ScalerError
from jobrunner.logconfig import context
from jobrunner.scalers.base import Measurement, Scaler
from jobrunner.scalers.metadata import MetadataReader, TriggerInput

log = logging.getLogger(__name__)

T = TypeVar("T")

NO_OFFSET = -1
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_RETRIES = 3
COORDINATOR_RETRY_SECONDS = 0.5
# The broker rejected the SASL handshake or the credentials. Retrying the same credentials
# cannot succeed, so the client stops at the first one (see _FailFastConnectionManager).
AUTHENTICATION_ERRORS = (
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)
# Errors after which a shared admin client is closed and built again on the next call.
# Authentication errors are among them because the client caches them per broker and would
# raise them on every later call, even after the broker's credentials change.
CONNECTION_ERRORS = (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    *AUTHENTICATION_ERRORS,
)
# OpenSSL reasons with which a broker rejects the client certificate or its absence.
_CLIENT_CERTIFICATE_REJECTED = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
)

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
        parts = [f"sasl={self.sasl!r}", f"tls={self.tls}", f"unsafe_ssl={self.unsafe_ssl}"]
        for item in fields(self):
            if item.name not in ("sasl", "tls", "unsafe_ssl"):
                state = "<set>" if getattr(self, item.name) else "<unset>"
                parts.append(f"{item.name}={state}")
        return f"KafkaAuth({', '.join(parts)})"

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
    partition, which leaves `5-3` alone meaning every partition.
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


# --- client configuration -------------------------------------------------------------------


def admin_client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Build the KafkaAdminClient keyword arguments, which include the credentials.

    Never log the result. Raise ScalerError when the TLS material cannot be loaded.
    """
    auth = settings.auth
    timeout_ms = int(settings.timeout_seconds * 1000)
    config: dict[str, Any] = {
        "bootstrap_servers": list(settings.bootstrap_servers),
        "client_id": "jobrunner",
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": timeout_ms,
        "security_protocol": security_protocol(auth),
    }
    if auth.tls:
        config["ssl_context"] = build_ssl_context(auth)
    if auth.sasl in SASL_MECHANISMS:
        config["sasl_mechanism"] = SASL_MECHANISMS[auth.sasl]
    if auth.sasl in PASSWORD_MODES:
        config["sasl_plain_username"] = auth.username
        config["sasl_plain_password"] = auth.password
    if auth.sasl == "oauthbearer":
        config["sasl_oauth_token_provider"] = ClientCredentialsTokenProvider(
            endpoint=auth.oauth_token_endpoint_uri,
            client_id=auth.username,
            client_secret=auth.password,
            scopes=auth.scopes,
            extensions=dict(auth.oauth_extensions),
            timeout_seconds=settings.timeout_seconds,
        )
    return config


def security_protocol(auth: KafkaAuth) -> str:
    if auth.sasl in SASL_MECHANISMS:
        return "SASL_SSL" if auth.tls else "SASL_PLAINTEXT"
    return "SSL" if auth.tls else "PLAINTEXT"


def build_ssl_context(auth: KafkaAuth) -> ssl.SSLContext:
    """Build a TLS 1.2+ client context from the PEM strings of `ca`, `cert` and `key`.

    The CA loads from memory. Python's ssl module loads a client certificate only from
    files, so cert and key are written to a private temporary directory (mode 0700) and
    removed as soon as they are loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if auth.ca:
            context.load_verify_locations(cadata=auth.ca)
        else:
            context.load_default_certs()
    except (ssl.SSLError, ValueError) as error:
        raise ScalerError(f"cannot load the TLS CA certificates (auth ca): {error}") from None
    if auth.cert:
        _load_client_certificate(context, auth)
    if auth.unsafe_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_client_certificate(context: ssl.SSLContext, auth: KafkaAuth) -> None:
    # A callable password stops OpenSSL from prompting on the terminal for an encrypted key
    # when no keyPassword is given: the load fails instead.
    password = auth.key_password
    with tempfile.TemporaryDirectory(prefix="jobrunner-kafka-") as directory:
        cert_path = _write_private(Path(directory) / "cert.pem", auth.cert)
        key_path = _write_private(Path(directory) / "key.pem", auth.key)
        try:
            context.load_cert_chain(cert_path, key_path, password=lambda: password)
        except (ssl.SSLError, ValueError) as error:
            # The ssl error names the OpenSSL reason, never the key or its password.
            raise ScalerError(
                f"cannot load the TLS client certificate (auth cert, key, keyPassword): {error}"
            ) from None


def _write_private(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return str(path)


class _RejectRedirects(urllib.request.HTTPRedirectHandler):
    """Turns a redirect into an HTTPError, so the client secret never follows it elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_TOKEN_OPENER = urllib.request.build_opener(_RejectRedirects)


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens from an OAuth 2.0 client-credentials grant (RFC 6749, 4.4).

    As in KEDA, `username` and `password` are the client id and secret. A token is reused
    until 30 seconds before its `expires_in`. A token without `expires_in` is reused for
    the life of the client, as Go's oauth2 package does. Redirects are not followed.
    """

    REFRESH_MARGIN_SECONDS = 30.0

    def __init__(
        self,
        *,
        endpoint: str,
        client_id: str,
        client_secret: str,
        scopes: Iterable[str],
        extensions: Mapping[str, str],
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = " ".join(scope for scope in scopes if scope)
        self._extensions = dict(extensions)
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at: float | None = None

    def __repr__(self) -> str:
        return "ClientCredentialsTokenProvider(endpoint=<set>, client_id=<set>, secret=<set>)"

    def token(self) -> str:
        with self._lock:
            if not self._token or (
                self._expires_at is not None and self._clock() >= self._expires_at
            ):
                self._token, lifetime = self._request_token()
                self._expires_at = (
                    None
                    if lifetime is None
                    else self._clock() + max(lifetime - self.REFRESH_MARGIN_SECONDS, 0.0)
                )
            return self._token

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)

    def _request_token(self) -> tuple[str, float | None]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        # RFC 6749 2.3.1: the id and secret are form-encoded before Basic encoding.
        pair = f"{urllib.parse.quote(self._client_id)}:{urllib.parse.quote(self._client_secret)}"
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
            self._endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with _TOKEN_OPENER.open(request, timeout=self._timeout_seconds) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            raise KafkaError(f"OAuth token request failed with HTTP {error.code}") from None
        except (OSError, ValueError) as error:
            raise KafkaError(f"OAuth token request failed: {type(error).__name__}") from None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise KafkaError("OAuth token response has no access_token")
        try:
            lifetime = float(payload["expires_in"])
        except (KeyError, TypeError, ValueError):
            return token, None
        return token, lifetime


class _HideClientCredentials(logging.Filter):
    """Masks credentials in the configuration that kafka-python logs.

    kafka-python 3.0.12 logs every KafkaAdminClient keyword argument, the SASL password
    included, at DEBUG on the `kafka.admin.client` logger.
    """

    HIDDEN = frozenset({"sasl_plain_username", "sasl_plain_password", "ssl_password"})

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = self._mask(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(
                self._mask(arg) if isinstance(arg, Mapping) else arg for arg in record.args
            )
        return True

    def _mask(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {key: "<hidden>" if key in self.HIDDEN else value for key, value in config.items()}


logging.getLogger("kafka.admin.client").addFilter(_HideClientCredentials())


def scrub(text: str, auth: KafkaAuth) -> str:
    """Replace every credential value in a third-party message with `<hidden>`."""
    for secret in auth.credential_values():
        text = text.replace(secret, "<hidden>")
    return text


def is_tls_failure(error: object) -> bool:
    """Check whether a connection failed in TLS, where retrying the same settings cannot help.

    kafka-python 3.0.12 wraps ssl errors in KafkaConnectionError and keeps only their text,
    which CPython's ssl module formats as `[SSL: REASON] description`.
    """
    return isinstance(error, KafkaConnectionError) and "[SSL: " in str(error)


def describe_kafka_error(error: Exception, auth: KafkaAuth) -> str:
    """Describe why a Kafka call failed, with the likely fix for SASL and TLS rejections.

    Credentials are scrubbed out of the client's and the broker's text.
    """
    text = scrub(str(error), auth)
    if isinstance(error, AUTHENTICATION_ERRORS):
        mechanism = SASL_MECHANISMS.get(auth.sasl, auth.sasl)
        # kafka-python prefixes the broker's message with the error's class name.
        message = scrub(str(error.args[0]) if error.args else "", auth)
        message = message.removeprefix(f"{type(error).__name__}: ") or type(error).__name__
        return (
            f"SASL {mechanism} authentication failed: {message}; check the username and "
            "password of the trigger's authentication"
        )
    if is_tls_failure(error):
        reason = text[text.index("[SSL: ") :]
        if any(alert in reason for alert in _CLIENT_CERTIFICATE_REJECTED):
            hint = "the broker rejected the client certificate; check the trigger's cert and key"
        elif "CERTIFICATE_VERIFY_FAILED" in reason:
            hint = "the broker's certificate is not trusted; check the trigger's ca"
        else:
            hint = "check the trigger's tls, ca, cert and key"
        return f"TLS handshake failed: {reason}; {hint}"
    return text


# A random key per process, so the pool keys cannot be reversed to the credentials offline.
_CREDENTIALS_HASH_KEY = secrets.token_bytes(32)


def credentials_digest(auth: KafkaAuth) -> str:
    """Return a keyed hash of everything in `auth`, to key shared clients without secrets."""
    canonical = json.dumps([getattr(auth, item.name) for item in fields(auth)])
    digest = hashlib.blake2b(canonical.encode(), key=_CREDENTIALS_HASH_KEY, digest_size=16)
    return digest.hexdigest()


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


# --- shared admin clients -------------------------------------------------------------------


class _FailFastConnectionManager(KafkaConnectionManager):  # type: ignore[misc]
    """A connection manager that stops retrying a broker once it rejects the client.

    Works around two gaps of kafka-python 3.0.12 that turn a wrong password or an untrusted
    certificate into a bootstrap timeout ("Unable to bootstrap") without the reason:

    - The manager keeps the last authentication failure per broker and raises it from
      `get_connection`, but `_connect` records only failures that
      `KafkaConnection.initialize` raises, and `initialize` reports them through
      `init_future` instead. This class records SASL and TLS rejections from
      `init_future` in that cache, `_auth_failures`, after `_connect` is done.
    - A broker sends its SASL error response and closes the connection at once, and when
      both arrive in one read, the transport drops the response and reports only
      "socket disconnected". The transports built here deliver the bytes first and report
      the error on the next read of the closed socket.
    """

    async def _build_transport(self, node: Any, timeout_at: float | None = None) -> Any:
        transport = await super()._build_transport(node, timeout_at=timeout_at)
        receive = transport._sock_recv

        def receive_then_fail() -> tuple[bytes, Any]:
            data, error = receive()
            return (data, None) if data else (data, error)

        transport._sock_recv = receive_then_fail
        return transport

    async def _connect(self, node: Any, conn: Any, **options: Any) -> None:
        await super()._connect(node, conn, **options)
        error = conn.init_future.exception if conn.init_future.failed() else None
        if isinstance(error, AUTHENTICATION_ERRORS) or is_tls_failure(error):
            self._auth_failures[node.node_id] = error


class _NetClient(KafkaNetClient):  # type: ignore[misc]
    """kafka-python's network client with the fail-fast connection manager."""

    def __init__(self, **config: Any) -> None:
        net = NetworkSelector(**config)
        super().__init__(net=net, manager=_FailFastConnectionManager(net, **config), **config)


class _AdminClient(KafkaAdminClient):  # type: ignore[misc]
    """A KafkaAdminClient that fails fast on rejected credentials and cleans up after itself.

    kafka-python 3.0.12 starts the client's IO thread in `__init__` before the bootstrap and
    leaves it running when the bootstrap raises, so each failed poll of an unreachable
    broker would leak a thread. `_client` and `_net` are that version's private attributes.
    """

    def __init__(self, **config: Any) -> None:
        config.setdefault("kafka_client", _NetClient)
        try:
            super().__init__(**config)
        except BaseException:
            client = getattr(self, "_client", None)
            if client is not None:
                client.close()
            net = getattr(self, "_net", None)
            if net is not None:
                net.stop()
            raise


def build_admin_client(settings: KafkaSettings) -> Any:
    return _AdminClient(**admin_client_config(settings))


PoolKey = tuple[tuple[str, ...], str]


def pool_key(settings: KafkaSettings) -> PoolKey:
    """Key shared clients by the set of bootstrap servers and a hash of the credentials."""
    return tuple(sorted(set(settings.bootstrap_servers))), credentials_digest(settings.auth)


@dataclass
class _PoolEntry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: Any = None
    failed_at: float | None = None
    failure: str = ""


class KafkaAdminPool:
    """One admin client per (bootstrap servers, credentials), shared by every trigger.

    The pool lock guards only the entry table. Each entry has its own lock, held while its
    client is built, so an unreachable broker blocks only the triggers that name it. A
    failed build raises ScalerError. For `timeout_seconds` after it, calls for that entry
    fail at once with the same message instead of each waiting for the bootstrap timeout.

    Calls on a shared client are not serialised: kafka-python 3.0.12 runs a client's I/O
    on its own thread and documents its blocking calls as safe from several threads. A
    call that fails with a connection error closes the client, and the next call builds
    a new one, so a restarted broker is picked up without restarting the runner.
    """

    def __init__(
        self,
        *,
        client_factory: Callable[[KafkaSettings], Any] = build_admin_client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = client_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[PoolKey, _PoolEntry] = {}

    def call(self, settings: KafkaSettings, action: Callable[[Any], T]) -> T:
        """Run `action` with the shared client of these settings, building it if needed.

        Raise ScalerError when the client cannot be built, and whatever `action` raises.
        """
        key = pool_key(settings)
        client = self._client(key, settings)
        try:
            return action(client)
        except CONNECTION_ERRORS:
            self._discard(key, client)
            raise

    def _client(self, key: PoolKey, settings: KafkaSettings) -> Any:
        with self._lock:
            entry = self._entries.setdefault(key, _PoolEntry())
        with entry.lock:
            if entry.client is not None:
                return entry.client
            servers = ",".join(settings.bootstrap_servers)
            if entry.failed_at is not None:
                elapsed = self._clock() - entry.failed_at
                if elapsed < settings.timeout_seconds:
                    raise ScalerError(_connect_failure(servers, entry.failure, settings))
            try:
                entry.client = self._factory(settings)
            except (KafkaError, ScalerError) as error:
                entry.failed_at = self._clock()
                entry.failure = describe_kafka_error(error, settings.auth)
                raise ScalerError(_connect_failure(servers, entry.failure, settings)) from None
            entry.failed_at = None
            log.info("connected a shared Kafka admin client", extra=context(broker=servers))
            return entry.client

    def _discard(self, key: PoolKey, client: Any) -> None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            with entry.lock:
                if entry.client is client:
                    entry.client = None
        log.debug("closing a Kafka admin client after a connection error", exc_info=True)
        try:
            client.close()
        except KafkaError:
            log.debug("closing a failed Kafka admin client failed", exc_info=True)

    def size(self) -> int:
        """Return the number of connected clients."""
        with self._lock:
            entries = list(self._entries.values())
        return sum(entry.client is not None for entry in entries)

    def close(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.client is not None:
                entry.client.close()


def _connect_failure(servers: str, failure: str, settings: KafkaSettings) -> str:
    # The failed attempt and the polls that fail fast after it get the same message, so the
    # controller logs a failure once instead of each time the pool tries again.
    return (
        f"cannot connect to Kafka at {servers}: {failure}; retrying at most every "
        f"{settings.timeout_seconds:g}s"
    )


DEFAULT_POOL = KafkaAdminPool()


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
