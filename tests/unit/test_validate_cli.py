"""Unit tests of `jobrunner validate` on YAML files in a temporary directory."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from jobrunner.cli import main

ROOT = Path(__file__).resolve().parents[2]
NOISY_LOGGERS = ("kafka", "kubernetes", "urllib3", "apscheduler", "alembic")
# A value that must never appear in validate's output.
SECRET = "hunter2-s3cret"
SUBJECT = "ScaledJob default/orders"
KAFKA = {"bootstrapServers": "kafka:9092", "consumerGroup": "workers", "topic": "orders"}


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the root logger set-up that every `jobrunner` invocation performs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def invoke(*arguments: str) -> Result:
    return CliRunner().invoke(
        main, ["validate", *arguments], env={"JOBRUNNER_CLUSTER_OBJECT_NAMESPACE": None}
    )


def scaled_job(
    metadata: dict[str, Any] | None = None,
    *,
    name: str = "orders",
    namespace: str | None = None,
    api_version: str = "jobrunner.dev/v1alpha1",
    spec: dict[str, Any] | None = None,
    trigger: dict[str, Any] | None = None,
    env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    object_metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        object_metadata["namespace"] = namespace
    container: dict[str, Any] = {"name": "consumer", "image": "consumer:1"}
    if env is not None:
        container["env"] = env
    return {
        "apiVersion": api_version,
        "kind": "ScaledJob",
        "metadata": object_metadata,
        "spec": {
            "jobTargetRef": {"template": {"spec": {"containers": [container]}}},
            "triggers": [
                {
                    "type": "kafka",
                    "metadata": KAFKA if metadata is None else metadata,
                    **(trigger or {}),
                }
            ],
            **(spec or {}),
        },
    }


def trigger_authentication(
    spec: dict[str, Any], *, kind: str = "TriggerAuthentication", name: str = "kafka-auth"
) -> dict[str, Any]:
    return {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def secret(
    name: str = "kafka-credentials",
    *,
    data: dict[str, str] | None = None,
    string_data: dict[str, str] | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
    if namespace is not None:
        document["metadata"]["namespace"] = namespace
    if data is not None:
        document["data"] = data
    if string_data is not None:
        document["stringData"] = string_data
    return document


def encoded(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def write(directory: Path, name: str, *documents: dict[str, Any]) -> str:
    path = directory / name
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return str(path)


def lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


# --- valid manifests ------------------------------------------------------------------------


def test_validate_example_files() -> None:
    files = sorted(str(path) for path in (ROOT / "examples" / "kafka-scaledjob").glob("*.yaml"))

    result = invoke(*files)

    assert result.exit_code == 0, result.output
    assert lines(result)[-1].endswith("no problems")


def test_validate_summary(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orders.yaml",
        scaled_job(trigger={"authenticationRef": {"name": "kafka-auth"}}),
        trigger_authentication(
            {
                "secretTargetRef": [
                    {"parameter": "password", "name": "kafka-credentials", "key": "password"}
                ]
            }
        ),
        secret(data={"password": encoded(SECRET)}),
    )

    result = invoke(path)

    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "3 documents checked in 1 file: 1 ScaledJob, 1 TriggerAuthentication, 1 Secret; no problems"
    ]


def test_validate_several_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", scaled_job(name="a"), scaled_job(name="b"))
    second = write(
        tmp_path,
        "b.yaml",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
    )

    result = invoke(first, second)

    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "3 documents checked in 2 files: 2 ScaledJobs, 1 ConfigMap; no problems"
    ]


def test_validate_skips_other_kinds(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mixed.yaml",
        scaled_job(),
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}},
        {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "web"}},
    )

    result = invoke(path)

    assert result.exit_code == 0, result.output
    assert lines(result) == [
        "1 document checked in 1 file: 1 ScaledJob; "
        "skipped 1 Deployment, 1 ScaledObject (kinds not checked); no problems"
    ]


def test_validate_accepts_keda_api_version(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "keda.yaml",
        scaled_job(
            api_version="keda.sh/v1alpha1", trigger={"authenticationRef": {"name": "kafka-auth"}}
        ),
        {**trigger_authentication({}), "apiVersion": "keda.sh/v1alpha1"},
    )

    result = invoke(path)

    assert result.exit_code == 0, result.output


def test_validate_accepts_list_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path, "list.yaml", {"apiVersion": "v1", "kind": "List", "items": [scaled_job()]}
    )

    result = invoke(path)

    assert result.exit_code == 0, result.output
    assert lines(result) == ["1 document checked in 1 file: 1 ScaledJob; no problems"]


@pytest.mark.parametrize(
    "metadata",
    [
        pytest.param(KAFKA, id="minimal"),
        pytest.param({"bootstrapServers": "a:9092,b:9092", "consumerGroup": "g"}, id="no-topic"),
        pytest.param(
            {**KAFKA, "lagThreshold": "1", "activationLagThreshold": "0"}, id="thresholds"
        ),
        pytest.param({**KAFKA, "offsetResetPolicy": "earliest"}, id="earliest"),
        pytest.param({**KAFKA, "offsetResetPolicy": "latest"}, id="latest"),
        pytest.param({**KAFKA, "partitionLimitation": "1,2,10-20"}, id="partition-limitation"),
        pytest.param({**KAFKA, "partitionLimitation": " "}, id="blank-partition-limitation"),
        pytest.param(
            {"bootstrapServers": "kafka:9092", "consumerGroup": "g", "partitionLimitation": "x"},
            id="partition-limitation-ignored-without-topic",
        ),
        pytest.param({**KAFKA, "limitToPartitionsWithLag": "true"}, id="limit-with-topic"),
        pytest.param({**KAFKA, "allowIdleConsumers": "true"}, id="allow-idle"),
        pytest.param(
            {**KAFKA, "excludePersistentLag": "True", "scaleToZeroOnInvalidOffset": "1"},
            id="go-booleans",
        ),
    ],
)
def test_validate_valid_kafka_metadata(tmp_path: Path, metadata: dict[str, str]) -> None:
    path = write(tmp_path, "orders.yaml", scaled_job(metadata))

    result = invoke(path)

    assert result.exit_code == 0, result.output


def test_validate_reads_env_from_secret(tmp_path: Path) -> None:
    env = [
        {
            "name": "KAFKA_BROKERS",
            "valueFrom": {"secretKeyRef": {"name": "brokers", "key": "servers"}},
        }
    ]
    metadata = {"bootstrapServersFromEnv": "KAFKA_BROKERS", "consumerGroup": "g"}
    path = write(
        tmp_path,
        "orders.yaml",
        scaled_job(metadata, env=env),
        secret("brokers", string_data={"servers": "kafka:9092"}),
    )

    result = invoke(path)

    assert result.exit_code == 0, result.output


def test_validate_cluster_trigger_authentication(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orders.yaml",
        scaled_job(
            trigger={
                "authenticationRef": {"name": "kafka-auth", "kind": "ClusterTriggerAuthentication"}
            }
        ),
        trigger_authentication(
            {"secretTargetRef": [{"parameter": "password", "name": "shared", "key": "password"}]},
            kind="ClusterTriggerAuthentication",
        ),
        secret("shared", namespace="ops", string_data={"password": SECRET}),
    )

    found = invoke("--cluster-object-namespace", "ops", path)
    missing = invoke(path)

    assert found.exit_code == 0, found.output
    assert missing.exit_code == 1
    assert lines(missing) == [
        f"{path}: {SUBJECT}: trigger 0: authenticationRef: Secret jobrunner/shared not found "
        "(ClusterTriggerAuthentication kafka-auth spec.secretTargetRef[0])"
    ]


# --- invalid Kafka metadata -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        pytest.param(
            {"consumerGroup": "g", "topic": "t"}, "metadata.bootstrapServers", id="no-servers"
        ),
        pytest.param(
            {"bootstrapServers": " ", "consumerGroup": "g"},
            "metadata.bootstrapServers",
            id="blank-servers",
        ),
        pytest.param({"bootstrapServers": "kafka:9092"}, "metadata.consumerGroup", id="no-group"),
        pytest.param(
            {**KAFKA, "lagThreshold": "0"}, "metadata.lagThreshold", id="lag-threshold-zero"
        ),
        pytest.param(
            {**KAFKA, "lagThreshold": "-5"}, "metadata.lagThreshold", id="lag-threshold-negative"
        ),
        pytest.param(
            {**KAFKA, "lagThreshold": "1.5"}, "metadata.lagThreshold", id="lag-threshold-float"
        ),
        pytest.param(
            {**KAFKA, "lagThreshold": "AA"}, "metadata.lagThreshold", id="lag-threshold-text"
        ),
        pytest.param(
            {**KAFKA, "lagThreshold": "+5"}, "metadata.lagThreshold", id="lag-threshold-plus"
        ),
        pytest.param(
            {**KAFKA, "lagThreshold": "010"}, "metadata.lagThreshold", id="lag-threshold-octal"
        ),
        pytest.param(
            {**KAFKA, "activationLagThreshold": "-1"},
            "metadata.activationLagThreshold",
            id="activation-negative",
        ),
        pytest.param(
            {**KAFKA, "activationLagThreshold": "x"},
            "metadata.activationLagThreshold",
            id="activation-text",
        ),
        pytest.param(
            {**KAFKA, "offsetResetPolicy": "oldest"},
            "metadata.offsetResetPolicy",
            id="offset-policy",
        ),
        pytest.param(
            {**KAFKA, "allowIdleConsumers": "yes"}, "metadata.allowIdleConsumers", id="boolean"
        ),
        pytest.param(
            {
                "bootstrapServers": "kafka:9092",
                "consumerGroup": "g",
                "limitToPartitionsWithLag": "true",
            },
            "metadata.limitToPartitionsWithLag",
            id="limit-without-topic",
        ),
        pytest.param(
            {**KAFKA, "limitToPartitionsWithLag": "true", "allowIdleConsumers": "true"},
            "metadata.limitToPartitionsWithLag",
            id="limit-with-idle-consumers",
        ),
        pytest.param(
            {**KAFKA, "partitionLimitation": "1,a"},
            "metadata.partitionLimitation",
            id="partition-item",
        ),
        pytest.param(
            {**KAFKA, "partitionLimitation": "1-2-3"},
            "metadata.partitionLimitation",
            id="partition-range",
        ),
    ],
)
def test_validate_invalid_kafka_metadata(
    tmp_path: Path, metadata: dict[str, str], field: str
) -> None:
    path = write(tmp_path, "orders.yaml", scaled_job(metadata))

    result = invoke(path)

    assert result.exit_code == 1
    assert len(lines(result)) == 1, result.output
    assert lines(result)[0].startswith(f"{path}: {SUBJECT}: trigger 0: {field}: ")
    assert result.stderr.strip().endswith("; 1 problem")


def test_validate_reports_every_trigger(tmp_path: Path) -> None:
    document = scaled_job({**KAFKA, "lagThreshold": "0"})
    document["spec"]["triggers"].append(
        {"type": "kafka", "name": "second", "metadata": {"topic": "t"}}
    )
    path = write(tmp_path, "orders.yaml", document)

    result = invoke(path)

    prefixes = [line.split(": ", 4)[:4] for line in lines(result)]
    assert result.exit_code == 1
    assert prefixes == [
        [path, SUBJECT, "trigger 0", "metadata.lagThreshold"],
        [path, SUBJECT, "trigger 1", "metadata.bootstrapServers"],
        [path, SUBJECT, "trigger 1", "metadata.consumerGroup"],
    ]


# --- invalid specs and references -----------------------------------------------------------


def test_validate_spec_and_trigger_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orders.yaml",
        scaled_job({**KAFKA, "lagThreshold": "0"}, spec={"maxReplicaCount": 0}),
    )

    result = invoke(path)

    assert result.exit_code == 1
    assert lines(result)[0] == f"{path}: {SUBJECT}: spec.maxReplicaCount: must be >= 1"
    assert lines(result)[1].startswith(f"{path}: {SUBJECT}: trigger 0: metadata.lagThreshold: ")
    assert len(lines(result)) == 2


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            scaled_job(trigger={"type": "rabbitmq"}),
            f"{SUBJECT}: trigger 0: type: unknown trigger type; known types: kafka, pulsar",
            id="unknown-type",
        ),
        pytest.param(
            scaled_job(trigger={"type": ""}),
            f"{SUBJECT}: trigger 0: type: missing",
            id="missing-type",
        ),
        pytest.param(
            scaled_job(trigger={"metricType": "Value"}),
            f"{SUBJECT}: trigger 0: metricType: not supported for ScaledJob; remove it",
            id="metric-type",
        ),
        pytest.param(
            scaled_job(spec={"envSourceContainerName": "worker"}),
            f"{SUBJECT}: spec.envSourceContainerName: no container named worker in "
            "spec.jobTargetRef.template.spec.containers",
            id="env-source-container",
        ),
        pytest.param(
            scaled_job(namespace="team-a", spec={"pollingInterval": 0}),
            "ScaledJob team-a/orders: spec.pollingInterval: must be >= 1",
            id="namespace-given",
        ),
        pytest.param(
            scaled_job(
                env=[
                    {
                        "name": "BROKERS",
                        "valueFrom": {"secretKeyRef": {"name": "brokers", "key": "k"}},
                    }
                ]
            ),
            f"{SUBJECT}: spec.jobTargetRef.template.spec.containers[0].env[0].valueFrom"
            ".secretKeyRef: Secret default/brokers not found",
            id="env-secret-missing",
        ),
        pytest.param(
            scaled_job(trigger={"authenticationRef": {"name": "kafka-auth"}}),
            f"{SUBJECT}: trigger 0: authenticationRef: "
            "TriggerAuthentication default/kafka-auth not found",
            id="authentication-missing",
        ),
        pytest.param(
            scaled_job(api_version="batch/v1"),
            f"{SUBJECT}: apiVersion: must be jobrunner.dev/v1alpha1 or keda.sh/v1alpha1",
            id="api-version",
        ),
    ],
)
def test_validate_problem_lines(tmp_path: Path, document: dict[str, Any], expected: str) -> None:
    path = write(tmp_path, "orders.yaml", document)

    result = invoke(path)

    assert result.exit_code == 1
    assert lines(result) == [f"{path}: {expected}"]


def test_validate_unquoted_metadata_value(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(
        yaml.safe_dump(scaled_job()).replace(
            "topic: orders", "topic: orders\n      lagThreshold: 10"
        )
    )

    result = invoke(str(path))

    assert result.exit_code == 1
    assert lines(result) == [
        f"{path}: {SUBJECT}: trigger 0: metadata.lagThreshold: must be a string; quote the value"
    ]


@pytest.mark.parametrize(
    ("auth_spec", "documents", "expected"),
    [
        pytest.param(
            {
                "secretTargetRef": [
                    {"parameter": "password", "name": "kafka-credentials", "key": "password"}
                ]
            },
            [],
            "trigger 0: authenticationRef: Secret default/kafka-credentials not found "
            "(TriggerAuthentication default/kafka-auth spec.secretTargetRef[0])",
            id="secret-missing",
        ),
        pytest.param(
            {
                "secretTargetRef": [
                    {"parameter": "password", "name": "kafka-credentials", "key": "passwd"}
                ]
            },
            [secret(data={"password": encoded(SECRET)})],
            "trigger 0: authenticationRef: Secret default/kafka-credentials has no key passwd "
            "(TriggerAuthentication default/kafka-auth spec.secretTargetRef[0])",
            id="key-missing",
        ),
        pytest.param(
            {"configMapTargetRef": [{"parameter": "sasl", "name": "settings", "key": "sasl"}]},
            [],
            "trigger 0: authenticationRef: ConfigMap default/settings not found "
            "(TriggerAuthentication default/kafka-auth spec.configMapTargetRef[0])",
            id="config-map-missing",
        ),
        pytest.param(
            {"env": [{"parameter": "password", "name": "KAFKA_PASSWORD"}]},
            [],
            "trigger 0: authenticationRef: environment variable KAFKA_PASSWORD is not set in "
            "the first container (TriggerAuthentication default/kafka-auth spec.env[0])",
            id="env-missing",
        ),
        pytest.param(
            {
                "secretTargetRef": [
                    {"parameter": "password", "name": "kafka-credentials", "key": "password"}
                ]
            },
            [secret(namespace="other", data={"password": encoded(SECRET)})],
            "trigger 0: authenticationRef: Secret default/kafka-credentials not found "
            "(TriggerAuthentication default/kafka-auth spec.secretTargetRef[0])",
            id="secret-in-other-namespace",
        ),
    ],
)
def test_validate_authentication_problems(
    tmp_path: Path, auth_spec: dict[str, Any], documents: list[dict[str, Any]], expected: str
) -> None:
    path = write(
        tmp_path,
        "orders.yaml",
        scaled_job(trigger={"authenticationRef": {"name": "kafka-auth"}}),
        trigger_authentication(auth_spec),
        *documents,
    )

    result = invoke(path)

    assert result.exit_code == 1
    assert lines(result) == [f"{path}: {SUBJECT}: {expected}"]
    assert SECRET not in result.output


def test_validate_unsupported_authentication(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "orders.yaml",
        scaled_job(trigger={"authenticationRef": {"name": "kafka-auth"}}),
        trigger_authentication(
            {
                "hashiCorpVault": {
                    "address": "https://vault:8200",
                    "credential": {"token": SECRET},
                },
                "podIdentity": {"provider": "aws"},
            }
        ),
    )

    result = invoke(path)

    not_supported = "not supported yet (supported: secretTargetRef, configMapTargetRef, env)"
    assert result.exit_code == 1
    assert lines(result) == [
        f"{path}: {SUBJECT}: trigger 0: authenticationRef: "
        "TriggerAuthentication default/kafka-auth is invalid; see its own problems",
        f"{path}: TriggerAuthentication default/kafka-auth: spec.hashiCorpVault: {not_supported}",
        f"{path}: TriggerAuthentication default/kafka-auth: spec.podIdentity.provider: "
        f"provider aws is {not_supported}",
    ]
    assert SECRET not in result.output


def test_validate_auth_other_namespace(tmp_path: Path) -> None:
    authentication = trigger_authentication({})
    authentication["metadata"]["namespace"] = "team-b"
    path = write(
        tmp_path,
        "orders.yaml",
        scaled_job(trigger={"authenticationRef": {"name": "kafka-auth"}}),
        authentication,
    )

    result = invoke(path)

    assert lines(result) == [
        f"{path}: {SUBJECT}: trigger 0: authenticationRef: "
        "TriggerAuthentication default/kafka-auth not found"
    ]


def test_validate_duplicate_document(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", scaled_job())
    second = write(tmp_path, "b.yaml", scaled_job())

    result = invoke(first, second)

    assert result.exit_code == 1
    assert lines(result) == [
        f"{second}: {SUBJECT}: defined twice; the first definition is in {first} line 1"
    ]


# --- files and YAML -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata: [unclosed\n",
            "line 6: invalid YAML: expected ',' or ']', but got '<stream end>' "
            "(while parsing a flow sequence started on line 5)",
            id="unclosed-flow",
        ),
        pytest.param(
            "kind: ConfigMap\n  apiVersion: v1\n",
            "line 2: invalid YAML: mapping values are not allowed here",
            id="bad-indentation",
        ),
        pytest.param(
            "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: c}\n",
            "line 3: invalid YAML: duplicate key kind (while reading a mapping started on line 1)",
            id="duplicate-key",
        ),
        pytest.param(
            "apiVersion: v1\nmetadata: {name: c}\n",
            "line 1: kind: missing",
            id="missing-kind",
        ),
        pytest.param(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n- a list\n",
            "line 6: document must be an object with apiVersion, kind and metadata",
            id="not-an-object",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Secret\nmetadata: {}\n",
            "line 1: Secret: metadata.name: missing",
            id="missing-name",
        ),
    ],
)
def test_validate_yaml_problems(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)

    result = invoke(str(path))

    assert result.exit_code == 1
    assert lines(result) == [f"{path}: {expected}"]


def test_validate_keeps_documents_before_yaml_error(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text(yaml.safe_dump(scaled_job({**KAFKA, "lagThreshold": "0"})) + "---\nkind: [\n")

    result = invoke(str(path))

    assert result.exit_code == 1
    assert lines(result)[0].startswith(f"{path}: {SUBJECT}: trigger 0: metadata.lagThreshold: ")
    assert lines(result)[1].startswith(f"{path}: line ")


def test_validate_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    result = invoke(str(path))

    assert result.exit_code == 1
    assert lines(result) == [f"{path}: cannot read the file: No such file or directory"]


def test_validate_directory(tmp_path: Path) -> None:
    result = invoke(str(tmp_path))

    assert result.exit_code == 1
    assert lines(result) == [f"{tmp_path}: cannot read the file: Is a directory"]


def test_validate_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"apiVersion: v1\nkind: ConfigMap\n\xff\xfe\n")

    result = invoke(str(path))

    assert result.exit_code == 1
    assert lines(result) == [f"{path}: line 3: not valid UTF-8 text"]


def test_validate_requires_files() -> None:
    result = invoke()

    assert result.exit_code == 2


# --- secrets --------------------------------------------------------------------------------


def test_validate_secret_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "secret.yaml",
        secret(data={"password": SECRET, "token": encoded(SECRET)}, string_data={"n": 5}),  # type: ignore[dict-item]
    )

    result = invoke(path)

    assert result.exit_code == 1
    assert lines(result) == [
        f"{path}: Secret default/kafka-credentials: data.password: must be base64-encoded",
        f"{path}: Secret default/kafka-credentials: stringData.n: "
        "must be a string; quote the value",
    ]
    assert SECRET not in result.output


def test_secret_value_never_printed(tmp_path: Path) -> None:
    """A Secret value stays out of every line, whatever else is wrong nearby."""
    documents = (
        scaled_job(
            {**KAFKA, "lagThreshold": SECRET},
            trigger={"authenticationRef": {"name": "kafka-auth"}},
            env=[
                {
                    "name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "kafka-credentials", "key": "nope"}},
                }
            ],
        ),
        trigger_authentication(
            {
                "secretTargetRef": [
                    {"parameter": "password", "name": "kafka-credentials", "key": "password"},
                    {"parameter": "token", "name": "kafka-credentials", "key": "token"},
                ]
            }
        ),
        secret(data={"password": encoded(SECRET), "bad": SECRET}, string_data={"token": SECRET}),
    )
    text = yaml.safe_dump_all(documents)
    # A syntax error right after a secret value: PyYAML's own message would quote that line.
    path = tmp_path / "orders.yaml"
    path.write_text(text + f"---\npassword: {SECRET}\n  broken: [\n")

    result = invoke(str(path))

    assert result.exit_code == 1
    assert len(lines(result)) >= 4, result.output
    assert SECRET not in result.output
    assert encoded(SECRET) not in result.output


def sasl_manifests(directory: Path, credentials: dict[str, str], **metadata: str) -> str:
    """Write a ScaledJob whose trigger reads SASL credentials through a TriggerAuthentication."""
    refs = [
        {"parameter": parameter, "name": "kafka-credentials", "key": parameter}
        for parameter in credentials
    ]
    return write(
        directory,
        "orders.yaml",
        scaled_job({**KAFKA, **metadata}, trigger={"authenticationRef": {"name": "kafka-auth"}}),
        trigger_authentication({"secretTargetRef": refs}),
        secret(string_data=credentials),
    )


def test_validate_sasl_credentials_from_secret(tmp_path: Path) -> None:
    path = sasl_manifests(tmp_path, {"username": "app", "password": SECRET}, sasl="scram_sha512")

    result = invoke(path)

    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("credentials", "metadata", "field"),
    [
        pytest.param({"username": "app"}, {"sasl": "plaintext"}, "auth.password", id="no-password"),
        pytest.param(
            {"username": "app", "password": SECRET, "ca": SECRET},
            {"sasl": "plaintext", "tls": "enable"},
            "auth.ca",
            id="ca-not-pem",
        ),
        pytest.param(
            {"username": "app", "password": SECRET, "sasl": "rot13"},
            {},
            "auth.sasl",
            id="sasl-from-auth",
        ),
    ],
)
def test_validate_auth_params_checked_by_scaler(
    tmp_path: Path, credentials: dict[str, str], metadata: dict[str, str], field: str
) -> None:
    path = sasl_manifests(tmp_path, credentials, **metadata)

    result = invoke(path)

    assert result.exit_code == 1
    assert len(lines(result)) == 1, result.output
    assert lines(result)[0].startswith(f"{path}: {SUBJECT}: trigger 0: {field}: ")
    assert SECRET not in result.output
