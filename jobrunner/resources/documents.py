"""Kubernetes manifests parsed from YAML text, and lookups over the objects they define.

This module parses text and never opens files, so it stays pure. The caller reads each file
and passes its bytes or text. Every problem found (invalid YAML, a document without a kind,
an undecodable Secret) becomes a `Problem` that names the file, the line or the object and
the field. No problem contains a value, and Secret data never reaches a message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from jobrunner.errors import FieldProblem, InvalidSpecError
from jobrunner.resources.auth import (
    AUTHENTICATION_KINDS,
    CLUSTER_TRIGGER_AUTHENTICATION,
    AuthenticationKey,
    AuthenticationSpec,
    RedactedMapping,
    parse_trigger_authentication,
)

DEFAULT_NAMESPACE = "default"
CUSTOM_RESOURCE_API_VERSIONS = ("jobrunner.dev/v1alpha1", "keda.sh/v1alpha1")
# The kinds `jobrunner validate` checks, with the apiVersions each may have.
CHECKED_KINDS: dict[str, tuple[str, ...]] = {
    "ScaledJob": CUSTOM_RESOURCE_API_VERSIONS,
    "TriggerAuthentication": CUSTOM_RESOURCE_API_VERSIONS,
    "ClusterTriggerAuthentication": CUSTOM_RESOURCE_API_VERSIONS,
    "Secret": ("v1",),
    "ConfigMap": ("v1",),
}
CLUSTER_SCOPED_KINDS = frozenset({CLUSTER_TRIGGER_AUTHENTICATION})

_TRIGGER_FIELD = re.compile(r"spec\.triggers\[(\d+)\](?:\.(.+))?")


@dataclass(frozen=True)
class Problem:
    """One problem in a manifest file, printed as `file: [line N: ]subject: field: message`.

    `line` is set for problems found before an object is known (invalid YAML, a document
    without a kind). `trigger` is the 0-based index of the trigger the problem is about,
    and `field` is then relative to that trigger (`metadata.topic`).
    """

    file: str
    message: str
    line: int | None = None
    subject: str = ""
    trigger: int | None = None
    field: str = ""
    # The first line of the object the problem is about, used to sort problems, never printed.
    # `dataclasses.field` in full, because the attribute `field` above shadows the name.
    document_line: int | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def sort_line(self) -> int:
        """The line to order the problems of one file by."""
        return self.line or self.document_line or 0

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.subject:
            parts.append(self.subject)
        if self.trigger is not None:
            parts.append(f"trigger {self.trigger}")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


@dataclass(frozen=True)
class Document:
    """One object of a manifest file. `namespace` is "" for cluster-scoped kinds."""

    file: str
    line: int
    kind: str
    namespace: str
    name: str
    body: Mapping[str, Any] = field(repr=False)

    @property
    def subject(self) -> str:
        """The object as messages name it: `ScaledJob default/orders`."""
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"

    def problem(self, field_problem: FieldProblem) -> Problem:
        """Turn a problem in this object into a Problem, attributing `spec.triggers[n]` fields."""
        match = _TRIGGER_FIELD.fullmatch(field_problem.field)
        if match:
            return Problem(
                self.file,
                field_problem.message,
                subject=self.subject,
                trigger=int(match.group(1)),
                field=match.group(2) or "",
                document_line=self.line,
            )
        return Problem(
            self.file,
            field_problem.message,
            subject=self.subject,
            field=field_problem.field,
            document_line=self.line,
        )


@dataclass
class LoadedFile:
    """The checked documents of one file, the kinds of those skipped, and the problems."""

    documents: list[Document] = field(default_factory=list)
    skipped_kinds: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def load_documents(text: str | bytes, *, file: str) -> LoadedFile:
    """Parse the YAML documents of one file; bytes must be UTF-8.

    Documents of the kinds in CHECKED_KINDS are returned, and a `kind: List` contributes its
    items. Documents of other kinds are only counted in `skipped_kinds`. A YAML error stops
    the file at that point and keeps the documents before it.
    """
    loaded = LoadedFile()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            line = error.object[: error.start].count(b"\n") + 1
            loaded.problems.append(Problem(file, "not valid UTF-8 text", line))
            return loaded
    try:
        # The loader checks the whole text for characters YAML does not allow up front.
        loader = _ManifestLoader(text)
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1
        message = "contains a control character, which YAML does not allow"
        loaded.problems.append(Problem(file, message, line))
        return loaded
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            line = node.start_mark.line + 1
            _add_object(loader.construct_document(node), file, line, loaded)
    except yaml.MarkedYAMLError as error:
        loaded.problems.append(_yaml_problem(error, file))
    finally:
        loader.dispose()
    return loaded


class _ManifestLoader(yaml.SafeLoader):
    """A safe loader that rejects duplicate mapping keys, as kubectl does.

    PyYAML keeps the last of two equal keys without a word, which would let validate check
    a different object from the one the API server rejects.
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, _value in node.value:
                # Merge keys (`<<`) may legitimately be overridden by explicit keys.
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key_node.value}",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def _yaml_problem(error: yaml.MarkedYAMLError, file: str) -> Problem:
    # Only the short descriptions are used: str(error) quotes the offending source line,
    # which can hold a Secret value.
    mark = error.problem_mark or error.context_mark
    message = f"invalid YAML: {error.problem or 'syntax error'}"
    if error.context and error.context_mark is not None:
        message += f" ({error.context} started on line {error.context_mark.line + 1})"
    return Problem(file, message, line=mark.line + 1 if mark else None)


