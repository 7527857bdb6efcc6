"""A Kafka password must never leave the Secret that contains it.

The password is random and made for the test run, so finding it anywhere is a leak. It is
set on a SCRAM user of the test broker and reaches the runner through a Secret and a
TriggerAuthentication. A second ScaledJob uses another random value as a wrong password, so
the broker's rejection and everything the runner writes about it are searched too.

Searched: the runner's log at DEBUG in text and in JSON, the Events, ScaledJobs,
TriggerAuthentications and Jobs of the namespace, every row of every ledger table, the
output of `jobrunner validate` and `jobrunner plan` on the same manifests, exception
messages of the scaler and of settings parsing, and the repr of the settings objects.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from sqlalchemy import MetaData, create_engine, select

from jobrunner.errors import InvalidSpecError, ScalerError
from jobrunner.resources.auth import (
    RedactedMapping,
    collect_auth_params,
    parse_trigger_authentication,
)
from jobrunner.resources.scaledjob import AuthenticationRef
from jobrunner.scalers.kafka import KafkaScaler
from jobrunner.scalers.kafka_client import KafkaAdminPool
from jobrunner.scalers.kafka_settings import parse_kafka_settings
from jobrunner.scalers.metadata import TriggerInput
from tests.integration.kafka_auth_support import KafkaSecurity, ScramUsers, load_kafka_security
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

JOBRUNNER = str(Path(sys.executable).with_name("jobrunner"))
MakeTopic = Callable[[int], Topic]
StartRunner = Callable[..., RunnerProcess]
GOOD, BAD = "leak-good", "leak-bad"


@pytest.fixture(scope="module")
def security(servers: ServerEnv) -> KafkaSecurity:
    return load_kafka_security()


@pytest.fixture
def user(security: KafkaSecurity) -> Iterator[tuple[str, str]]:
    """(username, password) of a SCRAM-SHA-256 user made for one test."""
    users = ScramUsers(security.plaintext)
    yield users.create("SCRAM-SHA-256")
    users.close()


@pytest.fixture
def wrong_password() -> str:
    return f"canary-wrong-{secrets.token_hex(12)}"


def manifests(
    security: KafkaSecurity, topic: Topic, username: str, passwords: dict[str, str]
) -> list[dict[str, Any]]:
    """Per ScaledJob name: a Secret with `stringData`, a TriggerAuthentication, a ScaledJob."""
    documents: list[dict[str, Any]] = []
    for name, password in passwords.items():
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"{name}-credentials"},
                "stringData": {
                    "sasl": "scram_sha256",
                    "username": username,
                    "password": password,
                },
            }
        )
        documents.append(
            {
                "apiVersion": "jobrunner.dev/v1alpha1",
                "kind": "TriggerAuthentication",
                "metadata": {"name": f"{name}-auth"},
                "spec": {
                    "secretTargetRef": [
                        {"parameter": key, "name": f"{name}-credentials", "key": key}
                        for key in ("sasl", "username", "password")
                    ]
                },
            }
        )
        scaled_job = scaled_job_manifest(
            name, topic, extra_metadata={"bootstrapServers": security.sasl}
        )
        scaled_job["spec"]["triggers"][0]["authenticationRef"] = {"name": f"{name}-auth"}
        documents.append(scaled_job)
    return documents


def ready_condition(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "jobrunner.dev", "v1alpha1", namespace, "scaledjobs", name
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def namespace_dump(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """Serialise what the runner writes to the API server, by kind."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    custom = client.CustomObjectsApi(api)
    found = {
        "Events": core.list_namespaced_event(namespace).items,
        "Jobs": batch.list_namespaced_job(namespace).items,
    }
    dump = {
        kind: json.dumps(api.sanitize_for_serialization(items)) for kind, items in found.items()
    }
    for plural in ("scaledjobs", "triggerauthentications"):
        listed = custom.list_namespaced_custom_object(
            "jobrunner.dev", "v1alpha1", namespace, plural
        )
        dump[plural] = json.dumps(listed["items"])
    return dump


def ledger_dump(database_url: str) -> dict[str, str]:
    """Every row of every table of the ledger, as text per table."""
    engine = create_engine(database_url)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.connect() as connection:
            return {
                name: repr(connection.execute(select(table)).all())
                for name, table in tables.tables.items()
            }
    finally:
        engine.dispose()


