"""Typed model of the ScaledJob custom resource, parsed from the API server's JSON.

Field names, defaults and meanings follow KEDA's `keda.sh/v1alpha1` ScaledJob, so a KEDA
manifest works after its `apiVersion` changes. Parsing reports every invalid field at once;
trigger metadata is left as strings here and checked by the trigger's scaler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobrunner.errors import FieldProblem, InvalidSpecError

GROUP = "jobrunner.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ScaledJob"
PLURAL = "scaledjobs"

PAUSED_ANNOTATIONS = ("autoscaling.jobrunner.dev/paused", "autoscaling.keda.sh/paused")
# The spellings of false that Go's strconv.ParseBool accepts.
GO_FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})

DEFAULT_POLLING_INTERVAL = 30
DEFAULT_HISTORY_LIMIT = 100
DEFAULT_MAX_REPLICA_COUNT = 100

STRATEGIES = ("default", "custom", "accurate", "eager")
ROLLOUT_STRATEGIES = ("default", "gradual", "immediate")
PROPAGATION_POLICIES = ("background", "foreground")
CALCULATIONS = ("max", "min", "avg", "sum")
JOB_RESTART_POLICIES = ("OnFailure", "Never")
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class AuthenticationRef:
    name: str
    kind: str = "TriggerAuthentication"


@dataclass(frozen=True)
class Trigger:
    """One entry of `spec.triggers`; `metadata` is checked later by the trigger's scaler."""

    index: int
    type: str
    name: str
    metadata: Mapping[str, str]
    authentication_ref: AuthenticationRef | None = None

    @property
    def label(self) -> str:
        """The trigger's name, or its index when it has none, as users refer to it."""
        return self.name or str(self.index)


@dataclass(frozen=True)
class ScalingStrategy:
    strategy: str = "default"
    custom_scaling_queue_length_deduction: int | None = None
    custom_scaling_running_job_percentage: str = ""
    pending_pod_conditions: tuple[str, ...] = ()
    multiple_scalers_calculation: str = "max"


@dataclass(frozen=True)
class Rollout:
    """What a spec change does to Jobs of older generations.

    `gradual` leaves them to finish; any other strategy deletes them with the propagation
    policy (`background` by default).
    """

    strategy: str = "default"
    propagation_policy: str = "background"

    @property
    def gradual(self) -> bool:
        return self.strategy == "gradual"


