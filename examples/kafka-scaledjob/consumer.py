"""Consume one batch of the example's topic, as each Job of scaledjob-process.yaml does.

Reads up to BATCH_SIZE messages of KAFKA_TOPIC as a member of consumer group KAFKA_GROUP,
prints each one, commits their offsets and exits 0. It also exits 0 when no message arrives
for IDLE_SECONDS, so a Job started for lag that other Jobs consumed meanwhile succeeds too.
A Kafka error, such as a failed commit, exits 1, so the Job controller retries the batch.

Settings, all from the environment:
  KAFKA_BROKERS  bootstrap servers (default 127.0.0.1:9092)
  KAFKA_TOPIC    topic (default orders)
  KAFKA_GROUP    consumer group (default orders-consumers)
  BATCH_SIZE     maximum number of messages to consume (default 10)
  IDLE_SECONDS   seconds without a message after which the run ends (default 5)
"""

from __future__ import annotations

import os
import sys
import time

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata


def number_from_env(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        sys.exit(f"consumer: {name} must be a number, got {text!r}")
    if value <= 0:
        sys.exit(f"consumer: {name} must be positive, got {text!r}")
    return value


class Batch(ConsumerRebalanceListener):
    """The offsets consumed so far, committed whenever the group takes partitions away.

    Committing on revocation means the partition's next owner starts after the messages this
    run printed, instead of printing them again.
    """

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer
        self.next_offsets: dict[TopicPartition, int] = {}

    def record(self, partition: TopicPartition, offset: int) -> None:
        self.next_offsets[partition] = offset + 1

    def commit(self, partitions: list[TopicPartition] | None = None) -> None:
        chosen = self.next_offsets if partitions is None else partitions
        offsets = {
            partition: OffsetAndMetadata(self.next_offsets[partition], "", -1)
            for partition in chosen
            if partition in self.next_offsets
        }
        if offsets:
            self.consumer.commit(offsets)
        for partition in offsets:
            del self.next_offsets[partition]

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.commit(list(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


def main() -> int:
    brokers = os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092")
    topic = os.environ.get("KAFKA_TOPIC", "orders")
    group = os.environ.get("KAFKA_GROUP", "orders-consumers")
    batch_size = int(number_from_env("BATCH_SIZE", 10))
    idle_seconds = number_from_env("IDLE_SECONDS", 5)

    consumer = KafkaConsumer(
        bootstrap_servers=brokers.split(","),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    batch = Batch(consumer)
    consumer.subscribe([topic], listener=batch)
    consumed = 0
    try:
        last_message_at = time.monotonic()
        while consumed < batch_size and time.monotonic() - last_message_at < idle_seconds:
            records = consumer.poll(timeout_ms=500, max_records=batch_size - consumed)
            for partition, messages in records.items():
                for message in messages:
                    value = message.value.decode("utf-8", "replace")
                    print(f"{message.topic}[{message.partition}]@{message.offset}: {value}")
                    batch.record(partition, message.offset)
                    consumed += 1
                    last_message_at = time.monotonic()
        sys.stdout.flush()
        batch.commit()
    except KafkaError as error:
        print(f"consumer: consuming {topic} for group {group} failed: {error}", file=sys.stderr)
        return 1
    finally:
        consumer.close()
    print(f"consumer: committed {consumed} messages of {topic} for group {group}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
