"""Drive the Kafka ScaledJob example against the test environment and print what happens.

Creates a 5-partition topic and produces 100 messages. The Jobs' pods run consumer.py on the
test cluster's process node, each reading and committing up to 10 messages. This script
prints the lag and the Job counts every 2 seconds and returns once the lag is zero and every
Job has finished. The runner itself is started by `demo` beside this file.
"""

from __future__ import annotations

import argparse
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from kubernetes import client, config

TOPIC = "orders"
GROUP = "orders-consumers"
PARTITIONS = 5
MESSAGES = 100
BATCH = 10


def create_topic(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="demo")
    try:
        admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def produce(bootstrap: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for number in range(MESSAGES):
        producer.send(TOPIC, value=f"order {number}".encode(), partition=number % PARTITIONS)
    producer.flush()
    producer.close()
    print(f"produced {MESSAGES} messages on {PARTITIONS} partitions of topic {TOPIC}")


def lag(consumer: KafkaConsumer) -> int:
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    ends = consumer.end_offsets(partitions)
    return sum(ends[tp] - (consumer.committed(tp) or 0) for tp in partitions)


def watch(bootstrap: str, namespace: str, timeout: float) -> int:
    config.load_kube_config()
    batch = client.BatchV1Api()
    # Only reads the group's committed offsets; it never joins the group or consumes.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    most_unfinished = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = batch.list_namespaced_job(namespace).items
        unfinished = sum(1 for j in jobs if not (j.status.succeeded or j.status.failed))
        most_unfinished = max(most_unfinished, unfinished)
        remaining = lag(consumer)
        print(f"lag {remaining:3d}   Jobs created {len(jobs):2d}   unfinished {unfinished}")
        if remaining == 0 and jobs and unfinished == 0:
            print(
                f"topic drained by {len(jobs)} Jobs; at most {most_unfinished} were "
                "unfinished at once"
            )
            consumer.close()
            return 0
        time.sleep(2)
    consumer.close()
    print(f"the topic was not drained within {timeout:.0f}s", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["topic", "produce", "watch"])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--namespace", default="jobrunner-demo")
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    if args.step == "topic":
        create_topic(args.bootstrap)
    elif args.step == "produce":
        produce(args.bootstrap)
    else:
        return watch(args.bootstrap, args.namespace, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
