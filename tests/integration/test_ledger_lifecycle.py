"""A Job's lifecycle in the ledger on SQLite and on PostgreSQL.

Covers pods, start, exit code, attempts, history filters and retention.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobrunner.ledger.records import HistoryFilter, ObservedJob, ObservedPod
from jobrunner.ledger.store import LedgerStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def job(
    name: str,
    state: str = "pending",
    *,
    created: datetime = T0,
    finished: datetime | None = None,
    reason: str = "",
    namespace: str = "shop",
    owner: str = "orders",
) -> ObservedJob:
    return ObservedJob(
        uid=f"uid-{name}",
        namespace=namespace,
        name=name,
        scaled_object_uid=f"uid-{owner}",
        scaled_object_name=owner,
        generation=1,
        created_at=created,
        state=state,
        finished_at=finished,
        reason=reason,
        message=f"{reason} message" if reason else "",
    )


def pod(
    name: str,
    job_name: str,
    phase: str,
    *,
    started: datetime | None = None,
    finished: datetime | None = None,
    exit_code: int | None = None,
    restarts: int = 0,
) -> ObservedPod:
    return ObservedPod(
        uid=f"uid-{name}",
        job_uid=f"uid-{job_name}",
        namespace="shop",
        name=name,
        node="proc-node-0",
        phase=phase,
        started_at=started,
        finished_at=finished,
        exit_code=exit_code,
        termination_reason="Error" if exit_code else "Completed",
        restarts=restarts,
    )


def test_pods_give_start_exit_code_and_duration(store: LedgerStore) -> None:
    store.observe_job(job("a"))
    store.observe_pod(pod("a-1", "a", "Running", started=T0 + timedelta(seconds=2)))
    store.observe_pod(
        pod(
            "a-1",
            "a",
            "Succeeded",
            started=T0 + timedelta(seconds=2),
            finished=T0 + timedelta(seconds=12),
            exit_code=0,
        )
    )
    store.observe_job(
        job("a", "succeeded", finished=T0 + timedelta(seconds=12), reason="CompletionsReached")
    )

    (record,) = store.history()
    assert record.state == "succeeded"
    assert record.started_at == T0 + timedelta(seconds=2)
    assert record.duration_seconds == 10.0
    assert record.exit_code == 0
    assert record.reason == "CompletionsReached"
    assert record.attempts == 1
    assert record.pods == ("a-1",)


def test_failed_attempts_are_counted(store: LedgerStore) -> None:
    store.observe_job(job("b"))
    for index in range(2):
        store.observe_pod(
            pod(
                f"b-{index}",
                "b",
                "Failed",
                started=T0 + timedelta(minutes=index),
                finished=T0 + timedelta(minutes=index, seconds=5),
                exit_code=3,
            )
        )
    store.observe_job(
        job("b", "failed", finished=T0 + timedelta(minutes=2), reason="BackoffLimitExceeded")
    )

    (record,) = store.history()
    assert record.attempts == 2
    assert record.exit_code == 3
    assert record.reason == "BackoffLimitExceeded"
    assert record.started_at == T0


def test_restarts_in_one_pod_count_as_attempts(store: LedgerStore) -> None:
    store.observe_job(job("c"))
    store.observe_pod(pod("c-1", "c", "Running", started=T0, restarts=2))
    (record,) = store.history()
    assert record.attempts == 3


def test_pod_event_before_its_job(store: LedgerStore) -> None:
    store.observe_pod(pod("d-1", "d", "Running", started=T0))
    store.observe_job(job("d", "running"))
    (record,) = store.history()
    assert record.started_at == T0
    assert record.attempts == 1


def test_finished_pod_ignores_late_running_event(store: LedgerStore) -> None:
    store.observe_job(job("e"))
    store.observe_pod(pod("e-1", "e", "Succeeded", started=T0, finished=T0, exit_code=0))
    store.observe_pod(pod("e-1", "e", "Running", started=T0))
    (record,) = store.history()
    assert record.exit_code == 0


def test_mark_missing_jobs(store: LedgerStore) -> None:
    store.observe_job(job("gone"))
    store.observe_job(job("kept", "running"))
    store.observe_job(job("done", "succeeded", finished=T0))
    store.observe_job(job("elsewhere", namespace="other"))

    marked = store.mark_missing_jobs({"uid-kept"}, namespace="shop")

    states = {r.name: r.state for r in store.history()}
    assert marked == 1
    assert states == {
        "gone": "deleted",
        "kept": "running",
        "done": "succeeded",
        "elsewhere": "pending",
    }


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        pytest.param(HistoryFilter(), ["j3", "j2", "j1", "x1"], id="all"),
        pytest.param(HistoryFilter(scaled_job="orders"), ["j3", "j2", "j1"], id="scaled-job"),
        pytest.param(HistoryFilter(namespace="other"), ["x1"], id="namespace"),
        pytest.param(HistoryFilter(states=("failed",)), ["j2"], id="status"),
        pytest.param(HistoryFilter(states=("failed", "succeeded")), ["j3", "j2"], id="statuses"),
        pytest.param(HistoryFilter(since=T0 + timedelta(hours=1)), ["j3", "j2"], id="since"),
        pytest.param(HistoryFilter(limit=1), ["j3"], id="limit"),
    ],
)
def test_history_filters(store: LedgerStore, selection: HistoryFilter, expected: list[str]) -> None:
    store.observe_job(job("x1", created=T0 - timedelta(hours=1), namespace="other", owner="x"))
    store.observe_job(job("j1", created=T0))
    store.observe_job(job("j2", "failed", created=T0 + timedelta(hours=1), finished=T0))
    store.observe_job(job("j3", "succeeded", created=T0 + timedelta(hours=2), finished=T0))
    assert [r.name for r in store.history(selection)] == expected


def test_prune_by_age_and_count(store: LedgerStore) -> None:
    for index in range(5):
        store.observe_job(job(f"p{index}", created=T0 + timedelta(days=index)))
        store.observe_pod(pod(f"p{index}-pod", f"p{index}", "Running", started=T0))

    assert store.prune(older_than=T0 + timedelta(days=2)) == 2
    assert [r.name for r in store.history()] == ["p4", "p3", "p2"]
    assert store.prune(max_jobs=1) == 2
    (record,) = store.history()
    assert record.name == "p4"
    assert record.pods == ("p4-pod",)


def test_prune_without_limits_keeps_everything(store: LedgerStore) -> None:
    store.observe_job(job("keep"))
    assert store.prune() == 0
    assert len(store.history()) == 1
