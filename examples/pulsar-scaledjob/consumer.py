"""Acknowledge up to N messages of the example's subscription, then exit: one Job's work.

Every Job of the ScaledJob runs this on a Shared subscription, so several Jobs consume in
parallel and each message goes to one of them. It exits 0 after N messages, or earlier when
no message arrives for --idle-seconds, so a Job started for a backlog that others already
drained still finishes.

    .venv/bin/python examples/pulsar-scaledjob/consumer.py --max-messages 10
"""

from __future__ import annotations

import argparse
import os
import sys

import pulsar

TOPIC = "persistent://public/default/orders"
SUBSCRIPTION = "orders-workers"


def consume(client: pulsar.Client, *, max_messages: int, idle_seconds: float) -> int:
    """Receive and acknowledge up to `max_messages`; return how many were acknowledged."""
    consumer = client.subscribe(
        TOPIC,
        SUBSCRIPTION,
        consumer_type=pulsar.ConsumerType.Shared,
        initial_position=pulsar.InitialPosition.Earliest,
        # Without this, the client prefetches up to 1000 messages that other Jobs then wait
        # for until this consumer closes.
        receiver_queue_size=1,
    )
    acknowledged = 0
    try:
        while acknowledged < max_messages:
            try:
                message = consumer.receive(timeout_millis=int(idle_seconds * 1000))
            except pulsar.Timeout:
                break
            print(f"processing {message.data().decode(errors='replace')}")
            consumer.acknowledge(message)
            acknowledged += 1
    finally:
        consumer.close()
    return acknowledged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-messages", type=int, default=10, help="messages to acknowledge")
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="exit after this long without a message"
    )
    parser.add_argument(
        "--service-url", default=os.environ.get("PULSAR_SERVICE_URL", "pulsar://127.0.0.1:6650")
    )
    args = parser.parse_args()
    token = os.environ.get("PULSAR_TOKEN") or None

    client = pulsar.Client(
        args.service_url,
        authentication=pulsar.AuthenticationToken(token) if token else None,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
    )
    try:
        count = consume(client, max_messages=args.max_messages, idle_seconds=args.idle_seconds)
    finally:
        client.close()
    print(f"acknowledged {count} messages of subscription {SUBSCRIPTION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
