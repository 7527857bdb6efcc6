"""The runner creating Jobs from Kafka lag read through SASL and TLS listeners.

Each test applies a Secret, a TriggerAuthentication that maps the Secret's keys to the kafka
trigger's auth parameters, and a ScaledJob whose trigger names the secured listener. Lag is
produced through the PLAINTEXT listener. The runner resolves the TriggerAuthentication from
its watch caches on every poll, so a rotated Secret takes effect without a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from tests.integration.kafka_auth_support import KafkaSecurity, load_kafka_security
from tests.integration.support import (
    RunnerProcess,
    ServerEnv,
    Topic,
    apply,
    jobs_of,
    scaled_job_manifest,
    wait_for,
)

pytestmark = pytest.mark.integration

MakeTopic = Callable[[int], Topic]
StartRunner = Callable[..., RunnerProcess]
# Builds (listener address, Secret data) of one listener type. Each Secret key is a parameter.
ListenerCase = Callable[[KafkaSecurity], tuple[str, dict[str, str]]]

LAG = 20
LAG_THRESHOLD = "10"
EXPECTED_JOBS = 2


@pytest.fixture(scope="session")
def security(servers: ServerEnv) -> KafkaSecurity:
    return load_kafka_security()


def secret_manifest(name: str, values: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "stringData": values,
    }


def authentication_manifest(name: str, secret: str, parameters: list[str]) -> dict[str, Any]:
    """A TriggerAuthentication that reads each parameter from the Secret key of that name."""
    return {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": name},
        "spec": {
            "secretTargetRef": [
                {"parameter": parameter, "name": secret, "key": parameter}
                for parameter in parameters
            ]
        },
    }


def apply_authenticated(
    servers: ServerEnv, namespace: str, topic: Topic, *, bootstrap: str, secret: dict[str, str]
) -> str:
    """Apply the Secret, TriggerAuthentication and ScaledJob; return the ScaledJob's name."""
    name = "secured"
    apply(servers, namespace, secret_manifest("kafka-credentials", secret))
    apply(
        servers,
        namespace,
        authentication_manifest("kafka-auth", "kafka-credentials", sorted(secret)),
    )
    manifest = scaled_job_manifest(
        name,
        topic,
        lag_threshold=LAG_THRESHOLD,
        extra_metadata={"bootstrapServers": bootstrap},
    )
    manifest["spec"]["triggers"][0]["authenticationRef"] = {"name": "kafka-auth"}
    apply(servers, namespace, manifest)
    return name


def ready_condition(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "jobrunner.dev", "v1alpha1", namespace, "scaledjobs", name
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def wait_not_ready(api: client.ApiClient, namespace: str, name: str, *, text: str) -> str:
    """Wait for Ready=False with `text` in its message, and return the message."""

    def message() -> str:
        condition = ready_condition(api, namespace, name)
        found = condition.get("status") == "False" and text in condition.get("message", "")
        return str(condition["message"]) if found else ""

    return str(wait_for(message, timeout=30, what=f"Ready=False with '{text}'"))


def wait_jobs(api: client.ApiClient, namespace: str, name: str) -> None:
    wait_for(
        lambda: len(jobs_of(api, namespace, name)) == EXPECTED_JOBS,
        timeout=40,
        what=f"{EXPECTED_JOBS} Jobs of ScaledJob {name}",
    )


# --- one listener type per test ---------------------------------------------------------------


def sasl_listener(sasl: str) -> ListenerCase:
    def build(security: KafkaSecurity) -> tuple[str, dict[str, str]]:
        username, password = security.user(sasl)
        return security.sasl, {"sasl": sasl, "username": username, "password": password}

    return build


def tls_listener(security: KafkaSecurity) -> tuple[str, dict[str, str]]:
    return security.tls, {"tls": "enable", "ca": security.pem("ca")}


def mtls_listener(security: KafkaSecurity) -> tuple[str, dict[str, str]]:
    return security.mtls, security.client_tls()


def mtls_encrypted_key_listener(security: KafkaSecurity) -> tuple[str, dict[str, str]]:
    secret = {
        **security.client_tls(),
        "key": security.pem("client_key_encrypted"),
        "keyPassword": security.credentials["client_key_password"],
    }
    return security.mtls, secret


def sasl_ssl_listener(security: KafkaSecurity) -> tuple[str, dict[str, str]]:
    username, password = security.user("scram_sha256")
    secret = {
        "sasl": "scram_sha256",
        "username": username,
        "password": password,
        "tls": "enable",
        "ca": security.pem("ca"),
    }
    return security.sasl_ssl, secret


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(sasl_listener("scram_sha256"), id="scram-sha-256"),
        pytest.param(sasl_listener("scram_sha512"), id="scram-sha-512"),
        pytest.param(sasl_listener("plaintext"), id="plain"),
        pytest.param(tls_listener, id="server-tls"),
        pytest.param(mtls_listener, id="mutual-tls"),
        pytest.param(mtls_encrypted_key_listener, id="mutual-tls-encrypted-key"),
        pytest.param(sasl_ssl_listener, id="sasl-ssl"),
    ],
)
def test_jobs_through_listener(
    servers: ServerEnv,
    api: client.ApiClient,
    namespace: str,
    make_topic: MakeTopic,
    start_runner: StartRunner,
    security: KafkaSecurity,
    case: ListenerCase,
) -> None:
    topic = make_topic(2)
    topic.produce(LAG)
    bootstrap, secret = case(security)
    start_runner(namespace)

    name = apply_authenticated(servers, namespace, topic, bootstrap=bootstrap, secret=secret)

    wait_jobs(api, namespace, name)
    wait_for(
        lambda: ready_condition(api, namespace, name).get("status") == "True",
        timeout=15,
        what="Ready=True",
    )