def run_cli(*args: str) -> str:
    result = subprocess.run(
        [JOBRUNNER, "--log-level", "DEBUG", *args], capture_output=True, text=True, check=False
    )
    return result.stdout + result.stderr


# --- the running runner -----------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_runner_never_writes_password(
    servers: ServerEnv,
    api: client.ApiClient,
    namespace: str,
    make_topic: MakeTopic,
    start_runner: StartRunner,
    security: KafkaSecurity,
    user: tuple[str, str],
    wrong_password: str,
    log_format: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    username, password = user
    topic = make_topic(2)
    topic.produce(20)
    monkeypatch.setenv("JOBRUNNER_LOG_FORMAT", log_format)
    runner = start_runner(namespace, log_level="DEBUG")
    for document in manifests(security, topic, username, {GOOD: password, BAD: wrong_password}):
        apply(servers, namespace, document)

    wait_for(lambda: jobs_of(api, namespace, GOOD), timeout=40, what="Jobs with the password")
    wait_for(
        lambda: "authentication failed" in ready_condition(api, namespace, BAD).get("message", ""),
        timeout=30,
        what="Ready=False from the wrong password",
    )
    # A few more polls, so repeated failures and steady polls are logged too.
    wait_for(
        lambda: (
            runner.log().count("authentication failed") >= 1
            and runner.log().count("poll: active") >= 8
        ),
        timeout=30,
        what="eight polls in the runner's DEBUG log",
    )
    runner.stop()

    log = runner.log()
    assert log.strip()
    if log_format == "json":
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        assert any(line.get("level") == "DEBUG" for line in lines)
    assert jobs_of(api, namespace, BAD) == []
    written = {
        "runner log": log,
        **namespace_dump(api, namespace),
        **ledger_dump(runner.database_url),
    }
    # The dumps contain what the runner wrote about both ScaledJobs, so the search can fail.
    assert GOOD in written["Events"]
    assert BAD in written["scaledjobs"]
    assert GOOD in written["scaled_objects"]
    assert "authentication failed" in written["scaledjobs"]
    for where, text in written.items():
        assert password not in text, f"the password is in {where}"
        assert wrong_password not in text, f"the wrong password is in {where}"


# --- offline commands -------------------------------------------------------------------------


@pytest.fixture
def manifest_file(
    tmp_path: Path,
    security: KafkaSecurity,
    make_topic: MakeTopic,
    user: tuple[str, str],
    wrong_password: str,
) -> tuple[Path, str, str]:
    """A YAML file with both ScaledJobs and their Secrets; returns (path, password, wrong)."""
    username, password = user
    topic = make_topic(1)
    documents = manifests(security, topic, username, {GOOD: password, BAD: wrong_password})
    for document in documents:
        document["metadata"]["namespace"] = "default"
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path, password, wrong_password


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["validate"], id="validate"),
        pytest.param(["plan", "--scaled-job", GOOD, "-q", "0=20"], id="plan"),
        pytest.param(["plan", "--scaled-job", GOOD, "-q", "0=20", "-o", "json"], id="plan-json"),
        pytest.param(["--debug", "plan", "--scaled-job", GOOD], id="plan-debug"),
    ],
)
def test_commands_never_print_password(
    manifest_file: tuple[Path, str, str], args: list[str]
) -> None:
    path, password, wrong_password = manifest_file
    # Global options come before the command's name.
    global_options = [arg for arg in args if arg == "--debug"]
    command = [arg for arg in args if arg != "--debug"]

    output = run_cli(*global_options, *command, str(path))

    assert output.strip()
    assert password not in output
    assert wrong_password not in output


def test_validate_misplaced_password(tmp_path: Path, security: KafkaSecurity) -> None:
    """A password pasted into fields with fixed values is rejected without being quoted."""
    password = f"canary-misplaced-{secrets.token_hex(12)}"
    topic = Topic("orders", "workers", 1, security.sasl)
    scaled_job = scaled_job_manifest(
        "misplaced",
        topic,
        extra_metadata={"sasl": password, "tls": password, "lagThreshold": password},
    )
    scaled_job["metadata"]["namespace"] = "default"
    path = tmp_path / "misplaced.yaml"
    path.write_text(yaml.safe_dump(scaled_job))

    output = run_cli("validate", str(path))

    assert "metadata.sasl: must be one of" in output
    assert password not in output