def _add_object(data: Any, file: str, line: int, loaded: LoadedFile) -> None:
    if data is None:
        return
    if not isinstance(data, Mapping):
        loaded.problems.append(
            Problem(file, "document must be an object with apiVersion, kind and metadata", line)
        )
        return
    kind = data.get("kind")
    if kind == "List" and isinstance(data.get("items"), list):
        for item in data["items"]:
            _add_object(item, file, line, loaded)
    elif not isinstance(kind, str) or not kind:
        loaded.problems.append(Problem(file, "kind: missing", line))
    elif kind not in CHECKED_KINDS:
        loaded.skipped_kinds.append(kind)
    else:
        checked = _checked_document(data, kind, file, line)
        if isinstance(checked, Problem):
            loaded.problems.append(checked)
        else:
            loaded.documents.append(checked)


def _checked_document(
    data: Mapping[str, Any], kind: str, file: str, line: int
) -> Document | Problem:
    metadata = data.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return Problem(file, "metadata.name: missing", line, subject=kind)
    namespace = ""
    if kind not in CLUSTER_SCOPED_KINDS:
        namespace = str(metadata.get("namespace") or DEFAULT_NAMESPACE)
    document = Document(file, line, kind, namespace, name, data)
    if data.get("apiVersion") not in CHECKED_KINDS[kind]:
        allowed = " or ".join(CHECKED_KINDS[kind])
        return document.problem(FieldProblem("apiVersion", f"must be {allowed}"))
    return document


# --- the objects of a set of files ----------------------------------------------------------


@dataclass
class Manifests:
    """The Secrets, ConfigMaps and authentications that a set of manifests defines.

    Lookups match `jobrunner.resources.auth`: `secret_data` and `config_map_data` take
    (namespace, name), `authentication` an AuthenticationKey.
    """

    documents: list[Document] = field(default_factory=list)
    secrets: dict[tuple[str, str], RedactedMapping] = field(default_factory=dict)
    config_maps: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    authentications: dict[AuthenticationKey, AuthenticationSpec] = field(default_factory=dict)
    # Authentications whose own spec is invalid, so that a trigger referring to one reports
    # that instead of "not found".
    invalid_authentications: set[AuthenticationKey] = field(default_factory=set)

    def secret_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.secrets.get((namespace, name))

    def config_map_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.config_maps.get((namespace, name))

    def authentication(self, key: AuthenticationKey) -> AuthenticationSpec | None:
        return self.authentications.get(key)

    def of_kind(self, kind: str) -> list[Document]:
        return [document for document in self.documents if document.kind == kind]


def index_documents(documents: list[Document]) -> tuple[Manifests, list[Problem]]:
    """Parse the Secrets, ConfigMaps and authentications among `documents`.

    A second object with the kind, namespace and name of an earlier one is a problem and is
    left out, because applying both would keep only one of them.
    """
    manifests = Manifests()
    problems: list[Problem] = []
    first_seen: dict[tuple[str, str, str], Document] = {}
    for document in documents:
        identity = (document.kind, document.namespace, document.name)
        earlier = first_seen.setdefault(identity, document)
        if earlier is not document:
            message = (
                f"defined twice; the first definition is in {earlier.file} line {earlier.line}"
            )
            problems.append(
                Problem(
                    document.file, message, subject=document.subject, document_line=document.line
                )
            )
            continue
        manifests.documents.append(document)
        problems.extend(_index_document(document, manifests))
    return manifests, problems


def _index_document(document: Document, manifests: Manifests) -> list[Problem]:
    key = (document.namespace, document.name)
    field_problems: list[FieldProblem] = []
    if document.kind == "Secret":
        manifests.secrets[key] = RedactedMapping(_secret_data(document.body, field_problems))
    elif document.kind == "ConfigMap":
        data = _string_map(document.body, "data", field_problems)
        manifests.config_maps[key] = data
    elif document.kind in AUTHENTICATION_KINDS:
        try:
            spec = parse_trigger_authentication(document.body)
        except InvalidSpecError as error:
            manifests.invalid_authentications.add(
                AuthenticationKey(document.kind, document.namespace, document.name)
            )
            field_problems.extend(error.problems)
        else:
            manifests.authentications[spec.key] = spec
    return [document.problem(problem) for problem in field_problems]


def _secret_data(body: Mapping[str, Any], problems: list[FieldProblem]) -> dict[str, str]:
    """Decode a Secret's `data` (base64) and lay `stringData` over it, as the API server does."""
    values: dict[str, str] = {}
    for key, encoded in _string_map(body, "data", problems).items():
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            problems.append(FieldProblem(f"data.{key}", "must be base64-encoded"))
            continue
        values[key] = decoded.decode("utf-8", errors="replace")
    values.update(_string_map(body, "stringData", problems))
    return values


def _string_map(body: Mapping[str, Any], name: str, problems: list[FieldProblem]) -> dict[str, str]:
    raw = body.get(name)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(FieldProblem(name, "must be a map of strings"))
        return {}
    values: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            values[str(key)] = value
        else:
            problems.append(FieldProblem(f"{name}.{key}", "must be a string; quote the value"))
    return values
