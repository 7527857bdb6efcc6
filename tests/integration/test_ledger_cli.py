"""The `jobrunner db upgrade` and `jobrunner history` commands on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result

from jobrunner.cli import main
from jobrunner.ledger.records import ObservedJob
from jobrunner.ledger.schema import head_revision, upgrade
from jobrunner.ledger.store import LedgerStore
from jobrunner.ledger.urls import redact_url

NOISY_LOGGERS = ("kafka", "kubernetes", "urllib3", "apscheduler", "alembic")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the root logger set-up that every `jobrunner` invocation performs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


def invoke(*arguments: str) -> Result:
    return CliRunner().invoke(main, list(arguments), env={"JOBRUNNER_DATABASE_URL": None})


def test_db_upgrade(database_url: str) -> None:
    result = invoke("db", "upgrade", "--database-url", database_url)

    assert result.exit_code == 0
    assert result.stdout.strip() == (
        f"ledger at {redact_url(database_url)} is at schema revision {head_revision()}"
    )


def test_history_empty_ledger(database_url: str) -> None:
    invoke("db", "upgrade", "--database-url", database_url)

    result = invoke("history", "--database-url", database_url)

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "NAMESPACE  SCALEDJOB  JOB  STATE  CREATED  DURATION  EXIT  REASON"
    ]


def test_history_json_empty_ledger(database_url: str) -> None:
    invoke("db", "upgrade", "--database-url", database_url)

    result = invoke("history", "--database-url", database_url, "--output", "json")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_history_json_lists_jobs(database_url: str) -> None:
    upgrade(database_url)
    store = LedgerStore.open(database_url)
    store.observe_job(
        ObservedJob(
            uid="uid-job",
            namespace="shop",
            name="orders-abcde",
            scaled_object_uid="uid-orders",
            scaled_object_name="orders",
            generation=1,
            created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            state="running",
        )
    )
    store.close()

    result = invoke("history", "--database-url", database_url, "-o", "json")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == [
        {
            "uid": "uid-job",
            "namespace": "shop",
            "name": "orders-abcde",
            "scaledJob": "orders",
            "createdAt": "2026-01-02T03:04:05+00:00",
            "state": "running",
            "startedAt": None,
            "finishedAt": None,
            "durationSeconds": None,
            "exitCode": None,
            "reason": "",
            "attempts": 0,
            "pods": [],
        }
    ]


def test_history_without_schema(database_url: str) -> None:
    result = invoke("history", "--database-url", database_url)

    lines = result.stderr.splitlines()
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "jobrunner db upgrade" in lines[0]
