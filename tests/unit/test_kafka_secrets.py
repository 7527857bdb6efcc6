"""Credentials of a kafka trigger never reach a repr, an error message or a log record."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest
from kafka.errors import KafkaError

from jobrunner.errors import InvalidSpecError, ScalerError
from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.kafka_client import KafkaAdminPool, admin_client_config, pool_key
from jobrunner.scalers.kafka_settings import KafkaSettings, parse_kafka_settings
from jobrunner.scalers.metadata import TriggerInput

SECRET = "fixture-secret-7Hq2xv"
METADATA = {"bootstrapServers": "127.0.0.1:1", "consumerGroup": "workers", "topic": "orders"}
AUTH = {
    "sasl": "scram_sha512",
    "username": f"user-{SECRET}",
    "password": SECRET,
    "keyPassword": SECRET,
}
OAUTH = {
    "sasl": "oauthbearer",
    "username": f"client-{SECRET}",
    "password": SECRET,
    "oauthTokenEndpointUri": f"https://idp.example/token?key={SECRET}",
    "oauthExtensions": f"token={SECRET}",
}


def source(auth: dict[str, str], metadata: dict[str, str] | None = None) -> TriggerInput:
    return TriggerInput(
        subject="ScaledJob default/orders",
        path="spec.triggers[0]",
        metadata={**METADATA, **(metadata or {})},
        auth_params=auth,
    )


def parse(auth: dict[str, str]) -> KafkaSettings:
    return parse_kafka_settings(source(auth))


@pytest.mark.parametrize("auth", [AUTH, OAUTH], ids=["scram", "oauthbearer"])
def test_repr_hides_credentials(auth: dict[str, str]) -> None:
    settings = parse(auth)

    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert "password=<set>" in repr(settings)
    assert SECRET not in repr(pool_key(settings))


def test_token_provider_repr_hides_credentials() -> None:
    provider = admin_client_config(parse(OAUTH))["sasl_oauth_token_provider"]

    assert SECRET not in repr(provider)


@pytest.mark.parametrize(
    "name",
    [
        "sasl",
        "tls",
        "saslTokenProvider",
        "oauthTokenEndpointUri",
        "oauthExtensions",
        "ca",
        "cert",
        "key",
    ],
)
def test_errors_never_contain_credentials(name: str) -> None:
    auth = {**OAUTH, "tls": "enable", "cert": "-----BEGIN CERTIFICATE-----", name: SECRET}

    with pytest.raises(InvalidSpecError) as caught:
        parse_kafka_settings(source(auth, {"lagThreshold": SECRET}))

    assert len(caught.value.problems) >= 2
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.problems)


def test_metadata_secret_not_in_error() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_kafka_settings(source({}, {"sasl": SECRET, "unsafeSsl": SECRET}))

    assert SECRET not in str(caught.value)


def test_connection_failure_hides_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = replace(parse(AUTH), timeout_seconds=0.5)
    pool = KafkaAdminPool()
    scaler = KafkaScaler(settings, pool=pool)

    errors = []
    for _ in range(2):
        with pytest.raises(ScalerError) as caught:
            scaler.measure()
        errors.append(str(caught.value))
    pool.close()

    config_lines = [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("Starting KafkaAdminClient")
    ]
    assert config_lines, "kafka-python no longer logs its configuration; update this test"
    assert "<hidden>" in config_lines[0]
    for record in caplog.records:
        assert SECRET not in record.getMessage(), record.name
    for message in errors:
        assert "127.0.0.1:1" in message
        assert SECRET not in message


class RaisingPool(KafkaAdminPool):
    """A pool whose client fails with a message that quotes a credential."""

    def call(self, settings: KafkaSettings, action: Any) -> Any:
        raise KafkaError(f"authentication failed for user-{SECRET}")


def test_third_party_message_scrubbed() -> None:
    scaler = KafkaScaler(parse(AUTH), pool=RaisingPool())

    with pytest.raises(ScalerError) as caught:
        scaler.measure()

    assert SECRET not in str(caught.value)
    assert "authentication failed for <hidden>" in str(caught.value)
    assert caught.value.__cause__ is None