# --- rejected, then rotated -------------------------------------------------------------------


def test_wrong_password_then_rotated(
    servers: ServerEnv,
    api: client.ApiClient,
    namespace: str,
    make_topic: MakeTopic,
    start_runner: StartRunner,
    security: KafkaSecurity,
) -> None:
    topic = make_topic(2)
    topic.produce(LAG)
    username, password = security.user("scram_sha512")
    wrong = "wrong-password-a81f3c"
    secret = {"sasl": "scram_sha512", "username": username, "password": wrong}
    runner = start_runner(namespace)

    name = apply_authenticated(servers, namespace, topic, bootstrap=security.sasl, secret=secret)

    message = wait_not_ready(api, namespace, name, text="authentication failed")
    assert "SASL SCRAM-SHA-512" in message
    assert security.sasl in message
    assert wrong not in message
    assert jobs_of(api, namespace, name) == []

    apply(
        servers, namespace, secret_manifest("kafka-credentials", {**secret, "password": password})
    )

    wait_jobs(api, namespace, name)
    wait_for(
        lambda: ready_condition(api, namespace, name).get("status") == "True",
        timeout=15,
        what="Ready=True after the rotation",
    )
    assert runner.alive()
    assert password not in runner.log()
    assert wrong not in runner.log()


def test_untrusted_ca_then_rotated(
    servers: ServerEnv,
    api: client.ApiClient,
    namespace: str,
    make_topic: MakeTopic,
    start_runner: StartRunner,
    security: KafkaSecurity,
) -> None:
    topic = make_topic(2)
    topic.produce(LAG)
    secret = {"tls": "enable", "ca": security.pem("untrusted_ca")}
    runner = start_runner(namespace)

    name = apply_authenticated(servers, namespace, topic, bootstrap=security.tls, secret=secret)

    message = wait_not_ready(api, namespace, name, text="TLS handshake failed")
    assert "check the trigger's ca" in message
    assert jobs_of(api, namespace, name) == []

    apply(
        servers,
        namespace,
        secret_manifest("kafka-credentials", {**secret, "ca": security.pem("ca")}),
    )

    wait_jobs(api, namespace, name)
    assert runner.alive()


def test_missing_client_certificate(
    servers: ServerEnv,
    api: client.ApiClient,
    namespace: str,
    make_topic: MakeTopic,
    start_runner: StartRunner,
    security: KafkaSecurity,
) -> None:
    topic = make_topic(2)
    topic.produce(LAG)
    start_runner(namespace)
    secret = {"tls": "enable", "ca": security.pem("ca")}

    name = apply_authenticated(servers, namespace, topic, bootstrap=security.mtls, secret=secret)

    message = wait_not_ready(api, namespace, name, text="rejected the client certificate")
    assert "check the trigger's cert and key" in message
    assert jobs_of(api, namespace, name) == []
