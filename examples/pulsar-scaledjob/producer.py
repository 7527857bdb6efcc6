"""Create the example's topic and subscription, then publish messages to it.

The subscription is created before the first message, because Pulsar counts a backlog only
for subscriptions that exist when a message arrives. Run it against the test environment:

    .venv/bin/python examples/pulsar-scaledjob/producer.py --messages 35
"""

from __future__ import annotations

import argparse
import os

import httpx
import pulsar

TOPIC = "persistent://public/default/orders"
SUBSCRIPTION = "orders-workers"
PARTITIONS = 4


def create_topic(admin_url: str, token: str | None) -> None:
    """Create the partitioned topic; a topic that already exists is left as it is."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    path = TOPIC.removeprefix("persistent://")
    url = f"{admin_url}/admin/v2/persistent/{path}/partitions"
    response = httpx.put(url, json=PARTITIONS, headers=headers, timeout=10)
    if response.status_code == 409:
        print(f"topic {TOPIC} exists")
        return
    response.raise_for_status()
    print(f"created topic {TOPIC} with {PARTITIONS} partitions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=35, help="messages to publish")
    parser.add_argument(
        "--admin-url", default=os.environ.get("PULSAR_ADMIN_URL", "http://127.0.0.1:8080")
    )
    parser.add_argument(
        "--service-url", default=os.environ.get("PULSAR_SERVICE_URL", "pulsar://127.0.0.1:6650")
    )
    args = parser.parse_args()
    token = os.environ.get("PULSAR_TOKEN") or None

    create_topic(args.admin_url, token)
    client = pulsar.Client(
        args.service_url,
        authentication=pulsar.AuthenticationToken(token) if token else None,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
    )
    try:
        subscription = client.subscribe(
            TOPIC,
            SUBSCRIPTION,
            consumer_type=pulsar.ConsumerType.Shared,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        subscription.close()
        producer = client.create_producer(
            TOPIC,
            batching_enabled=False,
            message_routing_mode=pulsar.PartitionsRoutingMode.RoundRobinDistribution,
        )
        for number in range(args.messages):
            producer.send(f"order {number}".encode())
        producer.close()
    finally:
        client.close()
    print(f"published {args.messages} messages to {TOPIC}")


if __name__ == "__main__":
    main()
