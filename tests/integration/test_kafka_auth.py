"""KafkaScaler through the broker's SASL and TLS listeners, with settings from auth parameters.

Each test parses a trigger with `parse_kafka_settings`, as the runner does, so the auth
parameters take the same path from a TriggerAuthentication to the admin client. Lag is
produced and committed through the PLAINTEXT listener and measured through the secured one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from jobrunner.errors import ScalerError
from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.kafka_client import KafkaAdminPool
from jobrunner.scalers.kafka_settings import parse_kafka_settings
from jobrunner.scalers.metadata import TriggerInput
from tests.integration.kafka_auth_support import (
    KafkaSecurity,
    ScramUsers,
    commit_offsets,
    load_kafka_security,
)
from tests.integration.support import ServerEnv, Topic

pytestmark = pytest.mark.integration

MakeTopic = Callable[[int], Topic]
AuthCase = Callable[[KafkaSecurity], tuple[str, dict[str, str], dict[str, str]]]


@pytest.fixture(scope="session")
def security(servers: ServerEnv) -> KafkaSecurity:
    return load_kafka_security()


@pytest.fixture
def scram_users(security: KafkaSecurity) -> Iterator[ScramUsers]:
    users = ScramUsers(security.plaintext)
    yield users
    users.close()


@pytest.fixture
def topic(make_topic: MakeTopic) -> Topic:
    """A topic with 4 messages on partition 0 and 3 on partition 1, 2 of each consumed."""
    topic = make_topic(2)
    topic.produce(7)  # round robin: partition 0 gets 4, partition 1 gets 3
    commit_offsets(topic.bootstrap, topic.group, topic.name, {0: 2, 1: 2})
    return topic


EXPECTED_LAG = 3  # (4 - 2) + (3 - 2)


def make_scaler(
    bootstrap: str,
    topic: Topic,
    auth: dict[str, str],
    *,
    metadata: dict[str, str] | None = None,
    pool: KafkaAdminPool | None = None,
) -> KafkaScaler:
    settings = parse_kafka_settings(
        TriggerInput(
            subject="ScaledJob tests/auth",
            path="spec.triggers[0]",
            metadata={
                "bootstrapServers": bootstrap,
                "consumerGroup": topic.group,
                "topic": topic.name,
                **(metadata or {}),
            },
            auth_params=auth,
        )
    )
    # A pool of its own by default, so no client built by an earlier test is reused.
    return KafkaScaler(settings, pool=pool or KafkaAdminPool())


def measure_error(scaler: KafkaScaler) -> str:
    """Measure and return the ScalerError's message; fail if a measurement comes back."""
    try:
        with pytest.raises(ScalerError) as raised:
            scaler.measure()
    finally:
        scaler.pool.close()
    return str(raised.value)


# --- listeners that accept the client ---------------------------------------------------------


def sasl_case(sasl: str) -> AuthCase:
    def build(security: KafkaSecurity) -> tuple[str, dict[str, str], dict[str, str]]:
        username, password = security.user(sasl)
        return security.sasl, {"sasl": sasl, "username": username, "password": password}, {}

    return build


def tls_case(security: KafkaSecurity) -> tuple[str, dict[str, str], dict[str, str]]:
    return security.tls, {"tls": "enable", "ca": security.pem("ca")}, {}


def mtls_case(security: KafkaSecurity) -> tuple[str, dict[str, str], dict[str, str]]:
    return security.mtls, security.client_tls(), {}


def mtls_encrypted_key_case(security: KafkaSecurity) -> tuple[str, dict[str, str], dict[str, str]]:
    auth = {
        **security.client_tls(),
        "key": security.pem("client_key_encrypted"),
        "keyPassword": security.credentials["client_key_password"],
    }
    return security.mtls, auth, {}


