"""jobrunner: turn queue backlog into Kubernetes Jobs, with a SQL ledger of every Job run.

The public surface is the command line (`jobrunner --help`) and the names below.
"""

from jobrunner.errors import (
    FieldProblem,
    InvalidSpecError,
    JobRunnerError,
    KubeError,
    LedgerError,
    ScalerError,
    SchemaOutdatedError,
)

__version__ = "0.1.0"

__all__ = [
    "FieldProblem",
    "InvalidSpecError",
    "JobRunnerError",
    "KubeError",
    "LedgerError",
    "ScalerError",
    "SchemaOutdatedError",
    "__version__",
]
