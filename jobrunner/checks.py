"""Offline checks of manifest files, behind `jobrunner validate` and `jobrunner plan`.

The spec is checked by `parse_scaled_job` and trigger metadata by each scaler's
`parse_settings`, the code the runner uses. `jobrunner.resources.auth` resolves each
trigger's authenticationRef and the target container's environment. References resolve
against the documents given only, so a Secret that exists in the cluster but not in the
files is reported as not found.

NOTE: the runner's controller does not call `jobrunner.resources.auth` yet. It passes no
auth parameters and only literal env values to the scalers, so a ScaledJob that passes
here can still fail in the runner when it relies on authenticationRef or on env values
from Secrets, ConfigMaps or envFrom.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jobrunner.errors import FieldProblem, InvalidSpecError
from jobrunner.resources.auth import (
    JOB_POD_SPEC_PATH,
    RedactedMapping,
    authentication_key,
    collect_auth_params,
    collect_container_env,
    find_container,
)
from jobrunner.resources.documents import (
    CHECKED_KINDS,
    Document,
    Manifests,
    Problem,
    index_documents,
    load_documents,
)
from jobrunner.resources.scaledjob import (
    ScaledJob,
    Trigger,
    api_server_problems,
    parse_scaled_job,
)
from jobrunner.scalers import Thresholds, TriggerInput, scaler_class, trigger_thresholds


@dataclass(frozen=True)
class CheckedTrigger:
    """A trigger whose metadata parsed, with its settings and thresholds.

    `thresholds` is None for a trigger type that does not state them yet, which validate
    accepts and plan cannot work with.
    """

    trigger: Trigger
    settings: Any = field(repr=False)
    thresholds: Thresholds | None


@dataclass
class CheckedScaledJob:
    """One ScaledJob document after the checks; `scaled_job` is None if its spec is invalid."""

    document: Document
    scaled_job: ScaledJob | None
    triggers: list[CheckedTrigger] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class ManifestCheck:
    """The outcome of checking a set of files."""

    files: Sequence[str]
    manifests: Manifests
    skipped_kinds: list[str]
    scaled_jobs: list[CheckedScaledJob]
    problems: list[Problem]

    def summary(self) -> str:
        """Return a line such as `3 documents checked in 1 file: 1 ScaledJob; no problems`."""
        counts = Counter(document.kind for document in self.manifests.documents)
        kinds = ", ".join(_count(counts[kind], kind) for kind in CHECKED_KINDS if counts[kind])
        line = (
            f"{_count(len(self.manifests.documents), 'document')} checked in "
            f"{_count(len(self.files), 'file')}"
        )
        if kinds:
            line += f": {kinds}"
        if self.skipped_kinds:
            skipped = Counter(self.skipped_kinds)
            listed = ", ".join(_count(n, kind) for kind, n in sorted(skipped.items()))
            line += f"; skipped {listed} (kinds not checked)"
        if self.problems:
            return f"{line}; {_count(len(self.problems), 'problem')}"
        return f"{line}; no problems"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def check_files(
    paths: Sequence[str], *, cluster_object_namespace: str, api_server_rules: bool = True
) -> ManifestCheck:
    """Read and check every document of `paths`. An unreadable file is a problem too."""
    documents: list[Document] = []
    skipped: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            problems.append(Problem(path, f"cannot read the file: {error.strerror or error}"))
            continue
        loaded = load_documents(data, file=path)
        documents.extend(loaded.documents)
        skipped.extend(loaded.skipped_kinds)
        problems.extend(loaded.problems)

    manifests, index_problems = index_documents(documents)
    problems.extend(index_problems)
    scaled_jobs = [
        check_scaled_job(document, manifests, cluster_object_namespace=cluster_object_namespace)
        for document in manifests.of_kind("ScaledJob")
    ]
    for checked in scaled_jobs:
        # `plan` passes api_server_rules=False to explain the arithmetic KEDA applies to
        # such specs; `validate` reports what the API server would reject.
        if api_server_rules and checked.scaled_job is not None:
            problems.extend(
                checked.document.problem(p) for p in api_server_problems(checked.scaled_job)
            )
    for checked in scaled_jobs:
        problems.extend(checked.problems)
    # Group the problems by file, in the order the files were given, then by line.
    order = {path: position for position, path in enumerate(paths)}
    problems.sort(key=lambda problem: (order.get(problem.file, len(order)), problem.sort_line))
    return ManifestCheck(paths, manifests, skipped, scaled_jobs, problems)


def check_scaled_job(
    document: Document, manifests: Manifests, *, cluster_object_namespace: str
) -> CheckedScaledJob:
    """Check a ScaledJob's spec, its container environment and every trigger."""
    body = document.body
    problems = [document.problem(p) for p in _metadata_type_problems(body)]
    try:
        scaled_job: ScaledJob | None = parse_scaled_job(_with_namespace(body, document))
    except InvalidSpecError as error:
        scaled_job = None
        problems.extend(document.problem(p) for p in error.problems)
    checked = CheckedScaledJob(document, scaled_job, problems=problems)

    parts = scaled_job or _parse_parts(body, document)
    if parts is None:
        return checked
    pod_spec = _pod_spec(parts)
    env = _container_env(parts, pod_spec, manifests, checked)
    subject = document.subject
    for trigger in parts.triggers:
        path = f"spec.triggers[{trigger.index}]"
        field_problems: list[FieldProblem] = []
        auth = RedactedMapping()
        ref = trigger.authentication_ref
        if ref is not None:
            key = authentication_key(ref, namespace=document.namespace)
            if key in manifests.invalid_authentications:
                message = f"{key} is invalid; see its own problems"
                field_problems.append(FieldProblem(f"{path}.authenticationRef", message))
            else:
                resolution = collect_auth_params(
                    ref,
                    path=path,
                    namespace=document.namespace,
                    cluster_object_namespace=cluster_object_namespace,
                    authentications=manifests.authentication,
                    secrets=manifests.secret_data,
                    config_maps=manifests.config_map_data,
                    pod_spec=pod_spec,
                )
                auth = resolution.values
                field_problems.extend(resolution.problems)
        source = TriggerInput(
            subject=subject,
            path=path,
            metadata=trigger.metadata,
            resolved_env=env,
            auth_params=auth,
        )
        try:
            scaler = scaler_class(trigger.type, subject=subject, path=path)
            settings = scaler.parse_settings(source)
        except InvalidSpecError as error:
            field_problems.extend(error.problems)
        else:
            try:
                thresholds: Thresholds | None = trigger_thresholds(trigger.type, settings)
            except KeyError:
                thresholds = None
            checked.triggers.append(CheckedTrigger(trigger, settings, thresholds))
        checked.problems.extend(document.problem(p) for p in field_problems)
    return checked


