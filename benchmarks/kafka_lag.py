"""Measure the cost of one kafka trigger's poll on the test broker.

Creates a 1,000-partition and a 10-partition topic, commits an offset on every partition,
and times `KafkaScaler.measure()` over many polls. Broker requests are counted by wrapping
kafka-python's `KafkaConnection.send_request`, which every request of every client passes
through. Finally 50 triggers with their own consumer groups poll through one pool, and the
script counts the pool's clients and this process's TCP connections to the broker.

It prints its figures and asserts nothing. The topics and groups it makes are deleted at the
end. Run it with the servers of tests/env up:

    .venv/bin/python benchmarks/kafka_lag.py [--polls 200] [--bootstrap 127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.net.connection import KafkaConnection
from kafka.structs import OffsetAndMetadata

from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.kafka_client import KafkaAdminPool
from jobrunner.scalers.kafka_settings import KafkaSettings

MESSAGES_PER_PARTITION = 3
COMMITTED_OFFSET = 1
SHARED_TRIGGERS = 50
WARM_UP_POLLS = 3

SENT: Counter[str] = Counter()


def count_requests() -> None:
    """Count every request kafka-python sends, by request type."""
    send_request = KafkaConnection.send_request

    def counting(self: KafkaConnection, request: Any, **kwargs: Any) -> Any:
        SENT[type(request).__name__] += 1
        return send_request(self, request, **kwargs)

    KafkaConnection.send_request = counting


def default_bootstrap() -> str:
    if "JOBRUNNER_TEST_KAFKA" in os.environ:
        return os.environ["JOBRUNNER_TEST_KAFKA"]
    env_file = Path(os.environ.get("JOBRUNNER_ENV_DIR", "/tmp/jobrunner-env")) / "env"
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key == "JOBRUNNER_TEST_KAFKA":
            return shlex.split(value)[0]
    raise SystemExit(f"JOBRUNNER_TEST_KAFKA is missing from {env_file}: run tests/env/up first")


def broker_connections(port: int) -> int:
    """Count this process's established TCP connections to `port`, from /proc (Linux)."""
    inodes = set()
    for descriptor in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            columns = row.split()
            remote_port = int(columns[2].rsplit(":", 1)[1], 16)
            established = columns[3] == "01"
            if established and remote_port == port and columns[9] in inodes:
                count += 1
    return count


@dataclass
class Workload:
    topic: str
    group: str
    partitions: int


@contextmanager
def workloads(bootstrap: str, sizes: list[int]) -> Iterator[list[Workload]]:
    """Create one topic per size with committed offsets, and delete topics and groups after."""
    suffix = uuid.uuid4().hex[:8]
    created = [
        Workload(f"bench-{suffix}-p{size}", f"bench-{suffix}-g{size}", size) for size in sizes
    ]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="benchmark")
    admin.create_topics([NewTopic(item.topic, item.partitions, 1) for item in created])
    groups = [item.group for item in created]
    try:
        admin.wait_for_topics([item.topic for item in created], timeout_ms=120_000)
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        for item in created:
            for partition in range(item.partitions):
                for number in range(MESSAGES_PER_PARTITION):
                    producer.send(item.topic, value=b"m%d" % number, partition=partition)
        producer.flush()
        producer.close()
        for item in created:
            offsets = {
                TopicPartition(item.topic, partition): OffsetAndMetadata(COMMITTED_OFFSET, "", -1)
                for partition in range(item.partitions)
            }
            admin.alter_group_offsets(item.group, offsets)
        yield created
    finally:
        admin.delete_topics([item.topic for item in created])
        admin.delete_groups(groups)
        admin.close()


def settings_for(bootstrap: str, workload: Workload, group: str | None = None) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=(bootstrap,),
        consumer_group=group or workload.group,
        topic=workload.topic,
        allow_idle_consumers=True,
    )


def time_polls(bootstrap: str, workload: Workload, polls: int) -> None:
    pool = KafkaAdminPool()
    scaler = KafkaScaler(settings_for(bootstrap, workload), pool=pool)
    for _ in range(WARM_UP_POLLS):
        lag = scaler.measure().queue_length
    SENT.clear()
    durations = []
    for _ in range(polls):
        started = time.perf_counter()
        scaler.measure()
        durations.append(time.perf_counter() - started)
    pool.close()

    requests = sum(SENT.values()) / polls
    kinds = ", ".join(f"{name} {count / polls:g}" for name, count in sorted(SENT.items()))
    p95 = statistics.quantiles(durations, n=20)[18]
    print(f"topic of {workload.partitions} partitions, lag {lag:.0f}, {polls} polls:")
    print(f"  broker requests per poll: {requests:g} ({kinds})")
    print(
        f"  time per poll: median {statistics.median(durations) * 1000:.2f} ms, "
        f"p95 {p95 * 1000:.2f} ms"
    )


def shared_connections(bootstrap: str, workload: Workload) -> None:
    port = int(bootstrap.rsplit(":", 1)[1])
    before = broker_connections(port)
    pool = KafkaAdminPool()
    scalers = [
        KafkaScaler(settings_for(bootstrap, workload, f"{workload.group}-{index}"), pool=pool)
        for index in range(SHARED_TRIGGERS)
    ]
    SENT.clear()
    started = time.perf_counter()
    for scaler in scalers:
        scaler.measure()
    elapsed = time.perf_counter() - started
    clients = pool.size()
    connections = broker_connections(port) - before
    requests = sum(SENT.values())
    kinds = ", ".join(f"{name} {count}" for name, count in sorted(SENT.items()))
    pool.close()

    print(f"{SHARED_TRIGGERS} triggers on one broker, each polled once:")
    print(f"  admin clients in the pool: {clients}")
    print(f"  TCP connections to the broker: {connections}")
    print(f"  broker requests: {requests}, first polls included ({kinds})")
    print(f"  time for the {SHARED_TRIGGERS} polls: {elapsed * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default=None, help="broker address, host:port")
    parser.add_argument("--polls", type=int, default=200, help="timed polls per topic")
    args = parser.parse_args()
    bootstrap = args.bootstrap or default_bootstrap()

    print(f"broker {bootstrap}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    count_requests()
    with workloads(bootstrap, [1000, 10]) as (large, small):
        time_polls(bootstrap, large, args.polls)
        time_polls(bootstrap, small, args.polls)
        shared_connections(bootstrap, small)


if __name__ == "__main__":
    main()
