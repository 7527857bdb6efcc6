"""The pulsar trigger against the real standalone brokers of tests/env, and Jobs from a backlog."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from kubernetes import client

from jobrunner.errors import ScalerError
from jobrunner.scalers.base import Measurement
from jobrunner.scalers.metadata import TriggerInput
from jobrunner.scalers.pulsar import PulsarClientPool, PulsarScaler
from jobrunner.scalers.pulsar_settings import parse_pulsar_settings
from tests.integration.conftest import PulsarEnv, PulsarTopic
from tests.integration.support import (
    ServerEnv,
    Topic,
    apply,
    jobs_of,
    scaled_job_manifest,
    unfinished,
    wait_for,
)

pytestmark = pytest.mark.integration

SUBSCRIPTION = "workers"
MakeTopic = Callable[..., PulsarTopic]


def scaler_for(
    topic: PulsarTopic,
    *,
    admin_url: str | None = None,
    metadata: Mapping[str, str] | None = None,
    auth: Mapping[str, str] | None = None,
    pool: PulsarClientPool | None = None,
) -> PulsarScaler:
    trigger_metadata = {
        "adminURL": admin_url or topic.broker.admin_url,
        "topic": topic.name,
        "subscription": SUBSCRIPTION,
        "isPartitionedTopic": "true" if topic.partitions else "false",
        **(metadata or {}),
    }
    source = TriggerInput(
        subject="ScaledJob it/pulsar",
        path="spec.triggers[0]",
        metadata=trigger_metadata,
        auth_params=auth or {},
    )
    return PulsarScaler(parse_pulsar_settings(source), pool=pool or PulsarClientPool())


def measure_error(scaler: PulsarScaler) -> str:
    with pytest.raises(ScalerError) as caught:
        scaler.measure()
    return str(caught.value)


def free_port() -> int:
    """Return a loopback port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_backlog(scaler: PulsarScaler, expected: int) -> Measurement:
    """Poll until the broker's stats show the backlog; stats can lag a send by a moment."""
    measurements: list[Measurement] = []

    def reached() -> bool:
        measurements.append(scaler.measure())
        return measurements[-1].queue_length == expected

    wait_for(reached, timeout=15, what=f"a backlog of {expected}")
    return measurements[-1]


