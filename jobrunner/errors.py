"""The one exception tree of jobrunner.

Third-party exceptions are wrapped at the boundary with `raise ... from`, so callers only ever
catch `JobRunnerError` and its subclasses. Messages name the object and the field and never
contain a field's value, because a value can be a credential.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class JobRunnerError(Exception):
    """Base class of every error jobrunner raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: its path inside the object (`spec.triggers[0].metadata.topic`)."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidSpecError(JobRunnerError):
    """An object's spec, or a trigger's metadata, has one or more invalid fields."""

    def __init__(self, subject: str, problems: Sequence[FieldProblem]) -> None:
        self.subject = subject
        self.problems = tuple(problems)
        details = "; ".join(str(problem) for problem in self.problems)
        super().__init__(f"{subject}: {details}")


class ScalerError(JobRunnerError):
    """A trigger could not measure its event source on this poll."""


class KubeError(JobRunnerError):
    """A Kubernetes API call failed."""


class LedgerError(JobRunnerError):
    """The ledger database could not be read or written."""


class SchemaOutdatedError(LedgerError):
    """The ledger's schema revision is behind the code's; `jobrunner db upgrade` fixes it."""