@dataclass(frozen=True)
class ScaledJob:
    """A parsed ScaledJob. `job_template` is `spec.jobTargetRef`, a batch/v1 JobSpec."""

    namespace: str
    name: str
    uid: str
    generation: int
    job_template: Mapping[str, Any]
    triggers: tuple[Trigger, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    polling_interval: int = DEFAULT_POLLING_INTERVAL
    successful_jobs_history_limit: int = DEFAULT_HISTORY_LIMIT
    failed_jobs_history_limit: int = DEFAULT_HISTORY_LIMIT
    min_replica_count: int | None = None
    max_replica_count: int | None = None
    scaling_strategy: ScalingStrategy = ScalingStrategy()
    env_source_container_name: str = ""
    rollout: Rollout = Rollout()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def paused(self) -> bool:
        """True when a pause annotation is set to anything but a false word.

        KEDA reads the annotation with Go's ParseBool, so a value that does not parse
        (such as `yes`) pauses too.
        """
        for key in PAUSED_ANNOTATIONS:
            value = self.annotations.get(key)
            if value is not None and value.strip() not in GO_FALSE_WORDS:
                return True
        return False


def api_server_problems(scaled_job: ScaledJob) -> list[FieldProblem]:
    """Problems the CRD's CEL rules reject at apply time that parsing alone accepts.

    KEDA clamps minReplicaCount above maxReplicaCount, so the arithmetic handles it, but
    jobrunner's CRD rejects it; `jobrunner validate` reports it as the API server would.
    """
    low, high = scaled_job.min_replica_count, scaled_job.max_replica_count
    if low is not None and high is not None and low > high:
        return [FieldProblem("spec.minReplicaCount", "must not exceed maxReplicaCount")]
    return []


def parse_scaled_job(obj: Mapping[str, Any]) -> ScaledJob:
    """Parse a ScaledJob object; raise InvalidSpecError listing every invalid field."""
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace", ""))
    name = str(metadata.get("name", ""))
    spec = obj.get("spec")
    problems: list[FieldProblem] = []
    if not isinstance(spec, Mapping):
        raise InvalidSpecError(f"ScaledJob {namespace}/{name}", [FieldProblem("spec", "missing")])

    reader = _SpecReader(spec, problems)
    template = spec.get("jobTargetRef")
    if not isinstance(template, Mapping) or not isinstance(template.get("template"), Mapping):
        problems.append(FieldProblem("spec.jobTargetRef.template", "missing; give a pod template"))
        template = {}
    pod_spec = (template.get("template") or {}).get("spec") or {}
    policy = pod_spec.get("restartPolicy") if isinstance(pod_spec, Mapping) else None
    if policy and policy not in JOB_RESTART_POLICIES:
        problems.append(
            FieldProblem(
                "spec.jobTargetRef.template.spec.restartPolicy",
                "must be OnFailure or Never for a Job (empty means OnFailure)",
            )
        )
    scaled_job = ScaledJob(
        namespace=namespace,
        name=name,
        uid=str(metadata.get("uid", "")),
        generation=int(metadata.get("generation") or 0),
        job_template=template,
        triggers=_parse_triggers(spec.get("triggers"), problems),
        labels=dict(metadata.get("labels") or {}),
        annotations=dict(metadata.get("annotations") or {}),
        polling_interval=reader.integer("pollingInterval", DEFAULT_POLLING_INTERVAL, minimum=1),
        successful_jobs_history_limit=reader.integer(
            "successfulJobsHistoryLimit", DEFAULT_HISTORY_LIMIT, minimum=0
        ),
        failed_jobs_history_limit=reader.integer(
            "failedJobsHistoryLimit", DEFAULT_HISTORY_LIMIT, minimum=0
        ),
        min_replica_count=reader.optional_integer("minReplicaCount", minimum=0),
        max_replica_count=reader.optional_integer("maxReplicaCount", minimum=1),
        scaling_strategy=_parse_strategy(spec.get("scalingStrategy"), problems),
        env_source_container_name=str(spec.get("envSourceContainerName") or ""),
        rollout=_parse_rollout(spec, problems),
    )
    if problems:
        raise InvalidSpecError(f"ScaledJob {namespace}/{name}", problems)
    return scaled_job


class _SpecReader:
    """Reads integer fields of a spec mapping, collecting problems instead of raising."""

    def __init__(self, spec: Mapping[str, Any], problems: list[FieldProblem], prefix: str = "spec"):
        self.spec = spec
        self.problems = problems
        self.prefix = prefix

    def optional_integer(self, key: str, *, minimum: int) -> int | None:
        value = self.spec.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append(FieldProblem(f"{self.prefix}.{key}", "must be an integer"))
            return None
        if value < minimum:
            self.problems.append(FieldProblem(f"{self.prefix}.{key}", f"must be >= {minimum}"))
            return None
        if value > INT32_MAX:
            self.problems.append(
                FieldProblem(f"{self.prefix}.{key}", f"must be <= {INT32_MAX} (a 32-bit integer)")
            )
            return None
        return value

    def integer(self, key: str, default: int, *, minimum: int) -> int:
        value = self.optional_integer(key, minimum=minimum)
        return default if value is None else value


def _parse_triggers(raw: Any, problems: list[FieldProblem]) -> tuple[Trigger, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(FieldProblem("spec.triggers", "missing; give at least one trigger"))
        return ()
    triggers = []
    seen_names: set[str] = set()
    for index, item in enumerate(raw):
        path = f"spec.triggers[{index}]"
        if not isinstance(item, Mapping):
            problems.append(FieldProblem(path, "must be an object"))
            continue
        trigger_type = str(item.get("type") or "").strip()
        if not trigger_type:
            problems.append(FieldProblem(f"{path}.type", "missing"))
        name = str(item.get("name") or "").strip()
        if name and name in seen_names:
            problems.append(FieldProblem(f"{path}.name", "duplicate trigger name"))
        seen_names.add(name)
        if str(item.get("metricType") or ""):
            problems.append(
                FieldProblem(f"{path}.metricType", "not supported for ScaledJob; remove it")
            )
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            problems.append(FieldProblem(f"{path}.metadata", "must be a map of strings"))
            metadata = {}
        triggers.append(
            Trigger(
                index=index,
                type=trigger_type,
                name=name,
                metadata={str(k): str(v) for k, v in metadata.items()},
                authentication_ref=_parse_auth_ref(item.get("authenticationRef")),
            )
        )
    return tuple(triggers)


def _parse_rollout(spec: Mapping[str, Any], problems: list[FieldProblem]) -> Rollout:
    """Read `rollout`; the deprecated `rolloutStrategy`, when set, takes precedence."""
    raw = spec.get("rollout") or {}
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem("spec.rollout", "must be an object"))
        raw = {}
    strategy, field_name = str(raw.get("strategy") or ""), "spec.rollout.strategy"
    if spec.get("rolloutStrategy"):
        strategy, field_name = str(spec["rolloutStrategy"]), "spec.rolloutStrategy"
    if strategy and strategy not in ROLLOUT_STRATEGIES:
        problems.append(FieldProblem(field_name, f"must be one of {', '.join(ROLLOUT_STRATEGIES)}"))
    policy = str(raw.get("propagationPolicy") or "background")
    if policy not in PROPAGATION_POLICIES:
        problems.append(
            FieldProblem(
                "spec.rollout.propagationPolicy",
                f"must be one of {', '.join(PROPAGATION_POLICIES)}",
            )
        )
    return Rollout(strategy=strategy or "default", propagation_policy=policy)


def _parse_auth_ref(raw: Any) -> AuthenticationRef | None:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        return None
    return AuthenticationRef(
        name=str(raw["name"]), kind=str(raw.get("kind") or "TriggerAuthentication")
    )


def _parse_strategy(raw: Any, problems: list[FieldProblem]) -> ScalingStrategy:
    if raw is None:
        return ScalingStrategy()
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem("spec.scalingStrategy", "must be an object"))
        return ScalingStrategy()
    prefix = "spec.scalingStrategy"
    strategy = str(raw.get("strategy") or "default")
    if strategy not in STRATEGIES:
        problems.append(
            FieldProblem(f"{prefix}.strategy", f"must be one of {', '.join(STRATEGIES)}")
        )
    calculation = str(raw.get("multipleScalersCalculation") or "max")
    if calculation not in CALCULATIONS:
        problems.append(
            FieldProblem(
                f"{prefix}.multipleScalersCalculation", f"must be one of {', '.join(CALCULATIONS)}"
            )
        )
    deduction = _SpecReader(raw, problems, prefix).optional_integer(
        "customScalingQueueLengthDeduction", minimum=-(2**31)
    )
    conditions = raw.get("pendingPodConditions") or []
    return ScalingStrategy(
        strategy=strategy,
        custom_scaling_queue_length_deduction=deduction,
        custom_scaling_running_job_percentage=str(
            raw.get("customScalingRunningJobPercentage") or ""
        ),
        pending_pod_conditions=tuple(str(c) for c in conditions),
        multiple_scalers_calculation=calculation,
    )