def token_signed_with_another_key(subject: str) -> str:
    """Return a well-formed HS256 JWT that the token-auth broker's key did not sign."""

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = encode(json.dumps({"alg": "HS256"}).encode())
    payload = encode(json.dumps({"sub": subject}).encode())
    signature = hmac.new(secrets.token_bytes(32), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{encode(signature.digest())}"


# --- backlog ------------------------------------------------------------------------------


def test_backlog_non_partitioned_topic(make_pulsar_topic: MakeTopic) -> None:
    topic = make_pulsar_topic()
    topic.subscribe(SUBSCRIPTION)
    topic.produce(7)
    pool = PulsarClientPool()

    measurement = wait_for_backlog(scaler_for(topic, pool=pool), 7)
    at_activation = scaler_for(
        topic, metadata={"activationMsgBacklogThreshold": "7"}, pool=pool
    ).measure()

    assert measurement.target == 10.0
    assert measurement.active is True
    assert measurement.details["msgBacklog"] == 7
    assert at_activation.queue_length == 7.0
    assert at_activation.active is False
    assert pool.size() == 1


def test_backlog_partitioned_topic(make_pulsar_topic: MakeTopic) -> None:
    topic = make_pulsar_topic(partitions=4)
    topic.subscribe(SUBSCRIPTION)
    topic.produce(10)

    measurement = wait_for_backlog(scaler_for(topic), 10)

    assert measurement.active is True
    assert measurement.details == {"msgBacklog": 10, "partitioned": True}


def test_backlog_empty_subscription_inactive(make_pulsar_topic: MakeTopic) -> None:
    topic = make_pulsar_topic()
    topic.subscribe(SUBSCRIPTION)

    measurement = scaler_for(topic).measure()

    assert measurement.queue_length == 0.0
    assert measurement.active is False


# --- errors -------------------------------------------------------------------------------


def test_missing_subscription_error(make_pulsar_topic: MakeTopic) -> None:
    topic = make_pulsar_topic()
    topic.produce(3)

    message = measure_error(scaler_for(topic))

    assert message == (
        f"subscription {SUBSCRIPTION} not found on topic {topic.name} at the Pulsar admin API "
        f"at {topic.broker.admin_url}; a consumer creates it when it subscribes"
    )


def test_missing_topic_error(pulsar: PulsarEnv) -> None:
    topic = PulsarTopic("persistent://public/default/never-created", 0, pulsar.plain)

    message = measure_error(scaler_for(topic))

    assert message == (
        f"topic {topic.name} not found at the Pulsar admin API at {pulsar.plain.admin_url} "
        "(HTTP 404); create it, or set isPartitionedTopic to true if it is a partitioned topic"
    )


def test_partitioned_flag_mismatch_error(make_pulsar_topic: MakeTopic) -> None:
    topic = make_pulsar_topic(partitions=4)
    topic.subscribe(SUBSCRIPTION)

    message = measure_error(scaler_for(topic, metadata={"isPartitionedTopic": "false"}))

    assert message.endswith(
        "(HTTP 404); create it, or set isPartitionedTopic to true if it is a partitioned topic"
    )


def test_missing_namespace_error(pulsar: PulsarEnv) -> None:
    topic = PulsarTopic("persistent://public/no-such-namespace/t", 0, pulsar.plain)

    message = measure_error(scaler_for(topic))

    assert message.startswith(
        "namespace public/no-such-namespace of topic persistent://public/no-such-namespace/t "
        "not found"
    )


def test_unreachable_broker_error(pulsar: PulsarEnv) -> None:
    admin_url = f"http://127.0.0.1:{free_port()}"
    topic = PulsarTopic("persistent://public/default/orders", 0, pulsar.plain)

    started = time.monotonic()
    message = measure_error(scaler_for(topic, admin_url=admin_url))

    assert message.startswith(
        f"cannot connect to the Pulsar admin API at {admin_url} to read topic {topic.name}: "
    )
    assert "Connection refused" in message
    assert time.monotonic() - started < 5


# --- token authentication -----------------------------------------------------------------


def token_topic(make_pulsar_topic: MakeTopic, pulsar: PulsarEnv) -> PulsarTopic:
    topic = make_pulsar_topic(broker=pulsar.token_auth)
    topic.subscribe(SUBSCRIPTION)
    topic.produce(5)
    return topic


def test_bearer_token_accepted(make_pulsar_topic: MakeTopic, pulsar: PulsarEnv) -> None:
    topic = token_topic(make_pulsar_topic, pulsar)
    assert pulsar.token_auth.token

    scaler = scaler_for(
        topic, metadata={"authModes": "bearer"}, auth={"bearerToken": pulsar.token_auth.token}
    )

    assert wait_for_backlog(scaler, 5).active is True


def test_wrong_bearer_token_rejected(make_pulsar_topic: MakeTopic, pulsar: PulsarEnv) -> None:
    topic = token_topic(make_pulsar_topic, pulsar)
    wrong_token = token_signed_with_another_key("jobrunner-admin")

    message = measure_error(
        scaler_for(topic, metadata={"authModes": "bearer"}, auth={"bearerToken": wrong_token})
    )
    anonymous = measure_error(scaler_for(topic))

    assert message == (
        f"the Pulsar admin API at {pulsar.token_auth.admin_url} rejected the credentials for "
        f"topic {topic.name} (HTTP 401 Unauthorized); check authModes and the token or "
        "password of the trigger's authentication"
    )
    assert wrong_token not in message
    assert "(HTTP 401 Unauthorized), and the trigger sends no credentials" in anonymous


# --- Jobs from a backlog ------------------------------------------------------------------


def pulsar_scaled_job(name: str, topic: PulsarTopic, *, max_replicas: int) -> dict[str, Any]:
    """A ScaledJob with one pulsar trigger whose pods stay Running until released."""
    placeholder = Topic(topic.name, SUBSCRIPTION, max(topic.partitions, 1), "unused:9092")
    manifest = scaled_job_manifest(name, placeholder, max_replicas=max_replicas)
    manifest["spec"]["triggers"] = [
        {
            "type": "pulsar",
            "metadata": {
                "adminURL": topic.broker.admin_url,
                "topic": topic.name,
                "subscription": SUBSCRIPTION,
                "msgBacklogThreshold": "10",
                "isPartitionedTopic": "true" if topic.partitions else "false",
            },
        }
    ]
    return manifest


def stays(condition: Callable[[], bool], *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.25)
    return True


def test_backlog_creates_jobs(
    servers: ServerEnv,
    api: client.ApiClient,
    namespace: str,
    make_pulsar_topic: MakeTopic,
    start_runner: Callable[..., Any],
) -> None:
    topic = make_pulsar_topic(partitions=4)
    topic.subscribe(SUBSCRIPTION)
    runner = start_runner(namespace)
    apply(servers, namespace, pulsar_scaled_job("backlog", topic, max_replicas=5))
    wait_for(lambda: "polling every 1s" in runner.log(), timeout=30, what="the first poll")
    assert stays(lambda: not jobs_of(api, namespace, "backlog"), seconds=2.5), (
        "Jobs without backlog"
    )

    # A backlog of 25 with msgBacklogThreshold 10 gives ceil(2.5) = 3 Jobs.
    topic.produce(25)
    wait_for(lambda: len(jobs_of(api, namespace, "backlog")) >= 3, timeout=20, what="3 Jobs")

    # The three unfinished Jobs cover the backlog, so later polls add none.
    assert stays(lambda: len(jobs_of(api, namespace, "backlog")) == 3, seconds=3.5)
    assert len(unfinished(jobs_of(api, namespace, "backlog"))) == 3
    assert runner.alive()


def test_token_from_secret_drives_runner(
    servers: ServerEnv,
    api: client.ApiClient,
    namespace: str,
    make_pulsar_topic: MakeTopic,
    pulsar: PulsarEnv,
    start_runner: Callable[..., Any],
) -> None:
    topic = token_topic(make_pulsar_topic, pulsar)
    core = client.CoreV1Api(api)
    wrong_token = token_signed_with_another_key("jobrunner-admin")
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "pulsar-token"}, "stringData": {"token": wrong_token}}
    )
    apply(
        servers,
        namespace,
        {
            "apiVersion": "jobrunner.dev/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "pulsar-auth"},
            "spec": {
                "secretTargetRef": [
                    {"parameter": "bearerToken", "name": "pulsar-token", "key": "token"}
                ]
            },
        },
    )
    manifest = pulsar_scaled_job("tokened", topic, max_replicas=2)
    trigger = manifest["spec"]["triggers"][0]
    trigger["metadata"]["authModes"] = "bearer"
    trigger["authenticationRef"] = {"name": "pulsar-auth"}
    runner = start_runner(namespace)
    apply(servers, namespace, manifest)

    # The wrong token is rejected: no Jobs, and Ready=False says why.
    wait_for(lambda: "HTTP 401" in runner.log(), timeout=30, what="a rejected token")
    assert jobs_of(api, namespace, "tokened") == []
    assert wrong_token not in runner.log()

    # The right token, put in the same Secret, is used from a later poll on.
    core.replace_namespaced_secret(
        "pulsar-token",
        namespace,
        {"metadata": {"name": "pulsar-token"}, "stringData": {"token": pulsar.token_auth.token}},
    )
    wait_for(
        lambda: len(jobs_of(api, namespace, "tokened")) == 1,
        timeout=30,
        what="a Job once the Secret holds the right token",
    )
    assert pulsar.token_auth.token not in runner.log()
