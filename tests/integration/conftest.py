"""Fixtures for tests against the real servers that tests/env/up starts.

A missing server fails the test with the command that starts it; these tests never skip.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

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
