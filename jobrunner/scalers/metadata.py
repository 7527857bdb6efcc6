"""Typed reading of trigger metadata, with KEDA's lookup and conversion rules.

A parameter is looked up in its declared sources in order: the trigger's `metadata` (M), the
target container's environment through `<name>FromEnv` (E), and the parameters resolved from
the trigger's authentication (A). The first value that is not blank after trimming wins.
Integers must be JSON integers (so `1.5`, `+5` and `010` are invalid), booleans take Go's
`ParseBool` spellings, and every problem is collected so the user sees them all at once.

Messages name the parameter and the source it came from, never the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from jobrunner.errors import FieldProblem, InvalidSpecError

TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_JSON_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")

SOURCE_NAMES = {"M": "metadata", "E": "environment", "A": "authentication"}


@dataclass(frozen=True)
class TriggerInput:
    """Everything a scaler reads its settings from.

    `path` locates the trigger in its object for messages (`spec.triggers[0]`), and
    `subject` names the object (`ScaledJob default/orders`).
    """

    subject: str
    path: str
    metadata: Mapping[str, str]
    resolved_env: Mapping[str, str] = field(default_factory=dict)
    auth_params: Mapping[str, str] = field(default_factory=dict)


class MetadataReader:
    """Reads typed parameters from a TriggerInput and collects every problem."""

    def __init__(self, source: TriggerInput) -> None:
        self.source = source
        self.problems: list[FieldProblem] = []

    def problem(self, name: str, message: str, *, where: str = "M") -> None:
        prefix = f"{self.source.path}.metadata" if where != "A" else f"{self.source.path}.auth"
        self.problems.append(FieldProblem(f"{prefix}.{name}", message))

    def raw(self, name: str, sources: str = "M") -> tuple[str, str] | None:
        """Return (value, source letter) of the first non-blank value, or None."""
        for letter in sources:
            value: str | None = None
            if letter == "M":
                value = self.source.metadata.get(name)
            elif letter == "E":
                env_name = (self.source.metadata.get(f"{name}FromEnv") or "").strip()
                value = self.source.resolved_env.get(env_name) if env_name else None
            elif letter == "A":
                value = self.source.auth_params.get(name)
            if value is not None and value.strip():
                return value.strip(), letter
        return None

    def string(
        self, name: str, *, sources: str = "M", default: str = "", required: bool = False
    ) -> str:
        found = self.raw(name, sources)
        if found is None:
            if required:
                self.problem(name, f"missing required parameter ({self._where(sources)})")
            return default
        return found[0]

    def integer(
        self,
        name: str,
        *,
        default: int,
        sources: str = "M",
        minimum: int | None = None,
        exclusive_minimum: bool = False,
    ) -> int:
        found = self.raw(name, sources)
        if found is None:
            return default
        text, letter = found
        if not _JSON_INTEGER.fullmatch(text):
            self.problem(name, "must be an integer", where=letter)
            return default
        value = int(text)
        if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
            relation = ">" if exclusive_minimum else ">="
            self.problem(name, f"must be {relation} {minimum}", where=letter)
            return default
        return value

    def boolean(self, name: str, *, default: bool = False, sources: str = "M") -> bool:
        found = self.raw(name, sources)
        if found is None:
            return default
        text, letter = found
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        self.problem(name, "must be true or false", where=letter)
        return default

    def enum(self, name: str, allowed: Sequence[str], *, default: str, sources: str = "M") -> str:
        found = self.raw(name, sources)
        if found is None:
            return default
        text, letter = found
        if text not in allowed:
            self.problem(name, f"must be one of {', '.join(allowed)}", where=letter)
            return default
        return text

    def string_list(
        self, name: str, *, sources: str = "M", required: bool = False
    ) -> tuple[str, ...]:
        text = self.string(name, sources=sources, required=required)
        return tuple(item.strip() for item in text.split(",") if item.strip()) if text else ()

    def key_value_pairs(self, name: str, *, sources: str = "M") -> tuple[tuple[str, str], ...]:
        """Read a `k1=v1,k2=v2` list; an item without exactly one `=` is a problem.

        Keys and values are kept untrimmed, as KEDA's Kafka scaler keeps oauthExtensions.
        """
        found = self.raw(name, sources)
        if found is None:
            return ()
        text, letter = found
        pairs = []
        for item in text.split(","):
            key, separator, value = item.partition("=")
            if not separator or "=" in value:
                self.problem(name, "must be a list of key=value pairs", where=letter)
                return ()
            pairs.append((key, value))
        return tuple(pairs)

    def check(self) -> None:
        if self.problems:
            raise InvalidSpecError(self.source.subject, self.problems)

    @staticmethod
    def _where(sources: str) -> str:
        names = []
        for letter in sources:
            names.append("<name>FromEnv" if letter == "E" else SOURCE_NAMES[letter])
        return "looked in " + ", ".join(names)


def parse_json_number(text: str) -> float | None:
    """Parse a JSON number, or return None; KEDA parses float parameters this way."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def masked_repr(settings: Any, *, shown: Sequence[str]) -> str:
    """Build a dataclass's repr showing the `shown` fields and only whether the others are set.

    Auth settings use it, so a credential never reaches a repr, a log line or a traceback.
    """
    parts = [f"{name}={getattr(settings, name)!r}" for name in shown]
    parts += [
        f"{item.name}={'<set>' if getattr(settings, item.name) else '<unset>'}"
        for item in fields(settings)
        if item.name not in shown
    ]
    return f"{type(settings).__name__}({', '.join(parts)})"