def sasl_ssl_case(security: KafkaSecurity) -> tuple[str, dict[str, str], dict[str, str]]:
    username, password = security.user("scram_sha512")
    auth = {
        "sasl": "scram_sha512",
        "username": username,
        "password": password,
        "tls": "enable",
        "ca": security.pem("ca"),
    }
    return security.sasl_ssl, auth, {}


def metadata_modes_case(security: KafkaSecurity) -> tuple[str, dict[str, str], dict[str, str]]:
    """`sasl` and `tls` in trigger metadata, credentials and CA in auth parameters."""
    username, password = security.user("scram_sha256")
    auth = {"username": username, "password": password, "ca": security.pem("ca")}
    return security.sasl_ssl, auth, {"sasl": "scram_sha256", "tls": "enable"}


def unsafe_ssl_case(security: KafkaSecurity) -> tuple[str, dict[str, str], dict[str, str]]:
    """unsafeSsl skips verification, so even a CA that did not sign the broker works."""
    auth = {"tls": "enable", "ca": security.pem("untrusted_ca")}
    return security.tls, auth, {"unsafeSsl": "true"}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(sasl_case("scram_sha256"), id="scram-sha-256"),
        pytest.param(sasl_case("scram_sha512"), id="scram-sha-512"),
        pytest.param(sasl_case("plaintext"), id="plain"),
        pytest.param(tls_case, id="server-tls"),
        pytest.param(mtls_case, id="mutual-tls"),
        pytest.param(mtls_encrypted_key_case, id="mutual-tls-encrypted-key"),
        pytest.param(sasl_ssl_case, id="sasl-ssl"),
        pytest.param(metadata_modes_case, id="modes-from-metadata"),
        pytest.param(unsafe_ssl_case, id="unsafe-ssl"),
    ],
)
def test_lag_through_listener(security: KafkaSecurity, topic: Topic, case: AuthCase) -> None:
    bootstrap, auth, metadata = case(security)
    scaler = make_scaler(bootstrap, topic, auth, metadata=metadata)
    try:
        measurement = scaler.measure()
    finally:
        scaler.pool.close()

    assert measurement.queue_length == EXPECTED_LAG
    assert measurement.details["partitions"] == 2
    assert measurement.active


def test_second_poll_reuses_client(security: KafkaSecurity, topic: Topic) -> None:
    username, password = security.user("scram_sha512")
    auth = {"sasl": "scram_sha512", "username": username, "password": password}
    scaler = make_scaler(security.sasl, topic, auth)
    try:
        first = scaler.measure()
        topic.produce(2)
        second = scaler.measure()
        pool_size = scaler.pool.size()
    finally:
        scaler.pool.close()

    assert first.queue_length == EXPECTED_LAG
    assert second.queue_length == EXPECTED_LAG + 2
    assert pool_size == 1


# --- rejected credentials ---------------------------------------------------------------------


@pytest.mark.parametrize("sasl", ["scram_sha256", "scram_sha512", "plaintext"])
def test_wrong_password_fails_clearly(security: KafkaSecurity, topic: Topic, sasl: str) -> None:
    username, _ = security.user(sasl)
    wrong = "wrong-password-5f1c9a"
    scaler = make_scaler(
        security.sasl, topic, {"sasl": sasl, "username": username, "password": wrong}
    )

    message = measure_error(scaler)

    mechanism = {"scram_sha256": "SCRAM-SHA-256", "scram_sha512": "SCRAM-SHA-512"}
    assert f"SASL {mechanism.get(sasl, 'PLAIN')} authentication failed" in message
    assert security.sasl in message
    assert "check the username and password" in message
    assert wrong not in message
    assert username not in message
    # The bootstrap stops at the broker's rejection instead of running into its timeout.
    assert "Unable to bootstrap" not in message


def test_unknown_user_fails_clearly(security: KafkaSecurity, topic: Topic) -> None:
    auth = {"sasl": "scram_sha256", "username": "nobody-7d2e", "password": "secret-7d2e"}
    message = measure_error(make_scaler(security.sasl, topic, auth))

    assert "SASL SCRAM-SHA-256 authentication failed" in message
    assert "secret-7d2e" not in message
    assert "nobody-7d2e" not in message