# --- exceptions and reprs ---------------------------------------------------------------------


def trigger_input(security: KafkaSecurity, auth: dict[str, str]) -> TriggerInput:
    return TriggerInput(
        subject="ScaledJob tests/leaks",
        path="spec.triggers[0]",
        metadata={
            "bootstrapServers": security.sasl,
            "consumerGroup": "leaks",
            "topic": "leaks",
        },
        auth_params=RedactedMapping(auth),
    )


def test_wrong_password_error_hides_it(security: KafkaSecurity, user: tuple[str, str]) -> None:
    """The broker's rejection, as the scaler raises it, does not echo the password."""
    username, password = user
    wrong = password + "-wrong"
    auth = {"sasl": "scram_sha256", "username": username, "password": wrong}
    scaler = KafkaScaler(parse_kafka_settings(trigger_input(security, auth)), pool=KafkaAdminPool())
    try:
        with pytest.raises(ScalerError) as raised:
            scaler.measure()
    finally:
        scaler.pool.close()

    assert "authentication failed" in str(raised.value)
    assert wrong not in str(raised.value)
    assert wrong not in repr(raised.value)


def test_settings_reprs_hide_password(security: KafkaSecurity, user: tuple[str, str]) -> None:
    username, password = user
    auth = {
        "sasl": "scram_sha256",
        "username": username,
        "password": password,
        "tls": "enable",
        "ca": security.pem("ca"),
        "cert": security.pem("client_cert"),
        "key": security.pem("client_key_encrypted"),
        "keyPassword": security.credentials["client_key_password"],
    }
    source = trigger_input(security, auth)
    settings = parse_kafka_settings(source)
    scaler = KafkaScaler(settings, pool=KafkaAdminPool())

    reprs = {
        "TriggerInput": repr(source),
        "KafkaSettings": repr(settings),
        "KafkaAuth": repr(settings.auth),
        "KafkaScaler": repr(scaler),
        "describe_source": scaler.describe_source(),
    }
    for name, text in reprs.items():
        assert password not in text, f"the password is in the repr of {name}"
        assert security.credentials["client_key_password"] not in text, name
        assert "PRIVATE KEY" not in text, name


def test_resolution_hides_password(user: tuple[str, str]) -> None:
    """TriggerAuthentication resolution keeps values out of its repr and its problems."""
    username, password = user
    spec = {
        "kind": "TriggerAuthentication",
        "metadata": {"name": "leaks", "namespace": "tests"},
        "spec": {
            "secretTargetRef": [
                {"parameter": "password", "name": "kafka", "key": "password"},
                {"parameter": "username", "name": "kafka", "key": "missing-key"},
            ]
        },
    }
    parsed = parse_trigger_authentication(spec)
    resolution = collect_auth_params(
        AuthenticationRef(name="leaks"),
        path="spec.triggers[0]",
        namespace="tests",
        cluster_object_namespace="jobrunner",
        authentications=lambda key: parsed,
        secrets=lambda namespace, name: {"password": password, "user": username},
        config_maps=lambda namespace, name: None,
        pod_spec=None,
    )

    assert resolution.values["password"] == password
    assert password not in repr(resolution)
    with pytest.raises(InvalidSpecError) as raised:
        resolution.checked("ScaledJob tests/leaks")
    assert "missing-key" in str(raised.value)
    assert password not in str(raised.value)


def test_invalid_auth_params_hide_values(security: KafkaSecurity) -> None:
    """Parameters with fixed forms reject a misplaced password without quoting it."""
    password = f"canary-invalid-{secrets.token_hex(12)}"
    auth = {
        "sasl": password,
        "tls": password,
        "ca": password,
        "cert": password,
        "key": password,
        "username": "someone",
    }
    with pytest.raises(InvalidSpecError) as raised:
        parse_kafka_settings(trigger_input(security, auth))

    assert "spec.triggers[0].auth.sasl" in str(raised.value)
    assert password not in str(raised.value)
    assert password not in repr(raised.value)
