"""Runner settings, read from command-line flags and JOBRUNNER_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass

from jobrunner.ledger.urls import redact_url

DEFAULT_DATABASE_URL = "sqlite:///jobrunner.db"


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

    def __repr__(self) -> str:
        # The database URL can carry a password.
        return (
            f"RunnerSettings(database_url={redact_url(self.database_url)!r}, "
            f"namespace={self.namespace!r}, kubeconfig={self.kubeconfig!r}, "
            f"workers={self.workers}, broker_timeout_seconds={self.broker_timeout_seconds}, "
            f"retention_days={self.retention_days}, retention_max_jobs={self.retention_max_jobs})"
        )