def test_other_mechanism_fails(security: KafkaSecurity, topic: Topic) -> None:
    """A user with SCRAM-SHA-512 credentials only cannot log in with SCRAM-SHA-256."""
    username, password = security.user("scram_sha512")
    auth = {"sasl": "scram_sha256", "username": username, "password": password}
    message = measure_error(make_scaler(security.sasl, topic, auth))

    assert "SASL SCRAM-SHA-256 authentication failed" in message
    assert password not in message


def test_repeated_failure_hides_password(
    security: KafkaSecurity, topic: Topic, scram_users: ScramUsers
) -> None:
    """The pool's cached failure, returned on the next poll, is scrubbed too."""
    username, password = scram_users.create()
    auth = {"sasl": "scram_sha256", "username": username, "password": password + "-old"}
    scaler = make_scaler(security.sasl, topic, auth)
    try:
        with pytest.raises(ScalerError) as first:
            scaler.measure()
        with pytest.raises(ScalerError) as second:
            scaler.measure()
    finally:
        scaler.pool.close()

    assert "authentication failed" in str(first.value)
    # The poll that fails fast repeats the message, so the runner logs the failure once.
    assert str(second.value) == str(first.value)
    for message in (str(first.value), str(second.value)):
        assert password not in message
        assert username not in message


def test_changed_password_needs_new_settings(
    security: KafkaSecurity, topic: Topic, scram_users: ScramUsers
) -> None:
    """After the broker's password changes, a scaler with the new password measures again."""
    username, password = scram_users.create("SCRAM-SHA-512")
    auth = {"sasl": "scram_sha512", "username": username, "password": password}
    pool = KafkaAdminPool()
    try:
        old = make_scaler(security.sasl, topic, auth, pool=pool)
        assert old.measure().queue_length == EXPECTED_LAG

        new_password = password + "-rotated"
        scram_users.set_password(username, new_password, "SCRAM-SHA-512")
        rotated = {**auth, "password": new_password}
        measured = make_scaler(security.sasl, topic, rotated, pool=pool).measure()
    finally:
        pool.close()

    assert measured.queue_length == EXPECTED_LAG


# --- rejected TLS -----------------------------------------------------------------------------


def test_untrusted_ca_fails_clearly(security: KafkaSecurity, topic: Topic) -> None:
    scaler = make_scaler(security.tls, topic, {"tls": "enable", "ca": security.pem("untrusted_ca")})

    message = measure_error(scaler)

    assert "TLS handshake failed" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "check the trigger's ca" in message
    assert security.tls in message
    assert "Unable to bootstrap" not in message


def test_default_trust_store_rejects_test_ca(security: KafkaSecurity, topic: Topic) -> None:
    """Without `ca` the system's CAs are used, and none of them signed the test broker."""
    message = measure_error(make_scaler(security.tls, topic, {"tls": "enable"}))

    assert "CERTIFICATE_VERIFY_FAILED" in message


def test_mutual_tls_without_certificate(security: KafkaSecurity, topic: Topic) -> None:
    scaler = make_scaler(security.mtls, topic, {"tls": "enable", "ca": security.pem("ca")})

    message = measure_error(scaler)

    assert "TLS handshake failed" in message
    assert "the broker rejected the client certificate" in message
    assert security.mtls in message


def test_wrong_key_password_fails(security: KafkaSecurity, topic: Topic) -> None:
    auth = {
        **security.client_tls(),
        "key": security.pem("client_key_encrypted"),
        "keyPassword": "not-the-key-password-41b7",
    }
    message = measure_error(make_scaler(security.mtls, topic, auth))

    assert "cannot load the TLS client certificate" in message
    assert "not-the-key-password-41b7" not in message
    assert "PRIVATE KEY" not in message
