"""The triggers of one ScaledJob: their inputs, their scalers, and one reading of them.

A trigger's inputs are its metadata, the target container's environment and the parameters
of its TriggerAuthentication. They are resolved from the watch caches on every poll; when
they change (a rotated password, say) the trigger's scaler is rebuilt before it measures.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jobrunner.errors import FieldProblem, InvalidSpecError, ScalerError
from jobrunner.resources.auth import (
    AuthenticationKey,
    AuthenticationSpec,
    collect_auth_params,
    collect_container_env,
)
from jobrunner.resources.scaledjob import ScaledJob, Trigger
from jobrunner.scalers import Scaler, TriggerInput, scaler_class
from jobrunner.scaling.scaledjob import TriggerValue

log = logging.getLogger(__name__)


class Sources(Protocol):
    """Source of credentials; `jobrunner.kube.sources.CredentialSources` in the runner."""

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...
    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None: ...
    def authentication(self, key: AuthenticationKey) -> AuthenticationSpec | None: ...


class NoSources:
    """Sources with nothing in them, for ScaledJobs whose triggers need no credentials."""

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return None

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return None

    def authentication(self, key: AuthenticationKey) -> AuthenticationSpec | None:
        return None


@dataclass
class TriggerScaler:
    """One trigger, its current scaler, and the fingerprint of the inputs it was built from.

    `scaler` is None while the trigger's credentials cannot be resolved; each poll retries.
    """

    trigger: Trigger
    scaler: Scaler | None = None
    inputs_fingerprint: str = ""
    last_error: str | None = None

    def close(self) -> None:
        if self.scaler is not None:
            self.scaler.close()
            self.scaler = None


@dataclass(frozen=True)
class TriggerContext:
    """Inputs of trigger resolution besides the trigger itself."""

    scaled_job: ScaledJob
    sources: Sources
    cluster_object_namespace: str

    @property
    def subject(self) -> str:
        return f"ScaledJob {self.scaled_job.key}"


def resolve_inputs(trigger: Trigger, context: TriggerContext) -> TriggerInput:
    """Resolve a trigger's environment and auth parameters; raise InvalidSpecError on failure.

    The problems name the TriggerAuthentication, the Secret or ConfigMap and the key, never a
    value.
    """
    scaled_job, sources = context.scaled_job, context.sources
    path = f"spec.triggers[{trigger.index}]"
    pod_spec = (scaled_job.job_template.get("template") or {}).get("spec") or {}
    problems: list[FieldProblem] = []
    env: Mapping[str, str] = {}
    if pod_spec.get("containers"):
        resolution = collect_container_env(
            pod_spec,
            scaled_job.env_source_container_name,
            sources.secret,
            sources.config_map,
            namespace=scaled_job.namespace,
        )
        env = resolution.values
        # Only `...FromEnv` parameters read the environment, so its problems matter only then.
        if any(key.endswith("FromEnv") for key in trigger.metadata):
            problems.extend(resolution.problems)
    auth: Mapping[str, str] = {}
    if trigger.authentication_ref is not None:
        try:
            resolution = collect_auth_params(
                trigger.authentication_ref,
                path=path,
                namespace=scaled_job.namespace,
                cluster_object_namespace=context.cluster_object_namespace,
                authentications=sources.authentication,
                secrets=sources.secret,
                config_maps=sources.config_map,
                pod_spec=pod_spec,
            )
        except InvalidSpecError as error:
            problems.extend(
                FieldProblem(f"{path}.authenticationRef", f"{error.subject}: {problem}")
                for problem in error.problems
            )
        else:
            auth = resolution.values
            problems.extend(resolution.problems)
    if problems:
        raise InvalidSpecError(context.subject, problems)
    return TriggerInput(
        subject=context.subject,
        path=path,
        metadata=trigger.metadata,
        resolved_env=env,
        auth_params=auth,
    )


def fingerprint(source: TriggerInput) -> str:
    """Digest of a trigger's inputs; it changes when any value, a credential among them, does."""
    payload = json.dumps(
        [dict(source.metadata), dict(source.resolved_env), dict(source.auth_params)],
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def build_scalers(context: TriggerContext) -> list[TriggerScaler]:
    """Check every trigger and build the scalers whose inputs resolve.

    Raise InvalidSpecError, listing every trigger's problems at once, for an unknown type or
    for metadata that is invalid once its inputs are resolved. A trigger whose credentials do
    not resolve yet (a Secret not created yet, say) gets no scaler, and each poll retries it.
    """
    problems: list[FieldProblem] = []
    built: list[TriggerScaler] = []
    for trigger in context.scaled_job.triggers:
        item = TriggerScaler(trigger)
        try:
            scaler_class(
                trigger.type, subject=context.subject, path=f"spec.triggers[{trigger.index}]"
            )
            source = resolve_inputs(trigger, context)
        except InvalidSpecError as error:
            # Credentials that do not resolve yet are the first poll's to report.
            if _unknown_type(error):
                problems.extend(error.problems)
            built.append(item)
            continue
        try:
            _rebuild(item, source)
        except InvalidSpecError as error:
            problems.extend(error.problems)
        built.append(item)
    if problems:
        for item in built:
            item.close()
        raise InvalidSpecError(context.subject, problems)
    return built


def _unknown_type(error: InvalidSpecError) -> bool:
    return any(problem.field.endswith(".type") for problem in error.problems)


def _rebuild(item: TriggerScaler, source: TriggerInput) -> None:
    cls = scaler_class(item.trigger.type, subject=source.subject, path=source.path)
    scaler = cls.from_settings(cls.parse_settings(source))
    item.close()
    item.scaler = scaler
    item.inputs_fingerprint = fingerprint(source)


def refresh(item: TriggerScaler, context: TriggerContext) -> None:
    """Re-resolve a trigger's inputs and rebuild its scaler when they changed.

    Raise InvalidSpecError when the inputs do not resolve or no longer parse; the trigger
    then reports that error on this poll and keeps no scaler.
    """
    try:
        source = resolve_inputs(item.trigger, context)
        if item.scaler is not None and fingerprint(source) == item.inputs_fingerprint:
            return
        _rebuild(item, source)
    except InvalidSpecError:
        item.close()
        item.inputs_fingerprint = ""
        raise


@dataclass(frozen=True)
class Reading:
    """The trigger values of one poll, and the messages of the triggers that failed."""

    values: list[TriggerValue] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def measure_triggers(
    scalers: Sequence[TriggerScaler], context: TriggerContext, log_context: dict[str, Any]
) -> Reading:
    """Refresh and measure every trigger; a failing trigger is logged and left out."""
    reading = Reading()
    for item in scalers:
        trigger_context = {**log_context, "trigger": item.trigger.label}
        try:
            refresh(item, context)
            if item.scaler is None:
                raise ScalerError("the trigger has no scaler")
            measurement = item.scaler.measure()
        except (ScalerError, InvalidSpecError) as error:
            message = _failure_message(error)
            # Log a failure when it starts or changes; the same failure on every poll
            # would flood the log, so repeats go to DEBUG.
            level = logging.WARNING if message != item.last_error else logging.DEBUG
            log.log(
                level,
                "trigger failed, no Jobs from it on this poll: %s",
                message,
                extra=trigger_context,
            )
            item.last_error = message
            reading.errors.append(f"trigger {item.trigger.label}: {message}")
            continue
        if item.last_error is not None:
            log.info("trigger recovered", extra=trigger_context)
            item.last_error = None
        reading.values.append(
            TriggerValue(
                item.trigger.label, measurement.queue_length, measurement.target, measurement.active
            )
        )
    return reading


def _failure_message(error: ScalerError | InvalidSpecError) -> str:
    if isinstance(error, InvalidSpecError):
        return "; ".join(str(problem) for problem in error.problems)
    return str(error)
