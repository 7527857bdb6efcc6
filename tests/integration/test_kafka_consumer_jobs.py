"""The Kafka example's ScaledJob with its real consumer drains a topic on the process node.

Each Job's pod runs examples/kafka-scaledjob/consumer.py, which commits up to 10 messages, so
the lag that makes the runner create Jobs is the lag those Jobs consume.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, OffsetSpec
from kubernetes import client

from tests.integration.support import (
    ServerEnv,
    Topic,
    apply,
    jobs_of,
    unfinished,
    wait_for,
)
from tests.integration.test_process_node import process_node  # noqa: F401 - a fixture

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("process_node")]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kafka-scaledjob"
PRINTED_MESSAGE = re.compile(r"^\S+\[\d+\]@\d+: (.*)$")
POLLING_INTERVAL = 2  # seconds, as scaledjob-process.yaml sets


def process_scaled_job(topic: Topic) -> dict[str, Any]:
    """The example's ScaledJob with its path placeholders filled in, pointed at `topic`."""
    text = (EXAMPLE / "scaledjob-process.yaml").read_text()
    text = text.replace("__PYTHON__", sys.executable)
    text = text.replace("__CONSUMER__", str(EXAMPLE / "consumer.py"))
    manifest = yaml.safe_load(text)
    manifest["spec"]["triggers"][0]["metadata"].update(topic=topic.name, consumerGroup=topic.group)
    container = manifest["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]
    values = {
        "KAFKA_BROKERS": topic.bootstrap,
        "KAFKA_TOPIC": topic.name,
        "KAFKA_GROUP": topic.group,
    }
    for variable in container["env"]:
        variable["value"] = values.get(variable["name"], variable["value"])
    return manifest


class LagProbe:
    """The consumer group's lag on the topic, from committed offsets and end offsets."""

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.admin = KafkaAdminClient(bootstrap_servers=topic.bootstrap, client_id="lag-probe")
        self.partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]

    def lag(self) -> int:
        ends = self.admin.list_partition_offsets({p: OffsetSpec.LATEST for p in self.partitions})
        groups = self.admin.list_group_offsets({self.topic.group: self.partitions})
        committed = groups.get(self.topic.group, {})
        # A partition without a committed offset (-1 or absent) counts from its start.
        return sum(
            ends[p].offset - max(committed[p].offset if p in committed else 0, 0)
            for p in self.partitions
        )

    def close(self) -> None:
        self.admin.close()


def test_consumer_jobs_drain_topic(
    servers: ServerEnv, api, namespace, make_topic, start_runner, capsys
) -> None:
    topic = make_topic(5)
    topic.produce(100)
    start_runner(namespace)
    apply(servers, namespace, process_scaled_job(topic))
    probe = LagProbe(topic)
    started = time.monotonic()
    max_unfinished = 0

    def drained() -> bool:
        nonlocal max_unfinished
        max_unfinished = max(max_unfinished, len(unfinished(jobs_of(api, namespace, "orders"))))
        return probe.lag() == 0

    try:
        wait_for(drained, timeout=240, interval=1, what="the consumer Jobs to drain the topic")
    finally:
        probe.close()
    drained_after = time.monotonic() - started
    wait_for(
        lambda: not unfinished(jobs_of(api, namespace, "orders")),
        timeout=60,
        what="every consumer Job to finish",
    )

    # No lag is left, so later polls create no Job.
    jobs = jobs_of(api, namespace, "orders")
    quiet_until = time.monotonic() + 4 * POLLING_INTERVAL
    while time.monotonic() < quiet_until:
        assert len(jobs_of(api, namespace, "orders")) == len(jobs), "a Job after the lag was 0"
        time.sleep(0.5)
    with capsys.disabled():
        print(f"\n[measured] {len(jobs)} Jobs drained 100 messages in {drained_after:.0f}s")

    assert len(jobs) >= 10  # each Job commits at most 10 of the 100 messages
    assert max_unfinished <= 5
    core = client.CoreV1Api(api)
    printed: set[str] = set()
    for job in jobs:
        assert job.status.succeeded == 1, f"Job {job.metadata.name} did not succeed"
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job.metadata.name}")
        for pod in pods.items:
            (status,) = pod.status.container_statuses
            assert status.state.terminated.exit_code == 0, pod.metadata.name
            output = servers.kubectl_run("logs", "-n", namespace, pod.metadata.name)
            printed.update(m[1] for m in map(PRINTED_MESSAGE.match, output.splitlines()) if m)
    assert printed == {f"m{number}" for number in range(100)}
