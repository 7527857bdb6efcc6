"""The ledger store on SQLite and on PostgreSQL: opening, Job states, decisions, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, select, text

from jobrunner.errors import SchemaOutdatedError
from jobrunner.ledger.models import JobRow, ScalingDecisionRow
from jobrunner.ledger.records import DecisionInput, HistoryFilter, ObservedJob
from jobrunner.ledger.schema import upgrade
from jobrunner.ledger.store import LedgerStore

CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# A zone that differs from UTC by a fraction of an hour, as the test PostgreSQL's does.
INDIA = timezone(timedelta(hours=5, minutes=30))


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


def test_history_times_in_utc(store: LedgerStore) -> None:
    finished = CREATED + timedelta(minutes=5)
    store.observe_job(
        observed(
            state="succeeded",
            created_at=CREATED.astimezone(INDIA),
            finished_at=finished.astimezone(INDIA),
        )
    )

    (record,) = store.history()

    assert record.created_at == CREATED
    assert record.created_at.utcoffset() == timedelta(0)
    assert record.finished_at == finished
    assert record.as_dict()["finishedAt"] == "2026-01-02T03:09:05+00:00"


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        pytest.param(CREATED - timedelta(minutes=1), ["orders-abcde"], id="before"),
        pytest.param(CREATED + timedelta(minutes=1), [], id="after"),
    ],
)
def test_history_since_with_offset(
    store: LedgerStore, since: datetime, expected: list[str]
) -> None:
    store.observe_job(observed())

    records = store.history(HistoryFilter(since=since.astimezone(INDIA)))

    assert [record.name for record in records] == expected
