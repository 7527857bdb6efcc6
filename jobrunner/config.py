"""Runner settings, read from command-line flags and JOBRUNNER_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobrunner.ledger.urls import redact_url

DEFAULT_DATABASE_URL = "sqlite:///jobrunner.db"
DEFAULT_RUNNER_NAMESPACE = "jobrunner"
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def detect_runner_namespace() -> str:
    """Return the namespace of the runner's pod when in a cluster, else `jobrunner`."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip() or DEFAULT_RUNNER_NAMESPACE
    except OSError:
        return DEFAULT_RUNNER_NAMESPACE


@dataclass(frozen=True)
class RunnerSettings:
    """Settings of `jobrunner run`.

    `namespace` limits the watch to one namespace (None watches all). `workers` bounds the
    thread pool that runs polls, so a slow broker delays at most that many polls at once.
    """

    database_url: str = DEFAULT_DATABASE_URL
    namespace: str | None = None
    kubeconfig: str | None = None
    workers: int = 8
    broker_timeout_seconds: float = 5.0
    # Ledger retention, off unless set: Jobs created more than this many days ago, and the
    # oldest Jobs beyond this count, are deleted every retention_interval_seconds.
    retention_days: float | None = None
    retention_max_jobs: int | None = None
    retention_interval_seconds: int = 3600
    # The namespace the runner runs in. ClusterTriggerAuthentications read their Secrets and
    # ConfigMaps from cluster_object_namespace, which defaults to it.
    runner_namespace: str = DEFAULT_RUNNER_NAMESPACE
    cluster_object_namespace: str = DEFAULT_RUNNER_NAMESPACE
    # Read Secrets only from runner_namespace, so the runner's RBAC can be limited to it.
    restrict_secret_access: bool = False

    def __repr__(self) -> str:
        # The database URL can carry a password.
        return (
            f"RunnerSettings(database_url={redact_url(self.database_url)!r}, "
            f"namespace={self.namespace!r}, kubeconfig={self.kubeconfig!r}, "
            f"workers={self.workers}, broker_timeout_seconds={self.broker_timeout_seconds}, "
            f"retention_days={self.retention_days}, retention_max_jobs={self.retention_max_jobs}, "
            f"runner_namespace={self.runner_namespace!r}, "
            f"cluster_object_namespace={self.cluster_object_namespace!r}, "
            f"restrict_secret_access={self.restrict_secret_access})"
        )
