"""TriggerAuthentication resolution and container environments, as pure functions.

A trigger's `authenticationRef` names a TriggerAuthentication (looked up in the ScaledJob's
namespace) or a ClusterTriggerAuthentication (cluster-scoped, whose Secrets and ConfigMaps are
read from the runner's cluster-object namespace). Resolution turns its `env`,
`configMapTargetRef` and `secretTargetRef` entries into the trigger's auth parameters, in
KEDA's order: env first, then ConfigMaps, then Secrets, a later entry overwriting an earlier
one that sets the same parameter.

Nothing here does I/O. Callers pass lookups for Secrets, ConfigMaps and authentications, so
the runner can serve them from watch caches and `jobrunner validate` from YAML files.
Problems name the TriggerAuthentication, the Secret or ConfigMap and the key, never a value,
and resolved values live in a RedactedMapping whose repr shows keys only.

KEDA substitutes an empty string for a missing TriggerAuthentication, Secret, ConfigMap,
key or environment variable and only logs it. These functions report a problem instead, so
the user learns which reference is broken rather than seeing the scaler's missing-parameter
error later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jobrunner.errors import FieldProblem, InvalidSpecError
from jobrunner.resources.scaledjob import AuthenticationRef

TRIGGER_AUTHENTICATION = "TriggerAuthentication"
CLUSTER_TRIGGER_AUTHENTICATION = "ClusterTriggerAuthentication"
AUTHENTICATION_KINDS = (TRIGGER_AUTHENTICATION, CLUSTER_TRIGGER_AUTHENTICATION)

# Default namespace of the Secrets and ConfigMaps that ClusterTriggerAuthentications read.
# KEDA reads KEDA_CLUSTER_OBJECT_NAMESPACE and falls back to its own namespace.
DEFAULT_CLUSTER_OBJECT_NAMESPACE = "jobrunner"

# The pod spec of a ScaledJob, as problems name it.
JOB_POD_SPEC_PATH = "spec.jobTargetRef.template.spec"

# The spec fields resolution reads; podIdentity only with provider `none`.
SUPPORTED_FIELDS = ("secretTargetRef", "configMapTargetRef", "env", "podIdentity")
# KEDA's other credential sources, each rejected until it is implemented.
UNSUPPORTED_FIELDS = (
    "awsSecretManager",
    "azureKeyVault",
    "boundServiceAccountToken",
    "filePath",
    "gcpSecretManager",
    "hashiCorpVault",
    "oauth2",
)
# KEDA's pod identity providers, named in the message that rejects them.
POD_IDENTITY_PROVIDERS = ("aws", "aws-eks", "azure", "azure-workload", "gcp")
_NOT_SUPPORTED = "not supported yet (supported: secretTargetRef, configMapTargetRef, env)"

DataLookup = Callable[[str, str], Mapping[str, str] | None]
"""Return the data of the Secret or ConfigMap (namespace, name), or None when it does not exist.

A Secret's values are already base64-decoded.
"""


class RedactedMapping(Mapping[str, str]):
    """A read-only string mapping whose repr lists its keys only, because values can be secrets."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={sorted(self._data)!r})"


@dataclass(frozen=True)
class Resolution:
    """Values resolved so far and the problems met. A reference that failed sets no value."""

    values: RedactedMapping
    problems: tuple[FieldProblem, ...] = ()

    def checked(self, subject: str) -> RedactedMapping:
        """Return the values, or raise InvalidSpecError on `subject` listing every problem."""
        if self.problems:
            raise InvalidSpecError(subject, self.problems)
        return self.values


# --- TriggerAuthentication specs ------------------------------------------------------------


