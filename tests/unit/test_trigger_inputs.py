"""Trigger inputs resolved from credential sources, and scalers rebuilt when they change."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from jobrunner.controller.triggers import (
    TriggerContext,
    build_scalers,
    fingerprint,
    refresh,
    resolve_inputs,
)
from jobrunner.errors import InvalidSpecError
from jobrunner.resources.auth import AuthenticationKey, AuthenticationSpec, AuthSecretTargetRef
from jobrunner.resources.scaledjob import parse_scaled_job

SECRET = "hunter2-fixture"


class FakeSources:
    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}
        self.auths: dict[AuthenticationKey, AuthenticationSpec] = {}

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.secrets.get((namespace, name))

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return None

    def authentication(self, key: AuthenticationKey) -> AuthenticationSpec | None:
        return self.auths.get(key)


def scaled_job(*, trigger_type: str = "kafka", auth: bool = False, from_env: bool = False):
    metadata = {"consumerGroup": "g", "topic": "t"}
    if from_env:
        metadata["bootstrapServersFromEnv"] = "BROKERS"
    else:
        metadata["bootstrapServers"] = "127.0.0.1:9092"
    trigger: dict = {"type": trigger_type, "metadata": metadata}
    if auth:
        trigger["authenticationRef"] = {"name": "kafka-auth"}
    container = {
        "name": "worker",
        "image": "x",
        "env": [{"name": "BROKERS", "valueFrom": {"secretKeyRef": {"name": "env", "key": "b"}}}],
    }
    return parse_scaled_job(
        {
            "metadata": {"name": "sj", "namespace": "shop", "uid": "u1", "generation": 1},
            "spec": {
                "jobTargetRef": {"template": {"spec": {"containers": [container]}}},
                "triggers": [trigger],
            },
        }
    )


def context(sources: FakeSources, **kwargs) -> TriggerContext:
    return TriggerContext(
        scaled_job=scaled_job(**kwargs), sources=sources, cluster_object_namespace="jobrunner"
    )


def add_auth(sources: FakeSources, password: str | None) -> None:
    key = AuthenticationKey("TriggerAuthentication", "shop", "kafka-auth")
    sources.auths[key] = AuthenticationSpec(
        key=key,
        secret_target_refs=(
            AuthSecretTargetRef("sasl", "kafka-secret", "sasl"),
            AuthSecretTargetRef("username", "kafka-secret", "username"),
            AuthSecretTargetRef("password", "kafka-secret", "password"),
        ),
    )
    if password is not None:
        sources.secrets[("shop", "kafka-secret")] = {
            "sasl": "scram_sha512",
            "username": "alice",
            "password": password,
        }


def test_from_env_reads_secret_key_ref() -> None:
    sources = FakeSources()
    sources.secrets[("shop", "env")] = {"b": "10.0.0.1:9092"}
    ctx = context(sources, from_env=True)
    source = resolve_inputs(ctx.scaled_job.triggers[0], ctx)
    assert source.resolved_env["BROKERS"] == "10.0.0.1:9092"


def test_auth_params_from_trigger_authentication() -> None:
    sources = FakeSources()
    add_auth(sources, SECRET)
    ctx = context(sources, auth=True)
    source = resolve_inputs(ctx.scaled_job.triggers[0], ctx)
    assert source.auth_params["password"] == SECRET
    assert SECRET not in repr(source.auth_params)


def test_missing_secret_names_objects_not_values() -> None:
    sources = FakeSources()
    add_auth(sources, None)
    ctx = context(sources, auth=True)
    with pytest.raises(InvalidSpecError) as caught:
        resolve_inputs(ctx.scaled_job.triggers[0], ctx)
    message = str(caught.value)
    assert "kafka-auth" in message
    assert "kafka-secret" in message


def test_missing_authentication_is_a_problem() -> None:
    ctx = context(FakeSources(), auth=True)
    with pytest.raises(InvalidSpecError) as caught:
        resolve_inputs(ctx.scaled_job.triggers[0], ctx)
    assert "kafka-auth" in str(caught.value)


def test_unresolved_credentials_leave_scaler_unbuilt() -> None:
    sources = FakeSources()
    add_auth(sources, None)
    (item,) = build_scalers(context(sources, auth=True))
    assert item.scaler is None


def test_unknown_type_is_a_spec_error() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        build_scalers(context(FakeSources(), trigger_type="kafkaa"))
    assert "spec.triggers[0].type" in str(caught.value)


def test_refresh_rebuilds_only_on_change() -> None:
    sources = FakeSources()
    add_auth(sources, SECRET)
    ctx = context(sources, auth=True)
    (item,) = build_scalers(ctx)
    first = item.scaler
    refresh(item, ctx)
    assert item.scaler is first

    add_auth(sources, SECRET + "-rotated")
    refresh(item, ctx)
    assert item.scaler is not first
    assert item.scaler is not None


def test_refresh_after_secret_removed_raises_and_drops_scaler() -> None:
    sources = FakeSources()
    add_auth(sources, SECRET)
    ctx = context(sources, auth=True)
    (item,) = build_scalers(ctx)
    sources.secrets.clear()
    with pytest.raises(InvalidSpecError):
        refresh(item, ctx)
    assert item.scaler is None


def test_fingerprint_changes_with_any_value() -> None:
    sources = FakeSources()
    add_auth(sources, SECRET)
    ctx = context(sources, auth=True)
    before = fingerprint(resolve_inputs(ctx.scaled_job.triggers[0], ctx))
    add_auth(sources, "other")
    after = fingerprint(resolve_inputs(ctx.scaled_job.triggers[0], ctx))
    assert before != after
    assert SECRET not in before
