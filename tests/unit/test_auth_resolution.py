"""Unit tests of TriggerAuthentication resolution and container environment resolution."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from jobrunner.errors import InvalidSpecError
from jobrunner.resources.auth import (
    AuthConfigMapTargetRef,
    AuthenticationKey,
    AuthenticationSpec,
    AuthEnvironment,
    AuthSecretTargetRef,
    RedactedMapping,
    Resolution,
    authentication_key,
    collect_auth_params,
    collect_container_env,
    expand_env_references,
    parse_trigger_authentication,
    resolve_auth_params,
    resolve_container_env,
)
from jobrunner.resources.scaledjob import AuthenticationRef
from jobrunner.scalers.metadata import TriggerInput

NAMESPACE = "team-a"
CLUSTER_NAMESPACE = "jobrunner"
SUBJECT = f"ScaledJob {NAMESPACE}/orders"
PATH = "spec.triggers[0]"
FIELD = "spec.triggers[0].authenticationRef"
# Values that must never appear in a problem message or a repr.
SECRET = "hunter2-s3cret"
CLUSTER_SECRET = "cluster-hunter2"

SECRETS: dict[tuple[str, str], dict[str, str]] = {
    (NAMESPACE, "kafka-credentials"): {"username": "app", "password": SECRET},
    (CLUSTER_NAMESPACE, "kafka-credentials"): {"username": "shared", "password": CLUSTER_SECRET},
    (NAMESPACE, "env-secret"): {"TOKEN": SECRET, "USER": "envuser"},
}
CONFIG_MAPS: dict[tuple[str, str], dict[str, str]] = {
    (NAMESPACE, "kafka-settings"): {"sasl": "plaintext", "tls": "disable"},
    (CLUSTER_NAMESPACE, "kafka-settings"): {"sasl": "scram_sha512"},
    (NAMESPACE, "env-config"): {"BROKERS": "kafka:9092", "GROUP": "workers"},
}

POD_SPEC: dict[str, Any] = {
    "containers": [
        {
            "name": "consumer",
            "env": [
                {"name": "KAFKA_USER", "value": "consumer-user"},
                {
                    "name": "KAFKA_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "kafka-credentials", "key": "password"}},
                },
            ],
        },
        {"name": "sidecar", "env": [{"name": "KAFKA_USER", "value": "sidecar-user"}]},
    ]
}


def secret_lookup(namespace: str, name: str) -> Mapping[str, str] | None:
    return SECRETS.get((namespace, name))


def config_map_lookup(namespace: str, name: str) -> Mapping[str, str] | None:
    return CONFIG_MAPS.get((namespace, name))


def spec(
    *,
    kind: str = "TriggerAuthentication",
    namespace: str = NAMESPACE,
    name: str = "kafka-auth",
    secrets: tuple[AuthSecretTargetRef, ...] = (),
    config_maps: tuple[AuthConfigMapTargetRef, ...] = (),
    env: tuple[AuthEnvironment, ...] = (),
) -> AuthenticationSpec:
    return AuthenticationSpec(
        key=AuthenticationKey(
            kind, "" if kind == "ClusterTriggerAuthentication" else namespace, name
        ),
        secret_target_refs=secrets,
        config_map_target_refs=config_maps,
        env=env,
    )


def collect(
    authentication: AuthenticationSpec | None,
    ref: AuthenticationRef | None = None,
    *,
    pod_spec: Mapping[str, Any] | None = POD_SPEC,
) -> Resolution:
    known = {authentication.key: authentication} if authentication else {}
    return collect_auth_params(
        ref or AuthenticationRef("kafka-auth"),
        path=PATH,
        namespace=NAMESPACE,
        cluster_object_namespace=CLUSTER_NAMESPACE,
        authentications=known.get,
        secrets=secret_lookup,
        config_maps=config_map_lookup,
        pod_spec=pod_spec,
    )


def messages(resolution: Resolution) -> list[str]:
    return [problem.message for problem in resolution.problems]


# --- building auth params -------------------------------------------------------------------


def test_secret_target_ref_reads_secret_key() -> None:
    resolution = collect(
        spec(secrets=(AuthSecretTargetRef("password", "kafka-credentials", "password"),))
    )

    assert resolution.problems == ()
    assert dict(resolution.values) == {"password": SECRET}


def test_config_map_target_ref_reads_key() -> None:
    resolution = collect(
        spec(config_maps=(AuthConfigMapTargetRef("sasl", "kafka-settings", "sasl"),))
    )

    assert resolution.problems == ()
    assert dict(resolution.values) == {"sasl": "plaintext"}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        pytest.param("", "consumer-user", id="first-container-by-default"),
        pytest.param("consumer", "consumer-user", id="named-first"),
        pytest.param("sidecar", "sidecar-user", id="named-second"),
    ],
)
def test_env_reads_container_variable(container: str, expected: str) -> None:
    resolution = collect(spec(env=(AuthEnvironment("username", "KAFKA_USER", container),)))

    assert resolution.problems == ()
    assert dict(resolution.values) == {"username": expected}


def test_env_reads_variable_from_secret() -> None:
    resolution = collect(spec(env=(AuthEnvironment("password", "KAFKA_PASSWORD"),)))

    assert resolution.problems == ()
    assert resolution.values["password"] == SECRET


def test_secret_over_config_map_over_env() -> None:
    resolution = collect(
        spec(
            secrets=(AuthSecretTargetRef("username", "kafka-credentials", "username"),),
            config_maps=(
                AuthConfigMapTargetRef("username", "kafka-settings", "sasl"),
                AuthConfigMapTargetRef("tls", "kafka-settings", "tls"),
            ),
            env=(
                AuthEnvironment("username", "KAFKA_USER"),
                AuthEnvironment("tls", "KAFKA_USER"),
                AuthEnvironment("envOnly", "KAFKA_USER"),
            ),
        )
    )

    assert resolution.problems == ()
    assert resolution.values["username"] == "app"
    assert resolution.values["tls"] == "disable"
    assert resolution.values["envOnly"] == "consumer-user"


def test_later_entry_of_same_kind_overwrites() -> None:
    resolution = collect(
        spec(
            secrets=(
                AuthSecretTargetRef("user", "kafka-credentials", "username"),
                AuthSecretTargetRef("user", "env-secret", "USER"),
            )
        )
    )

    assert resolution.values["user"] == "envuser"


def test_cluster_auth_reads_cluster_namespace() -> None:
    cluster = spec(
        kind="ClusterTriggerAuthentication",
        secrets=(AuthSecretTargetRef("password", "kafka-credentials", "password"),),
        config_maps=(AuthConfigMapTargetRef("sasl", "kafka-settings", "sasl"),),
    )

    resolution = collect(cluster, AuthenticationRef("kafka-auth", "ClusterTriggerAuthentication"))

    assert resolution.problems == ()
    assert dict(resolution.values) == {"password": CLUSTER_SECRET, "sasl": "scram_sha512"}


def test_cluster_auth_env_reads_job_namespace() -> None:
    cluster = spec(
        kind="ClusterTriggerAuthentication", env=(AuthEnvironment("password", "KAFKA_PASSWORD"),)
    )

    resolution = collect(cluster, AuthenticationRef("kafka-auth", "ClusterTriggerAuthentication"))

    assert resolution.values["password"] == SECRET


def test_auth_looked_up_in_own_namespace() -> None:
    elsewhere = spec(
        namespace="team-b", secrets=(AuthSecretTargetRef("p", "kafka-credentials", "password"),)
    )

    resolution = collect(elsewhere)

    assert messages(resolution) == [f"TriggerAuthentication {NAMESPACE}/kafka-auth not found"]
    assert dict(resolution.values) == {}


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        pytest.param(
            AuthenticationRef("a"),
            AuthenticationKey("TriggerAuthentication", NAMESPACE, "a"),
            id="default-kind",
        ),
        pytest.param(
            AuthenticationRef("a", ""),
            AuthenticationKey("TriggerAuthentication", NAMESPACE, "a"),
            id="empty-kind",
        ),
        pytest.param(
            AuthenticationRef("a", "ClusterTriggerAuthentication"),
            AuthenticationKey("ClusterTriggerAuthentication", "", "a"),
            id="cluster",
        ),
    ],
)
def test_authentication_key(ref: AuthenticationRef, expected: AuthenticationKey) -> None:
    assert authentication_key(ref, namespace=NAMESPACE) == expected


def test_env_without_pod_spec_is_empty() -> None:
    resolution = collect(spec(env=(AuthEnvironment("username", "KAFKA_USER"),)), pod_spec=None)

    assert resolution.problems == ()
    assert dict(resolution.values) == {"username": ""}


# --- problems -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authentication", "expected"),
    [
        pytest.param(
            spec(secrets=(AuthSecretTargetRef("password", "missing-secret", "password"),)),
            f"Secret {NAMESPACE}/missing-secret not found "
            f"(TriggerAuthentication {NAMESPACE}/kafka-auth spec.secretTargetRef[0])",
            id="secret-missing",
        ),
        pytest.param(
            spec(secrets=(AuthSecretTargetRef("password", "kafka-credentials", "passwd"),)),
            f"Secret {NAMESPACE}/kafka-credentials has no key passwd "
            f"(TriggerAuthentication {NAMESPACE}/kafka-auth spec.secretTargetRef[0])",
            id="secret-key-missing",
        ),
        pytest.param(
            spec(config_maps=(AuthConfigMapTargetRef("sasl", "missing-config", "sasl"),)),
            f"ConfigMap {NAMESPACE}/missing-config not found "
            f"(TriggerAuthentication {NAMESPACE}/kafka-auth spec.configMapTargetRef[0])",
            id="config-map-missing",
        ),
        pytest.param(
            spec(config_maps=(AuthConfigMapTargetRef("sasl", "kafka-settings", "mechanism"),)),
            f"ConfigMap {NAMESPACE}/kafka-settings has no key mechanism "
            f"(TriggerAuthentication {NAMESPACE}/kafka-auth spec.configMapTargetRef[0])",
            id="config-map-key-missing",
        ),
        pytest.param(
            spec(env=(AuthEnvironment("username", "KAFKA_USER", "worker"),)),
            f"no container named worker (TriggerAuthentication {NAMESPACE}/kafka-auth spec.env[0])",
            id="container-missing",
        ),
        pytest.param(
            spec(env=(AuthEnvironment("username", "NOT_SET"),)),
            "environment variable NOT_SET is not set in the first container "
            f"(TriggerAuthentication {NAMESPACE}/kafka-auth spec.env[0])",
            id="variable-missing",
        ),
        pytest.param(
            spec(
                kind="ClusterTriggerAuthentication",
                secrets=(AuthSecretTargetRef("token", "env-secret", "TOKEN"),),
            ),
            f"Secret {CLUSTER_NAMESPACE}/env-secret not found "
            "(ClusterTriggerAuthentication kafka-auth spec.secretTargetRef[0])",
            id="cluster-secret-only-in-job-namespace",
        ),
    ],
)
def test_reference_problems(authentication: AuthenticationSpec, expected: str) -> None:
    ref = AuthenticationRef("kafka-auth", authentication.key.kind)

    resolution = collect(authentication, ref)

    assert [problem.field for problem in resolution.problems] == [FIELD]
    assert messages(resolution) == [expected]
    assert dict(resolution.values) == {}


def test_missing_trigger_authentication() -> None:
    resolution = collect(None, AuthenticationRef("kafka-auth", "ClusterTriggerAuthentication"))

    assert messages(resolution) == ["ClusterTriggerAuthentication kafka-auth not found"]


def test_unknown_authentication_kind() -> None:
    resolution = collect(spec(), AuthenticationRef("kafka-auth", "SecretStore"))

    assert [problem.field for problem in resolution.problems] == [f"{FIELD}.kind"]
    assert messages(resolution) == [
        "must be one of TriggerAuthentication, ClusterTriggerAuthentication"
    ]


def test_failed_reference_keeps_other_params() -> None:
    resolution = collect(
        spec(
            secrets=(
                AuthSecretTargetRef("password", "kafka-credentials", "password"),
                AuthSecretTargetRef("token", "missing-secret", "token"),
            )
        )
    )

    assert len(resolution.problems) == 1
    assert dict(resolution.values) == {"password": SECRET}


def test_resolve_auth_params_raises() -> None:
    authentication = spec(
        secrets=(
            AuthSecretTargetRef("password", "kafka-credentials", "password"),
            AuthSecretTargetRef("token", "kafka-credentials", "token"),
        )
    )

    with pytest.raises(InvalidSpecError) as caught:
        resolve_auth_params(
            AuthenticationRef("kafka-auth"),
            subject=SUBJECT,
            path=PATH,
            namespace=NAMESPACE,
            cluster_object_namespace=CLUSTER_NAMESPACE,
            authentications={authentication.key: authentication}.get,
            secrets=secret_lookup,
            config_maps=config_map_lookup,
            pod_spec=POD_SPEC,
        )

    assert caught.value.subject == SUBJECT
    assert "has no key token" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_resolve_auth_params_returns_values() -> None:
    authentication = spec(
        secrets=(AuthSecretTargetRef("password", "kafka-credentials", "password"),)
    )

    values = resolve_auth_params(
        AuthenticationRef("kafka-auth"),
        subject=SUBJECT,
        path=PATH,
        namespace=NAMESPACE,
        cluster_object_namespace=CLUSTER_NAMESPACE,
        authentications={authentication.key: authentication}.get,
        secrets=secret_lookup,
        config_maps=config_map_lookup,
        pod_spec=POD_SPEC,
    )

    assert dict(values) == {"password": SECRET}


def test_redacted_mapping_repr_hides_values() -> None:
    values = RedactedMapping({"password": SECRET, "username": "app"})
    source = TriggerInput(subject=SUBJECT, path=PATH, metadata={}, auth_params=values)

    assert repr(values) == "RedactedMapping(keys=['password', 'username'])"
    assert SECRET not in repr(source)
    assert SECRET not in str(values)
    assert values == {"password": SECRET, "username": "app"}


# --- parsing TriggerAuthentication objects --------------------------------------------------


def authentication_object(spec_body: Any, *, kind: str = "TriggerAuthentication") -> dict[str, Any]:
    return {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "kafka-auth", "namespace": NAMESPACE},
        "spec": spec_body,
    }


def parse_problems(spec_body: Any, *, kind: str = "TriggerAuthentication") -> dict[str, str]:
    with pytest.raises(InvalidSpecError) as caught:
        parse_trigger_authentication(authentication_object(spec_body, kind=kind))
    return {problem.field: problem.message for problem in caught.value.problems}


def test_parse_trigger_authentication() -> None:
    parsed = parse_trigger_authentication(
        authentication_object(
            {
                "secretTargetRef": [{"parameter": "password", "name": "creds", "key": "pw"}],
                "configMapTargetRef": [{"parameter": "sasl", "name": "settings", "key": "sasl"}],
                "env": [
                    {"parameter": "username", "name": "USER"},
                    {"parameter": "group", "name": "GROUP", "containerName": "sidecar"},
                ],
                "podIdentity": {"provider": "none"},
            }
        )
    )

    assert parsed == AuthenticationSpec(
        key=AuthenticationKey("TriggerAuthentication", NAMESPACE, "kafka-auth"),
        secret_target_refs=(AuthSecretTargetRef("password", "creds", "pw"),),
        config_map_target_refs=(AuthConfigMapTargetRef("sasl", "settings", "sasl"),),
        env=(AuthEnvironment("username", "USER"), AuthEnvironment("group", "GROUP", "sidecar")),
    )


def test_parse_cluster_auth_no_namespace() -> None:
    parsed = parse_trigger_authentication(
        authentication_object({}, kind="ClusterTriggerAuthentication")
    )

    assert parsed.key == AuthenticationKey("ClusterTriggerAuthentication", "", "kafka-auth")
    assert str(parsed.key) == "ClusterTriggerAuthentication kafka-auth"


NOT_SUPPORTED = "not supported yet (supported: secretTargetRef, configMapTargetRef, env)"


@pytest.mark.parametrize(
    ("spec_body", "kind", "expected"),
    [
        pytest.param(
            {"hashiCorpVault": {"address": "https://vault:8200", "authentication": "token"}},
            "TriggerAuthentication",
            {"spec.hashiCorpVault": NOT_SUPPORTED},
            id="vault",
        ),
        pytest.param(
            {"podIdentity": {"provider": "aws"}},
            "TriggerAuthentication",
            {"spec.podIdentity.provider": f"provider aws is {NOT_SUPPORTED}"},
            id="pod-identity",
        ),
        pytest.param(
            {"podIdentity": {"provider": "aws-iam"}},
            "TriggerAuthentication",
            {
                "spec.podIdentity.provider": "must be one of none, aws, aws-eks, azure, "
                "azure-workload, gcp"
            },
            id="pod-identity-unknown",
        ),
        pytest.param(
            {"podIdentity": {}},
            "TriggerAuthentication",
            {"spec.podIdentity.provider": "missing"},
            id="pod-identity-without-provider",
        ),
        pytest.param(
            {"azureKeyVault": {"vaultUri": "https://vault"}},
            "TriggerAuthentication",
            {"spec.azureKeyVault": NOT_SUPPORTED},
            id="azure-key-vault",
        ),
        pytest.param(
            {"filePath": "kafka.json"},
            "TriggerAuthentication",
            {"spec.filePath": "only allowed in a ClusterTriggerAuthentication"},
            id="file-path-namespaced",
        ),
        pytest.param(
            {"filePath": "kafka.json"},
            "ClusterTriggerAuthentication",
            {"spec.filePath": NOT_SUPPORTED},
            id="file-path-cluster",
        ),
        pytest.param(
            {"secretTargetRefs": []},
            "TriggerAuthentication",
            {
                "spec.secretTargetRefs": "unknown field; known fields: awsSecretManager, "
                "azureKeyVault, boundServiceAccountToken, configMapTargetRef, env, filePath, "
                "gcpSecretManager, hashiCorpVault, oauth2, podIdentity, secretTargetRef"
            },
            id="unknown-field",
        ),
        pytest.param(
            {"secretTargetRef": [{"parameter": "password", "name": "creds"}]},
            "TriggerAuthentication",
            {"spec.secretTargetRef[0].key": "missing"},
            id="secret-key-missing",
        ),
        pytest.param(
            {"configMapTargetRef": [{"name": "settings", "key": "sasl"}]},
            "TriggerAuthentication",
            {"spec.configMapTargetRef[0].parameter": "missing"},
            id="config-map-parameter-missing",
        ),
        pytest.param(
            {"env": [{"parameter": "username", "name": 5}]},
            "TriggerAuthentication",
            {"spec.env[0].name": "must be a string"},
            id="env-name-not-string",
        ),
        pytest.param(
            {"secretTargetRef": {"parameter": "password"}},
            "TriggerAuthentication",
            {"spec.secretTargetRef": "must be a list"},
            id="not-a-list",
        ),
        pytest.param(
            {"env": ["USER"]},
            "TriggerAuthentication",
            {"spec.env[0]": "must be an object"},
            id="entry-not-object",
        ),
    ],
)
def test_parse_trigger_authentication_problems(
    spec_body: dict[str, Any], kind: str, expected: dict[str, str]
) -> None:
    assert parse_problems(spec_body, kind=kind) == expected


def test_parse_trigger_authentication_without_spec() -> None:
    assert parse_problems(None) == {"spec": "missing"}


# --- container environments -----------------------------------------------------------------


def container_env(containers: list[dict[str, Any]], name: str = "") -> Resolution:
    return collect_container_env(
        {"containers": containers},
        name,
        secret_lookup,
        config_map_lookup,
        namespace=NAMESPACE,
    )


def test_container_env_literal_and_references() -> None:
    resolution = container_env(
        [
            {
                "name": "main",
                "env": [
                    {"name": "PLAIN", "value": "a"},
                    {"name": "EMPTY"},
                    {
                        "name": "FROM_SECRET",
                        "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "TOKEN"}},
                    },
                    {
                        "name": "FROM_CONFIG",
                        "valueFrom": {"configMapKeyRef": {"name": "env-config", "key": "GROUP"}},
                    },
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
            }
        ]
    )

    assert resolution.problems == ()
    assert dict(resolution.values) == {
        "PLAIN": "a",
        "EMPTY": "",
        "FROM_SECRET": SECRET,
        "FROM_CONFIG": "workers",
    }


def test_container_env_from_with_prefix() -> None:
    resolution = container_env(
        [
            {
                "name": "main",
                "envFrom": [
                    {"configMapRef": {"name": "env-config"}},
                    {"secretRef": {"name": "env-secret"}, "prefix": "S_"},
                ],
            }
        ]
    )

    assert resolution.problems == ()
    assert dict(resolution.values) == {
        "BROKERS": "kafka:9092",
        "GROUP": "workers",
        "S_TOKEN": SECRET,
        "S_USER": "envuser",
    }


def test_container_env_precedence() -> None:
    resolution = container_env(
        [
            {
                "name": "main",
                "envFrom": [
                    {"configMapRef": {"name": "env-config"}},
                    {"secretRef": {"name": "env-secret"}, "prefix": "GR"},
                    {"configMapRef": {"name": "kafka-settings"}, "prefix": "G"},
                ],
                "env": [{"name": "BROKERS", "value": "override:9092"}],
            }
        ]
    )

    # A later envFrom source overwrites an earlier one, and env overwrites envFrom.
    assert resolution.values["BROKERS"] == "override:9092"
    assert resolution.values["GROUP"] == "workers"
    assert resolution.values["GRUSER"] == "envuser"
    assert resolution.values["Gsasl"] == "plaintext"


def test_container_env_expands_earlier_variables() -> None:
    resolution = container_env(
        [
            {
                "name": "main",
                "envFrom": [{"configMapRef": {"name": "env-config"}}],
                "env": [
                    {"name": "HOST", "value": "kafka"},
                    {"name": "ADDRESS", "value": "$(HOST):9092,$(BROKERS)"},
                    {"name": "LATER_FIRST", "value": "$(LATER)"},
                    {"name": "LATER", "value": "x"},
                ],
            }
        ]
    )

    assert resolution.values["ADDRESS"] == "kafka:9092,kafka:9092"
    # Only variables defined before the entry are expanded, as in Kubernetes.
    assert resolution.values["LATER_FIRST"] == "$(LATER)"


def test_container_env_selects_named_container() -> None:
    containers = [
        {"name": "first", "env": [{"name": "WHO", "value": "first"}]},
        {"name": "second", "env": [{"name": "WHO", "value": "second"}]},
    ]

    assert container_env(containers).values["WHO"] == "first"
    assert container_env(containers, "second").values["WHO"] == "second"


def test_container_env_optional_skipped() -> None:
    resolution = container_env(
        [
            {
                "name": "main",
                "envFrom": [{"secretRef": {"name": "absent", "optional": True}}],
                "env": [
                    {
                        "name": "A",
                        "valueFrom": {
                            "secretKeyRef": {"name": "absent", "key": "k", "optional": True}
                        },
                    },
                    {
                        "name": "B",
                        "valueFrom": {
                            "configMapKeyRef": {
                                "name": "env-config",
                                "key": "NOPE",
                                "optional": True,
                            }
                        },
                    },
                ],
            }
        ]
    )

    assert resolution.problems == ()
    assert dict(resolution.values) == {}


@pytest.mark.parametrize(
    ("container", "field", "message"),
    [
        pytest.param(
            {"name": "main", "envFrom": [{"secretRef": {"name": "absent"}}]},
            "spec.jobTargetRef.template.spec.containers[0].envFrom[0].secretRef",
            f"Secret {NAMESPACE}/absent not found",
            id="env-from-secret",
        ),
        pytest.param(
            {"name": "main", "envFrom": [{"configMapRef": {"name": "absent"}}]},
            "spec.jobTargetRef.template.spec.containers[0].envFrom[0].configMapRef",
            f"ConfigMap {NAMESPACE}/absent not found",
            id="env-from-config-map",
        ),
        pytest.param(
            {
                "name": "main",
                "env": [
                    {
                        "name": "A",
                        "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "NOPE"}},
                    }
                ],
            },
            "spec.jobTargetRef.template.spec.containers[0].env[0].valueFrom.secretKeyRef",
            f"Secret {NAMESPACE}/env-secret has no key NOPE",
            id="secret-key",
        ),
        pytest.param(
            {
                "name": "main",
                "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}
                ],
            },
            "spec.jobTargetRef.template.spec.containers[0].env[0].valueFrom.configMapKeyRef",
            f"ConfigMap {NAMESPACE}/absent not found",
            id="config-map",
        ),
        pytest.param(
            {"name": "main", "env": [{"value": "x"}]},
            "spec.jobTargetRef.template.spec.containers[0].env[0].name",
            "missing",
            id="env-name-missing",
        ),
    ],
)
def test_container_env_problems(container: dict[str, Any], field: str, message: str) -> None:
    resolution = container_env([container])

    assert [(p.field, p.message) for p in resolution.problems] == [(field, message)]
    assert SECRET not in message


def test_container_env_missing_container() -> None:
    resolution = container_env([{"name": "main"}], "worker")

    assert [(p.field, p.message) for p in resolution.problems] == [
        ("spec.jobTargetRef.template.spec.containers", "no container named worker")
    ]


def test_container_env_no_containers() -> None:
    resolution = container_env([])

    assert [(p.field, p.message) for p in resolution.problems] == [
        ("spec.jobTargetRef.template.spec.containers", "missing")
    ]


def test_resolve_container_env_raises() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        resolve_container_env(
            {"containers": [{"name": "main", "envFrom": [{"secretRef": {"name": "absent"}}]}]},
            "",
            secret_lookup,
            config_map_lookup,
            namespace=NAMESPACE,
            subject=SUBJECT,
        )

    assert caught.value.subject == SUBJECT
    assert f"Secret {NAMESPACE}/absent not found" in str(caught.value)


def test_resolve_container_env_redacted() -> None:
    values = resolve_container_env(
        POD_SPEC, "", secret_lookup, config_map_lookup, namespace=NAMESPACE, subject=SUBJECT
    )

    assert values["KAFKA_PASSWORD"] == SECRET
    assert SECRET not in repr(values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", "plain", id="no-reference"),
        pytest.param("$(HOST)", "kafka", id="reference"),
        pytest.param("a$(HOST)b$(PORT)c", "akafkab9092c", id="two-references"),
        pytest.param("$(UNSET)", "$(UNSET)", id="undefined-kept"),
        pytest.param("$$(HOST)", "$(HOST)", id="escaped-reference"),
        pytest.param("$$", "$", id="escaped-dollar"),
        pytest.param("$$$(HOST)", "$kafka", id="escaped-then-reference"),
        pytest.param("cost $5", "cost $5", id="dollar-other"),
        pytest.param("end$", "end$", id="trailing-dollar"),
        pytest.param("$(HOST", "$(HOST", id="unclosed"),
        # The name runs to the first ")", so it is "HOST$(PORT", which is undefined.
        pytest.param("$(HOST$(PORT)", "$(HOST$(PORT)", id="nested-reference"),
        pytest.param("$()", "$()", id="empty-name"),
        pytest.param("$(EMPTY)x", "x", id="defined-empty"),
    ],
)
def test_expand_env_references(text: str, expected: str) -> None:
    variables = {"HOST": "kafka", "PORT": "9092", "EMPTY": ""}

    assert expand_env_references(text, variables) == expected
