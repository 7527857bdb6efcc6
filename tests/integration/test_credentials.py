"""Trigger inputs from Secrets and TriggerAuthentications, resolved by the running runner."""

from __future__ import annotations

import base64

import pytest
import yaml
from kubernetes import client

from tests.integration.support import ServerEnv, apply, jobs_of, scaled_job_manifest, wait_for

pytestmark = pytest.mark.integration


def ready(api: client.ApiClient, namespace: str, name: str) -> dict:
    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "jobrunner.dev", "v1alpha1", namespace, "scaledjobs", name
    )
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def put_secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, str]) -> None:
    core = client.CoreV1Api(api)
    body = {
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    try:
        core.create_namespaced_secret(namespace, body)
    except client.exceptions.ApiException as error:
        if error.status != 409:
            raise
        core.replace_namespaced_secret(name, namespace, body)


def test_rotated_secret_is_used_without_restart(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    put_secret(api, namespace, "brokers", {"address": "127.0.0.1:1"})
    manifest = scaled_job_manifest("rotating", topic, max_replicas=1)
    trigger = manifest["spec"]["triggers"][0]
    del trigger["metadata"]["bootstrapServers"]
    trigger["metadata"]["bootstrapServersFromEnv"] = "KAFKA_BROKERS"
    container = manifest["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {
            "name": "KAFKA_BROKERS",
            "valueFrom": {"secretKeyRef": {"name": "brokers", "key": "address"}},
        }
    ]
    start_runner(namespace)
    apply(servers, namespace, manifest)
    topic.produce(10)

    wait_for(
        lambda: ready(api, namespace, "rotating").get("status") == "False",
        timeout=30,
        what="Ready=False while the Secret names a dead broker",
    )
    assert jobs_of(api, namespace, "rotating") == []

    put_secret(api, namespace, "brokers", {"address": topic.bootstrap})
    wait_for(
        lambda: len(jobs_of(api, namespace, "rotating")) == 1,
        timeout=30,
        what="a Job once the Secret names the real broker",
    )
    wait_for(
        lambda: ready(api, namespace, "rotating").get("status") == "True",
        timeout=15,
        what="Ready=True after the rotation",
    )


def authentication(name: str, secret: str, key: str) -> dict:
    return {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": name},
        "spec": {"secretTargetRef": [{"parameter": "tls", "name": secret, "key": key}]},
    }


def test_missing_secret_reported_then_resolved(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    apply(servers, namespace, authentication("kafka-auth", "kafka-secret", "tls"))
    manifest = scaled_job_manifest("authed", topic, max_replicas=1)
    manifest["spec"]["triggers"][0]["authenticationRef"] = {"name": "kafka-auth"}
    start_runner(namespace)
    apply(servers, namespace, manifest)
    topic.produce(10)

    wait_for(
        lambda: ready(api, namespace, "authed").get("status") == "False",
        timeout=30,
        what="Ready=False while the Secret is missing",
    )
    message = ready(api, namespace, "authed")["message"]
    assert "kafka-auth" in message
    assert "kafka-secret" in message
    assert jobs_of(api, namespace, "authed") == []

    put_secret(api, namespace, "kafka-secret", {"tls": "disable"})
    wait_for(
        lambda: len(jobs_of(api, namespace, "authed")) == 1,
        timeout=30,
        what="a Job once the Secret exists",
    )

    def users() -> str:
        obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "jobrunner.dev", "v1alpha1", namespace, "triggerauthentications", "kafka-auth"
        )
        return str((obj.get("status") or {}).get("scaledjobs", ""))

    wait_for(
        lambda: users() == "authed",
        timeout=10,
        what="the TriggerAuthentication's status to list its ScaledJob",
    )


def test_unsupported_provider_is_named(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    vault = {
        "apiVersion": "jobrunner.dev/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "vault-auth"},
        "spec": {"hashiCorpVault": {"address": "https://vault.invalid", "authentication": "token"}},
    }
    apply(servers, namespace, vault)
    manifest = scaled_job_manifest("vaulted", topic, max_replicas=1)
    manifest["spec"]["triggers"][0]["authenticationRef"] = {"name": "vault-auth"}
    start_runner(namespace)
    apply(servers, namespace, manifest)
    wait_for(
        lambda: "not supported yet" in ready(api, namespace, "vaulted").get("message", ""),
        timeout=30,
        what="a 'not supported yet' Ready message",
    )
    assert "hashiCorpVault" in ready(api, namespace, "vaulted")["message"]


def test_cluster_trigger_authentication_reads_runner_namespace(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    core = client.CoreV1Api(api)
    cluster_namespace = f"{namespace}-objects"
    core.create_namespace({"metadata": {"name": cluster_namespace}})
    try:
        put_secret(api, cluster_namespace, "shared-kafka", {"tls": "disable"})
        name = f"cta-{namespace}"
        cta = {
            "apiVersion": "jobrunner.dev/v1alpha1",
            "kind": "ClusterTriggerAuthentication",
            "metadata": {"name": name},
            "spec": {
                "secretTargetRef": [{"parameter": "tls", "name": "shared-kafka", "key": "tls"}]
            },
        }
        servers.kubectl_run("apply", "-f", "-", stdin=yaml.safe_dump(cta))
        manifest = scaled_job_manifest("clustered", topic, max_replicas=1)
        manifest["spec"]["triggers"][0]["authenticationRef"] = {
            "name": name,
            "kind": "ClusterTriggerAuthentication",
        }
        start_runner(namespace, extra_args=["--cluster-object-namespace", cluster_namespace])
        apply(servers, namespace, manifest)
        topic.produce(10)
        wait_for(
            lambda: len(jobs_of(api, namespace, "clustered")) == 1,
            timeout=30,
            what="a Job using the ClusterTriggerAuthentication",
        )
        servers.kubectl_run("delete", "clustertriggerauthentication", name)
    finally:
        core.delete_namespace(cluster_namespace)


def test_restricted_secret_access_ignores_other_namespaces(
    servers: ServerEnv, api, namespace, make_topic, start_runner
):
    topic = make_topic(1)
    put_secret(api, namespace, "kafka-secret", {"tls": "disable"})
    apply(servers, namespace, authentication("kafka-auth", "kafka-secret", "tls"))
    manifest = scaled_job_manifest("restricted", topic, max_replicas=1)
    manifest["spec"]["triggers"][0]["authenticationRef"] = {"name": "kafka-auth"}
    start_runner(
        namespace, extra_args=["--restrict-secret-access", "--runner-namespace", "jobrunner-system"]
    )
    apply(servers, namespace, manifest)
    topic.produce(10)
    wait_for(
        lambda: ready(api, namespace, "restricted").get("status") == "False",
        timeout=30,
        what="Ready=False: the Secret is outside the runner's namespace",
    )
    assert "kafka-secret" in ready(api, namespace, "restricted")["message"]
    assert jobs_of(api, namespace, "restricted") == []
