"""Unit tests of the ledger store on a temporary SQLite file, and of URL redaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from jobrunner.config import RunnerSettings
from jobrunner.errors import SchemaOutdatedError
from jobrunner.ledger.models import JobRow, ScalingDecisionRow
from jobrunner.ledger.records import DecisionInput, HistoryFilter, ObservedJob
from jobrunner.ledger.schema import upgrade
from jobrunner.ledger.store import LedgerStore
from jobrunner.ledger.urls import redact_url

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET = "s3cret"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def store(database_url: str) -> Iterator[LedgerStore]:
    upgrade(database_url)
    ledger = LedgerStore.open(database_url)
    yield ledger
    ledger.close()


def observed(
    name: str = "orders-abcde",
    state: str = "pending",
    *,
    created_at: datetime = CREATED,
    finished_at: datetime | None = None,
) -> ObservedJob:
    return ObservedJob(
        uid=f"uid-{name}",
        namespace="shop",
        name=name,
        scaled_object_uid="uid-orders",
        scaled_object_name="orders",
        generation=1,
        created_at=created_at,
        state=state,
        finished_at=finished_at,
    )


def record_decision(store: LedgerStore, jobs_requested: int = 1) -> int:
    store.record_scaled_object(
        uid="uid-orders", kind="ScaledJob", namespace="shop", name="orders", generation=1
    )
    return store.record_decision(
        DecisionInput(
            scaled_object_uid="uid-orders",
            generation=1,
            strategy="default",
            active=True,
            queue_length=10.0,
            max_scale=3,
            running=0,
            pending=0,
            effective_max_scale=3,
            jobs_requested=jobs_requested,
            triggers=[{"trigger": "0", "queueLength": 10.0, "target": 5.0, "active": True}],
        )
    )


def states(store: LedgerStore) -> dict[str, str]:
    return {record.name: record.state for record in store.history()}


# --- opening the ledger ---------------------------------------------------------------------


def test_open_rejects_empty_database(database_url: str) -> None:
    with pytest.raises(SchemaOutdatedError) as caught:
        LedgerStore.open(database_url)

    assert "no schema yet" in str(caught.value)
    assert "jobrunner db upgrade" in str(caught.value)


def test_open_rejects_stale_database(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()

    with pytest.raises(SchemaOutdatedError) as caught:
        LedgerStore.open(database_url)

    assert "schema revision 0000" in str(caught.value)
    assert "jobrunner db upgrade" in str(caught.value)


def test_open_after_upgrade(store: LedgerStore) -> None:
    assert store.history() == []
    assert store.count_jobs() == 0


# --- observe_job ----------------------------------------------------------------------------


def test_observe_job_inserts_once(store: LedgerStore) -> None:
    for state in ("pending", "pending", "running", "running"):
        store.observe_job(observed(state=state))

    assert store.count_jobs() == 1
    assert states(store) == {"orders-abcde": "running"}


def test_observe_job_records_finish(store: LedgerStore) -> None:
    finished = CREATED + timedelta(minutes=5)

    store.observe_job(observed(state="running"))
    store.observe_job(observed(state="succeeded", finished_at=finished))

    (record,) = store.history()
    assert record.state == "succeeded"
    assert record.finished_at == finished


@pytest.mark.parametrize(
    ("events", "expected_state"),
    [
        pytest.param(["running", "succeeded", "deleted"], "succeeded", id="succeeded-then-deleted"),
        pytest.param(["running", "failed", "deleted"], "failed", id="failed-then-deleted"),
        pytest.param(["pending", "deleted"], "deleted", id="pending-then-deleted"),
        pytest.param(["running", "deleted"], "deleted", id="running-then-deleted"),
        pytest.param(["deleted", "pending"], "deleted", id="replayed-after-delete"),
        pytest.param(["succeeded", "running"], "succeeded", id="replayed-after-success"),
    ],
)
def test_observe_job_state_sequence(
    store: LedgerStore, events: list[str], expected_state: str
) -> None:
    for state in events:
        store.observe_job(observed(state=state))

    assert states(store) == {"orders-abcde": expected_state}


# --- record_jobs_created --------------------------------------------------------------------


def decision_ids(store: LedgerStore) -> dict[str, int | None]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(JobRow.name, JobRow.decision_id))
        return {name: decision_id for name, decision_id in rows}


def jobs_created(store: LedgerStore, decision_id: int) -> int:
    with store.engine.connect() as connection:
        query = select(ScalingDecisionRow.jobs_created).where(ScalingDecisionRow.id == decision_id)
        return int(connection.execute(query).scalar_one())


def test_record_jobs_created_links_jobs(store: LedgerStore) -> None:
    decision_id = record_decision(store, jobs_requested=2)

    store.record_jobs_created(decision_id=decision_id, jobs=[observed("a"), observed("b")])

    assert decision_ids(store) == {"a": decision_id, "b": decision_id}
    assert jobs_created(store, decision_id) == 2


def test_record_jobs_created_after_observe(store: LedgerStore) -> None:
    decision_id = record_decision(store)
    store.observe_job(observed("a", state="running"))

    store.record_jobs_created(decision_id=decision_id, jobs=[observed("a", state="pending")])

    assert store.count_jobs() == 1
    assert decision_ids(store) == {"a": decision_id}
    assert states(store) == {"a": "running"}


def test_observe_after_record_jobs_created(store: LedgerStore) -> None:
    decision_id = record_decision(store)
    store.record_jobs_created(decision_id=decision_id, jobs=[observed("a")])

    store.observe_job(observed("a", state="running"))

    assert store.count_jobs() == 1
    assert decision_ids(store) == {"a": decision_id}


def test_record_jobs_created_keeps_other_decision(store: LedgerStore) -> None:
    first = record_decision(store)
    second = record_decision(store)
    store.record_jobs_created(decision_id=first, jobs=[observed("a")])

    store.record_jobs_created(decision_id=second, jobs=[observed("a")])

    assert decision_ids(store) == {"a": first}


# --- history --------------------------------------------------------------------------------


def test_history_newest_first(store: LedgerStore) -> None:
    for minutes, name in ((0, "first"), (10, "third"), (5, "second")):
        store.observe_job(observed(name, created_at=CREATED + timedelta(minutes=minutes)))

    names = [record.name for record in store.history()]

    assert names == ["third", "second", "first"]


def test_history_limit(store: LedgerStore) -> None:
    for minutes in range(3):
        store.observe_job(
            observed(f"job-{minutes}", created_at=CREATED + timedelta(minutes=minutes))
        )

    names = [record.name for record in store.history(HistoryFilter(limit=2))]

    assert names == ["job-2", "job-1"]


def test_history_record_fields(store: LedgerStore) -> None:
    store.observe_job(observed())

    (record,) = store.history()

    assert record.as_dict() == {
        "uid": "uid-orders-abcde",
        "namespace": "shop",
        "name": "orders-abcde",
        "scaledJob": "orders",
        "createdAt": "2026-01-02T03:04:05+00:00",
        "state": "pending",
        "startedAt": None,
        "finishedAt": None,
        "durationSeconds": None,
        "exitCode": None,
        "reason": "",
        "attempts": 0,
        "pods": [],
    }


# --- secrets in URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql+psycopg://u:s3cret@h/db", "postgresql+psycopg://u:***@h/db", id="password"
        ),
        pytest.param(
            "postgresql+psycopg://u:s3cret@h:5432/db?sslmode=require",
            "postgresql+psycopg://u:***@h:5432/db?sslmode=require",
            id="password-with-port-and-query",
        ),
        pytest.param(
            "postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db", id="no-password"
        ),
        pytest.param("sqlite:///var/lib/ledger.db", "sqlite:///var/lib/ledger.db", id="sqlite"),
        pytest.param("not a URL s3cret", "<unparseable database URL>", id="unparseable"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            "postgresql+psycopg://u:s3cret@h:port/db",
            id="non-numeric-port",
        ),
        pytest.param(
            "postgresql+psycopg://u@h/db?password=s3cret",
            id="password-query-parameter",
        ),
    ],
)
def test_redact_url_hides_password(url: str) -> None:
    assert SECRET not in redact_url(url)


def test_runner_settings_repr_hides_password() -> None:
    settings = RunnerSettings(database_url="postgresql+psycopg://u:s3cret@h/db")

    assert SECRET not in repr(settings)
    assert "postgresql+psycopg://u:***@h/db" in repr(settings)