@dataclass(frozen=True)
class AuthenticationKey:
    """Identity of a TriggerAuthentication. `namespace` is "" for a cluster-scoped one."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class AuthSecretTargetRef:
    """`secretTargetRef[]`: the auth parameter `parameter` gets key `key` of Secret `name`."""

    parameter: str
    name: str
    key: str


@dataclass(frozen=True)
class AuthConfigMapTargetRef:
    """`configMapTargetRef[]`: the auth parameter gets key `key` of ConfigMap `name`."""

    parameter: str
    name: str
    key: str


@dataclass(frozen=True)
class AuthEnvironment:
    """`env[]`: the auth parameter gets variable `name` of a container of the pod template.

    An empty `container_name` means the first container, as KEDA's code does. KEDA's docs
    name envSourceContainerName instead, but the code does not use it here.
    """

    parameter: str
    name: str
    container_name: str = ""


@dataclass(frozen=True)
class AuthenticationSpec:
    """A parsed TriggerAuthentication or ClusterTriggerAuthentication."""

    key: AuthenticationKey
    secret_target_refs: tuple[AuthSecretTargetRef, ...] = ()
    config_map_target_refs: tuple[AuthConfigMapTargetRef, ...] = ()
    env: tuple[AuthEnvironment, ...] = ()


AuthenticationLookup = Callable[[AuthenticationKey], AuthenticationSpec | None]


def parse_trigger_authentication(obj: Mapping[str, Any]) -> AuthenticationSpec:
    """Parse a TriggerAuthentication or ClusterTriggerAuthentication object.

    Raise InvalidSpecError listing every invalid field, including each credential source that
    is not supported yet (HashiCorp Vault, pod identity, cloud secret managers and others).
    """
    kind = str(obj.get("kind") or TRIGGER_AUTHENTICATION)
    metadata = obj.get("metadata") or {}
    namespace = ""
    if kind != CLUSTER_TRIGGER_AUTHENTICATION:
        namespace = str(metadata.get("namespace") or "default")
    key = AuthenticationKey(kind, namespace, str(metadata.get("name") or ""))
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise InvalidSpecError(str(key), [FieldProblem("spec", "missing")])

    problems: list[FieldProblem] = []
    _check_unsupported(spec, kind, problems)
    parsed = AuthenticationSpec(
        key=key,
        secret_target_refs=tuple(
            AuthSecretTargetRef(entry["parameter"], entry["name"], entry["key"])
            for entry in _entries(spec, "secretTargetRef", ("parameter", "name", "key"), problems)
        ),
        config_map_target_refs=tuple(
            AuthConfigMapTargetRef(entry["parameter"], entry["name"], entry["key"])
            for entry in _entries(
                spec, "configMapTargetRef", ("parameter", "name", "key"), problems
            )
        ),
        env=tuple(
            AuthEnvironment(entry["parameter"], entry["name"], entry.get("containerName", ""))
            for entry in _entries(spec, "env", ("parameter", "name"), problems, ("containerName",))
        ),
    )
    if problems:
        raise InvalidSpecError(str(key), problems)
    return parsed


def _check_unsupported(spec: Mapping[str, Any], kind: str, problems: list[FieldProblem]) -> None:
    for name in spec:
        if name in SUPPORTED_FIELDS:
            continue
        if name == "filePath" and kind == TRIGGER_AUTHENTICATION:
            problems.append(
                FieldProblem("spec.filePath", f"only allowed in a {CLUSTER_TRIGGER_AUTHENTICATION}")
            )
        elif name in UNSUPPORTED_FIELDS:
            problems.append(FieldProblem(f"spec.{name}", _NOT_SUPPORTED))
        else:
            known = ", ".join(sorted((*SUPPORTED_FIELDS, *UNSUPPORTED_FIELDS)))
            problems.append(FieldProblem(f"spec.{name}", f"unknown field; known fields: {known}"))

    identity = spec.get("podIdentity")
    if identity is None:
        return
    provider = identity.get("provider") if isinstance(identity, Mapping) else None
    if not isinstance(identity, Mapping) or not isinstance(provider, str):
        problems.append(FieldProblem("spec.podIdentity.provider", "missing"))
    elif provider in POD_IDENTITY_PROVIDERS:
        problems.append(
            FieldProblem("spec.podIdentity.provider", f"provider {provider} is {_NOT_SUPPORTED}")
        )
    elif provider not in ("", "none"):
        # An unknown value is not echoed, in case it is a credential pasted in the wrong place.
        allowed = ", ".join(("none", *POD_IDENTITY_PROVIDERS))
        problems.append(FieldProblem("spec.podIdentity.provider", f"must be one of {allowed}"))


def _entries(
    spec: Mapping[str, Any],
    name: str,
    required: tuple[str, ...],
    problems: list[FieldProblem],
    optional: tuple[str, ...] = (),
) -> list[dict[str, str]]:
    """Read the list `spec.<name>` of objects whose listed fields are all strings."""
    raw = spec.get(name)
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(FieldProblem(f"spec.{name}", "must be a list"))
        return []
    entries = []
    for index, item in enumerate(raw):
        path = f"spec.{name}[{index}]"
        if not isinstance(item, Mapping):
            problems.append(FieldProblem(path, "must be an object"))
            continue
        entry: dict[str, str] = {}
        for key in (*required, *optional):
            value = item.get(key)
            if value is None or value == "":
                if key in required:
                    problems.append(FieldProblem(f"{path}.{key}", "missing"))
            elif not isinstance(value, str):
                problems.append(FieldProblem(f"{path}.{key}", "must be a string"))
            else:
                entry[key] = value
        if all(key in entry for key in required):
            entries.append(entry)
    return entries


# --- resolving auth parameters --------------------------------------------------------------


def authentication_key(ref: AuthenticationRef, *, namespace: str) -> AuthenticationKey:
    """Return the identity `ref` names from an object in `namespace`.

    A TriggerAuthentication is looked up in the referring object's namespace only, and a
    ClusterTriggerAuthentication by name only. An empty kind means TriggerAuthentication.
    """
    kind = ref.kind or TRIGGER_AUTHENTICATION
    if kind == CLUSTER_TRIGGER_AUTHENTICATION:
        return AuthenticationKey(kind, "", ref.name)
    return AuthenticationKey(kind, namespace, ref.name)


def collect_auth_params(
    ref: AuthenticationRef,
    *,
    path: str,
    namespace: str,
    cluster_object_namespace: str,
    authentications: AuthenticationLookup,
    secrets: DataLookup,
    config_maps: DataLookup,
    pod_spec: Mapping[str, Any] | None,
) -> Resolution:
    """Build a trigger's auth parameters from its `authenticationRef`, collecting problems.

    `path` locates the trigger (`spec.triggers[0]`) and `namespace` is the ScaledJob's.
    `env` entries read container variables from `pod_spec`, the pod template's spec, with
    the Secrets and ConfigMaps of `namespace`. Without a pod spec, as for a scale target
    that has no containers, each `env` parameter is "", as in KEDA.
    """
    field_name = f"{path}.authenticationRef"
    if ref.kind and ref.kind not in AUTHENTICATION_KINDS:
        problem = FieldProblem(
            f"{field_name}.kind", f"must be one of {', '.join(AUTHENTICATION_KINDS)}"
        )
        return Resolution(RedactedMapping(), (problem,))
    key = authentication_key(ref, namespace=namespace)
    spec = authentications(key)
    if spec is None:
        return Resolution(RedactedMapping(), (FieldProblem(field_name, f"{key} not found"),))

    # Secrets and ConfigMaps of a ClusterTriggerAuthentication live in the runner's namespace.
    data_namespace = namespace if key.namespace else cluster_object_namespace
    params: dict[str, str] = {}
    problems: list[FieldProblem] = []
    # KEDA's order is env, then ConfigMaps, then Secrets. A later entry overwrites an earlier one.
    resolved: list[tuple[str, str, str | None, str]] = []
    envs: dict[str, RedactedMapping] = {}
    for index, env in enumerate(spec.env):
        value, error = _env_value(env, pod_spec, envs, secrets, config_maps, namespace=namespace)
        resolved.append((f"spec.env[{index}]", env.parameter, value, error))
    for index, config_ref in enumerate(spec.config_map_target_refs):
        value, error = _data_value("ConfigMap", config_ref, config_maps, data_namespace)
        resolved.append((f"spec.configMapTargetRef[{index}]", config_ref.parameter, value, error))
    for index, secret_ref in enumerate(spec.secret_target_refs):
        value, error = _data_value("Secret", secret_ref, secrets, data_namespace)
        resolved.append((f"spec.secretTargetRef[{index}]", secret_ref.parameter, value, error))

    for entry, parameter, value, error in resolved:
        if value is None:
            problems.append(FieldProblem(field_name, f"{error} ({key} {entry})"))
        else:
            params[parameter] = value
    return Resolution(RedactedMapping(params), tuple(problems))


def _env_value(
    env: AuthEnvironment,
    pod_spec: Mapping[str, Any] | None,
    envs: dict[str, RedactedMapping],
    secrets: DataLookup,
    config_maps: DataLookup,
    *,
    namespace: str,
) -> tuple[str | None, str]:
    """Return (value, "") of an `env` entry, or (None, what failed). `envs` caches containers."""
    if pod_spec is None:
        return "", ""
    container = env.container_name
    if find_container(pod_spec, container) is None:
        return None, f"no container named {container}" if container else "the pod has no containers"
    if container not in envs:
        envs[container] = collect_container_env(
            pod_spec, container, secrets, config_maps, namespace=namespace
        ).values
    if env.name in envs[container]:
        return envs[container][env.name], ""
    where = f"container {container}" if container else "the first container"
    return None, f"environment variable {env.name} is not set in {where}"


def _data_value(
    kind: str,
    ref: AuthSecretTargetRef | AuthConfigMapTargetRef,
    lookup: DataLookup,
    namespace: str,
) -> tuple[str | None, str]:
    """Return (value, "") of a Secret or ConfigMap key, or (None, what failed)."""
    data = lookup(namespace, ref.name)
    if data is None:
        return None, f"{kind} {namespace}/{ref.name} not found"
    if ref.key not in data:
        return None, f"{kind} {namespace}/{ref.name} has no key {ref.key}"
    return data[ref.key], ""


def resolve_auth_params(
    ref: AuthenticationRef,
    *,
    subject: str,
    path: str,
    namespace: str,
    cluster_object_namespace: str,
    authentications: AuthenticationLookup,
    secrets: DataLookup,
    config_maps: DataLookup,
    pod_spec: Mapping[str, Any] | None,
) -> RedactedMapping:
    """Build a trigger's auth parameters, or raise InvalidSpecError on `subject` if any fails.

    See `collect_auth_params` for the arguments.
    """
    return collect_auth_params(
        ref,
        path=path,
        namespace=namespace,
        cluster_object_namespace=cluster_object_namespace,
        authentications=authentications,
        secrets=secrets,
        config_maps=config_maps,
        pod_spec=pod_spec,
    ).checked(subject)


# --- container environments -----------------------------------------------------------------


def collect_container_env(
    pod_spec: Mapping[str, Any],
    container_name: str,
    secrets: DataLookup,
    config_maps: DataLookup,
    *,
    namespace: str,
    path: str = JOB_POD_SPEC_PATH,
) -> Resolution:
    """Resolve a container's environment as Kubernetes would, collecting problems.

    The container is `container_name`, or the first one when that is "". `envFrom` sources
    apply first, each key with the source's prefix, then `env` entries: literal values with
    `$(VAR)` expansion against the variables resolved before them, and `valueFrom`
    secretKeyRef and configMapKeyRef. fieldRef and resourceFieldRef entries are skipped, as in
    KEDA, because their values exist only in a running pod. A reference marked `optional`
    that does not resolve is skipped. Any other sets no value and adds a problem. `path`
    locates the pod spec in its object for messages.
    """
    problems: list[FieldProblem] = []
    found = find_container(pod_spec, container_name)
    if found is None:
        message = f"no container named {container_name}" if container_name else "missing"
        return Resolution(RedactedMapping(), (FieldProblem(f"{path}.containers", message),))
    index, container = found
    container_path = f"{path}.containers[{index}]"
    values: dict[str, str] = {}
    env_from = container.get("envFrom") or []
    for position, source in enumerate(env_from if isinstance(env_from, list) else []):
        if isinstance(source, Mapping):
            _apply_env_from(
                source,
                f"{container_path}.envFrom[{position}]",
                values,
                problems,
                secrets=secrets,
                config_maps=config_maps,
                namespace=namespace,
            )
    env = container.get("env") or []
    for position, variable in enumerate(env if isinstance(env, list) else []):
        if isinstance(variable, Mapping):
            _apply_env(
                variable,
                f"{container_path}.env[{position}]",
                values,
                problems,
                secrets=secrets,
                config_maps=config_maps,
                namespace=namespace,
            )
    return Resolution(RedactedMapping(values), tuple(problems))


def resolve_container_env(
    pod_spec: Mapping[str, Any],
    container_name: str,
    secrets: DataLookup,
    config_maps: DataLookup,
    *,
    namespace: str,
    subject: str,
    path: str = JOB_POD_SPEC_PATH,
) -> RedactedMapping:
    """Resolve a container's environment, or raise InvalidSpecError on `subject` if any fails.

    See `collect_container_env` for the rules.
    """
    return collect_container_env(
        pod_spec, container_name, secrets, config_maps, namespace=namespace, path=path
    ).checked(subject)


def find_container(pod_spec: Mapping[str, Any], name: str) -> tuple[int, Mapping[str, Any]] | None:
    """Return (index, container) of the container `name`, or of the first one when `name` is ""."""
    containers = pod_spec.get("containers")
    for index, container in enumerate(containers if isinstance(containers, list) else []):
        if isinstance(container, Mapping) and (not name or container.get("name") == name):
            return index, container
    return None


def _apply_env_from(
    source: Mapping[str, Any],
    path: str,
    values: dict[str, str],
    problems: list[FieldProblem],
    *,
    secrets: DataLookup,
    config_maps: DataLookup,
    namespace: str,
) -> None:
    prefix = str(source.get("prefix") or "")
    for field_name, kind, lookup in (
        ("configMapRef", "ConfigMap", config_maps),
        ("secretRef", "Secret", secrets),
    ):
        ref = source.get(field_name)
        if not isinstance(ref, Mapping):
            continue
        name = str(ref.get("name") or "")
        data = lookup(namespace, name)
        if data is None:
            if not ref.get("optional"):
                problems.append(
                    FieldProblem(f"{path}.{field_name}", f"{kind} {namespace}/{name} not found")
                )
            continue
        for key, value in data.items():
            values[prefix + key] = value


def _apply_env(
    variable: Mapping[str, Any],
    path: str,
    values: dict[str, str],
    problems: list[FieldProblem],
    *,
    secrets: DataLookup,
    config_maps: DataLookup,
    namespace: str,
) -> None:
    name = variable.get("name")
    if not isinstance(name, str) or not name:
        problems.append(FieldProblem(f"{path}.name", "missing"))
        return
    literal = variable.get("value")
    source = variable.get("valueFrom")
    if literal not in (None, "") or not isinstance(source, Mapping):
        values[name] = expand_env_references(str(literal or ""), values)
        return
    for field_name, kind, lookup in (
        ("secretKeyRef", "Secret", secrets),
        ("configMapKeyRef", "ConfigMap", config_maps),
    ):
        ref = source.get(field_name)
        if not isinstance(ref, Mapping):
            continue
        object_name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
        data = lookup(namespace, object_name)
        if data is not None and key in data:
            values[name] = data[key]
        elif not ref.get("optional"):
            where = f"{kind} {namespace}/{object_name}"
            message = f"{where} not found" if data is None else f"{where} has no key {key}"
            problems.append(FieldProblem(f"{path}.valueFrom.{field_name}", message))
        return
    # A fieldRef or resourceFieldRef value exists only inside a running pod, so it is skipped.


def expand_env_references(text: str, variables: Mapping[str, str]) -> str:
    """Expand `$(VAR)` references in an env value the way Kubernetes does.

    `$(VAR)` becomes the variable's value, or stays as written when VAR is not defined.
    `$$` becomes a literal `$`, so `$$(VAR)` yields the text `$(VAR)`. A `$` followed by
    anything else, or an unclosed `$(`, is copied unchanged.
    """
    output: list[str] = []
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char != "$" or position + 1 == length:
            output.append(char)
            position += 1
            continue
        following = text[position + 1]
        if following == "$":
            output.append("$")
            position += 2
        elif following == "(":
            closing = text.find(")", position + 2)
            if closing == -1:
                # Unclosed reference: keep "$(" and scan on from the character after it.
                output.append("$(")
                position += 2
                continue
            name = text[position + 2 : closing]
            output.append(variables.get(name, f"$({name})"))
            position = closing + 1
        else:
            output.append("$" + following)
            position += 2
    return "".join(output)
