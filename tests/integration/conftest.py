"""Fixtures for tests against the real servers that tests/env/up starts.

A missing server fails the test with the command that starts it; these tests never skip.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pulsar as pulsar_client
import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.integration.support import (
    START_HINT,
    RunnerProcess,
    ServerEnv,
    Topic,
    port_open,
    read_env_file,
)

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "charts" / "jobrunner" / "crds"
JOBRUNNER = str(Path(sys.executable).with_name("jobrunner"))


@pytest.fixture(scope="session")
def servers() -> ServerEnv:
    values = read_env_file()
    env = ServerEnv(
        kubeconfig=values["KUBECONFIG"],
        kubectl=values["JOBRUNNER_TEST_KUBECTL"],
        kafka=values["JOBRUNNER_TEST_KAFKA"],
    )
    if not port_open(env.kafka):
        pytest.fail(f"Kafka is not listening on {env.kafka}; {START_HINT}", pytrace=False)
    try:
        env.kubectl_run("get", "--raw=/readyz")
    except AssertionError as error:
        pytest.fail(f"the API server is not ready ({error}); {START_HINT}", pytrace=False)
    env.kubectl_run("apply", "-f", str(CRDS))
    env.kubectl_run("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS))
    return env


@pytest.fixture(scope="session")
def api(servers: ServerEnv) -> client.ApiClient:
    return config.new_client_from_config(config_file=servers.kubeconfig)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"it-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def make_topic(servers: ServerEnv) -> Iterator[Callable[[int], Topic]]:
    admin = KafkaAdminClient(bootstrap_servers=servers.kafka, client_id="tests")
    created: list[str] = []

    def make(partitions: int) -> Topic:
        suffix = uuid.uuid4().hex[:8]
        topic = Topic(f"t-{suffix}", f"g-{suffix}", partitions, servers.kafka)
        admin.create_topics([NewTopic(topic.name, partitions, 1)])
        created.append(topic.name)
        return topic

    yield make
    if created:
        admin.delete_topics(created)
    admin.close()


@pytest.fixture
def start_runner(
    servers: ServerEnv, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RunnerProcess]]:
    runners: list[RunnerProcess] = []

    def start(
        namespace: str,
        *,
        log_level: str = "INFO",
        upgrade: bool = True,
        extra_args: Sequence[str] = (),
    ) -> RunnerProcess:
        database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
        if upgrade:
            subprocess.run(
                [JOBRUNNER, "db", "upgrade", "--database-url", database_url],
                check=True,
                capture_output=True,
            )
        log_path = tmp_path / f"runner-{len(runners)}.log"
        process = subprocess.Popen(
            [
                JOBRUNNER,
                "--log-level",
                log_level,
                "run",
                "--namespace",
                namespace,
                "--database-url",
                database_url,
                "--kubeconfig",
                servers.kubeconfig,
                *extra_args,
            ],
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        runner = RunnerProcess(process, log_path, database_url)
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"--- runner log {runner.log_path}\n{runner.log()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


# --- Pulsar ---------------------------------------------------------------------------------


@dataclass
class PulsarBroker:
    """One standalone broker of tests/env: its addresses and, with token auth, its token."""

    admin_url: str
    service_url: str
    token: str | None = None
    _client: pulsar_client.Client | None = field(default=None, repr=False)

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send an admin REST request, with the superuser token on the token-auth broker."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        url = f"{self.admin_url}{path}"
        return httpx.request(method, url, headers=headers, timeout=10, **kwargs)

    def client(self) -> pulsar_client.Client:
        if self._client is None:
            authentication = pulsar_client.AuthenticationToken(self.token) if self.token else None
            self._client = pulsar_client.Client(
                self.service_url,
                authentication=authentication,
                operation_timeout_seconds=10,
                logger=pulsar_client.ConsoleLogger(pulsar_client.LoggerLevel.Warn),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass(frozen=True)
class PulsarTopic:
    """A test topic in public/default; `partitions` is 0 for a non-partitioned topic."""

    name: str
    partitions: int
    broker: PulsarBroker

    @property
    def path(self) -> str:
        return self.name.removeprefix("persistent://")

    def subscribe(self, subscription: str) -> None:
        """Create a durable subscription that starts at the earliest message."""
        consumer = self.broker.client().subscribe(
            self.name,
            subscription,
            initial_position=pulsar_client.InitialPosition.Earliest,
        )
        consumer.close()

    def produce(self, count: int) -> None:
        producer = self.broker.client().create_producer(
            self.name,
            batching_enabled=False,
            message_routing_mode=pulsar_client.PartitionsRoutingMode.RoundRobinDistribution,
        )
        for number in range(count):
            producer.send(b"m%d" % number)
        producer.close()


@dataclass(frozen=True)
class PulsarEnv:
    plain: PulsarBroker
    token_auth: PulsarBroker


def _pulsar_ready(broker: PulsarBroker) -> str | None:
    """Return why the broker cannot serve tests, or None when it lists its cluster."""
    try:
        response = broker.admin("GET", "/admin/v2/clusters")
    except httpx.HTTPError as error:
        return f"{broker.admin_url} is not reachable ({type(error).__name__})"
    if response.status_code != 200:
        return f"{broker.admin_url}/admin/v2/clusters returned HTTP {response.status_code}"
    return None


@pytest.fixture(scope="session")
def pulsar() -> Iterator[PulsarEnv]:
    values = read_env_file()
    keys = [
        "JOBRUNNER_TEST_PULSAR_ADMIN",
        "JOBRUNNER_TEST_PULSAR_BROKER",
        "JOBRUNNER_TEST_PULSAR_AUTH_ADMIN",
        "JOBRUNNER_TEST_PULSAR_AUTH_BROKER",
        "JOBRUNNER_TEST_PULSAR_AUTH_TOKEN_FILE",
    ]
    missing = [key for key in keys if not values.get(key)]
    if missing:
        pytest.fail(f"the env file lacks {', '.join(missing)}; {START_HINT}", pytrace=False)
    token = Path(values["JOBRUNNER_TEST_PULSAR_AUTH_TOKEN_FILE"]).read_text().strip()
    env = PulsarEnv(
        plain=PulsarBroker(
            values["JOBRUNNER_TEST_PULSAR_ADMIN"], values["JOBRUNNER_TEST_PULSAR_BROKER"]
        ),
        token_auth=PulsarBroker(
            values["JOBRUNNER_TEST_PULSAR_AUTH_ADMIN"],
            values["JOBRUNNER_TEST_PULSAR_AUTH_BROKER"],
            token,
        ),
    )
    for broker in (env.plain, env.token_auth):
        problem = _pulsar_ready(broker)
        if problem:
            pytest.fail(f"Pulsar is not ready: {problem}; {START_HINT}", pytrace=False)
    yield env
    env.plain.close()
    env.token_auth.close()


@pytest.fixture
def make_pulsar_topic(pulsar: PulsarEnv) -> Iterator[Callable[..., PulsarTopic]]:
    """Create topics in public/default, and delete them with their subscriptions after."""
    created: list[PulsarTopic] = []

    def make(*, partitions: int = 0, broker: PulsarBroker | None = None) -> PulsarTopic:
        owner = broker or pulsar.plain
        topic = PulsarTopic(
            f"persistent://public/default/t-{uuid.uuid4().hex[:8]}", partitions, owner
        )
        if partitions:
            response = owner.admin(
                "PUT", f"/admin/v2/persistent/{topic.path}/partitions", json=partitions
            )
        else:
            response = owner.admin("PUT", f"/admin/v2/persistent/{topic.path}")
        assert response.status_code == 204, f"creating {topic.name}: HTTP {response.status_code}"
        created.append(topic)
        return topic

    yield make
    for topic in created:
        kind = "/partitions" if topic.partitions else ""
        topic.broker.admin("DELETE", f"/admin/v2/persistent/{topic.path}{kind}?force=true")