def _with_namespace(body: Mapping[str, Any], document: Document) -> dict[str, Any]:
    """Return a copy of `body` whose metadata has the namespace it gets when applied."""
    metadata = dict(body.get("metadata") or {})
    metadata["namespace"] = document.namespace
    return {**body, "metadata": metadata}


def _parse_parts(body: Mapping[str, Any], document: Document) -> ScaledJob | None:
    """Parse what can be parsed of a ScaledJob whose spec is invalid, to check its triggers.

    `parse_scaled_job` raises on any problem and so returns no triggers. Parsing each
    trigger alone, inside an otherwise minimal spec, still checks every trigger that is
    valid itself. Problems met here were already reported by the full parse and are dropped.
    """
    spec = body.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("triggers"), list):
        return None
    template = spec.get("jobTargetRef")
    if not isinstance(template, Mapping) or not isinstance(template.get("template"), Mapping):
        template = {"template": {}}
    container_name = spec.get("envSourceContainerName")
    base: ScaledJob | None = None
    triggers: list[Trigger] = []
    for index, raw in enumerate(spec["triggers"]):
        minimal = {
            "spec": {
                "jobTargetRef": template,
                "triggers": [raw],
                "envSourceContainerName": container_name if isinstance(container_name, str) else "",
            },
        }
        try:
            base = parse_scaled_job(_with_namespace({**body, **minimal}, document))
        except InvalidSpecError:
            continue
        triggers.append(replace(base.triggers[0], index=index))
    if base is None:
        return None
    return replace(base, triggers=tuple(triggers))


def _pod_spec(scaled_job: ScaledJob) -> Mapping[str, Any]:
    template = scaled_job.job_template.get("template")
    spec = template.get("spec") if isinstance(template, Mapping) else None
    return spec if isinstance(spec, Mapping) else {}


def _container_env(
    scaled_job: ScaledJob,
    pod_spec: Mapping[str, Any],
    manifests: Manifests,
    checked: CheckedScaledJob,
) -> RedactedMapping:
    """Resolve the envSourceContainerName container's environment, recording its problems."""
    name = scaled_job.env_source_container_name
    if name and find_container(pod_spec, name) is None:
        message = f"no container named {name} in {JOB_POD_SPEC_PATH}.containers"
        checked.problems.append(
            checked.document.problem(FieldProblem("spec.envSourceContainerName", message))
        )
        return RedactedMapping()
    template = checked.document.body.get("spec", {}).get("jobTargetRef", {})
    if not isinstance(template, Mapping) or not isinstance(template.get("template"), Mapping):
        # parse_scaled_job reports the missing pod template.
        return RedactedMapping()
    resolution = collect_container_env(
        pod_spec,
        name,
        manifests.secret_data,
        manifests.config_map_data,
        namespace=checked.document.namespace,
    )
    checked.problems.extend(checked.document.problem(p) for p in resolution.problems)
    return resolution.values


def _metadata_type_problems(body: Mapping[str, Any]) -> list[FieldProblem]:
    """Report trigger metadata values that are not strings, which the API server rejects.

    `parse_scaled_job` turns every value into a string, so an unquoted `lagThreshold: 10`
    would pass here and then fail `kubectl apply`.
    """
    spec = body.get("spec")
    triggers = spec.get("triggers") if isinstance(spec, Mapping) else None
    problems = []
    for index, trigger in enumerate(triggers if isinstance(triggers, list) else []):
        metadata = trigger.get("metadata") if isinstance(trigger, Mapping) else None
        for key, value in (metadata or {}).items() if isinstance(metadata, Mapping) else ():
            if not isinstance(value, str):
                problems.append(
                    FieldProblem(
                        f"spec.triggers[{index}].metadata.{key}",
                        "must be a string; quote the value",
                    )
                )
    return problems
