"""Every example query of docs/ledger.md, run on SQLite and on PostgreSQL against known data.

The data is written through `LedgerStore`, as the runner writes it: three ScaledJobs, five
decisions, and Jobs that succeed, fail, retry, never start, run out of memory, are deleted or
still run. The expected rows below were worked out by hand from that data.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from jobrunner.ledger.records import DecisionInput, ObservedJob, ObservedPod
from jobrunner.ledger.store import LedgerStore
from tests.ledger_queries import DIALECTS, PORTABLE, query_sql, read_queries

# The jobs-per-hour query counts back from the database's clock, so the data is recent.
NOW = datetime.now(UTC).replace(microsecond=0)
SQLITE_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?")


@dataclass(frozen=True)
class Attempt:
    """One pod of a Job: when it started after the Job's creation and how it ended."""

    start: int  # seconds after the Job's creation
    seconds: int  # run time; ignored while exit_code is None
    exit_code: int | None  # None while the pod still runs
    reason: str = "Completed"
    restarts: int = 0


@dataclass(frozen=True)
class SeedJob:
    name: str
    owner: str
    minutes_ago: int
    state: str
    pods: tuple[Attempt, ...] = ()
    reason: str = ""
    decision: str | None = None

    @property
    def created_at(self) -> datetime:
        return NOW - timedelta(minutes=self.minutes_ago)


OWNERS = {"orders": "shop", "payments": "shop", "reports": "other"}
TRIGGERS = {
    "orders": [("kafka-orders", 40.0, 10.0)],
    "payments": [("kafka-payments", 3.0, 1.0), ("cron", 1.0, 1.0)],
    "reports": [("kafka-reports", 2.0, 1.0)],
}
# Recorded in this order, so the databases number them 1 to 5.
DECISIONS = {
    "orders-a": ("orders", 4),
    "orders-b": ("orders", 4),
    "orders-c": ("orders", 2),
    "payments-a": ("payments", 3),
    "reports-a": ("reports", 2),
}
DONE = "CompletionsReached"
BACKOFF = "BackoffLimitExceeded"
JOBS = [
    SeedJob("orders-1", "orders", 60, "succeeded", (Attempt(2, 10, 0),), DONE, "orders-a"),
    SeedJob("orders-2", "orders", 70, "succeeded", (Attempt(4, 20, 0),), DONE, "orders-a"),
    SeedJob("orders-3", "orders", 80, "succeeded", (Attempt(1, 30, 0),), DONE, "orders-a"),
    SeedJob("orders-4", "orders", 90, "succeeded", (Attempt(3, 40, 0),), DONE, "orders-a"),
    SeedJob(
        "orders-5",
        "orders",
        200,
        "failed",
        (Attempt(5, 3, 1, "Error"), Attempt(15, 3, 1, "Error")),
        BACKOFF,
        "orders-b",
    ),
    SeedJob(
        "orders-6",
        "orders",
        210,
        "failed",
        (Attempt(6, 8, 137, "OOMKilled", restarts=1),),
        BACKOFF,
        "orders-b",
    ),
    SeedJob("orders-7", "orders", 300, "deleted", decision="orders-c"),
    SeedJob("orders-8", "orders", 310, "failed", reason="DeadlineExceeded", decision="orders-c"),
    SeedJob("payments-1", "payments", 30, "succeeded", (Attempt(10, 5, 0),), DONE, "payments-a"),
    SeedJob(
        "payments-2",
        "payments",
        40,
        "succeeded",
        (Attempt(20, 5, 2, "Error"), Attempt(30, 5, 0)),
        DONE,
    ),
    SeedJob("payments-3", "payments", 50, "deleted", (Attempt(8, 0, None),)),
    SeedJob("payments-4", "payments", 5, "running", (Attempt(12, 0, None),)),
    SeedJob("reports-1", "reports", 30 * 60, "succeeded", (Attempt(1, 60, 0),), DONE, "reports-a"),
    SeedJob(
        "reports-2",
        "reports",
        26 * 60,
        "failed",
        (Attempt(2, 4, 1, "Error"),),
        BACKOFF,
        "reports-a",
    ),
]


def job_of(name: str) -> SeedJob:
    return next(job for job in JOBS if job.name == name)


def observed_job(job: SeedJob, state: str) -> ObservedJob:
    return ObservedJob(
        uid=f"uid-{job.name}",
        namespace=OWNERS[job.owner],
        name=job.name,
        scaled_object_uid=f"uid-{job.owner}",
        scaled_object_name=job.owner,
        generation=1,
        created_at=job.created_at,
        state=state,
        finished_at=finished_at(job) if state in {"succeeded", "failed"} else None,
        reason=job.reason if state in {"succeeded", "failed"} else "",
    )


def finished_at(job: SeedJob) -> datetime:
    """The end of the last pod, or 10 minutes after creation for a Job without pods."""
    if not job.pods:
        return job.created_at + timedelta(minutes=10)
    last = job.pods[-1]
    return job.created_at + timedelta(seconds=last.start + last.seconds)


def observed_pods(job: SeedJob, index: int, attempt: Attempt) -> list[ObservedPod]:
    """The watch events of one pod: Running, then Succeeded or Failed when it ended."""
    started = job.created_at + timedelta(seconds=attempt.start)
    running = ObservedPod(
        uid=f"uid-{job.name}-{index}",
        job_uid=f"uid-{job.name}",
        namespace=OWNERS[job.owner],
        name=f"{job.name}-{index}",
        node="node-a",
        phase="Running",
        started_at=started,
        restarts=attempt.restarts,
    )
    if attempt.exit_code is None:
        return [running]
    ended = replace(
        running,
        phase="Succeeded" if attempt.exit_code == 0 else "Failed",
        finished_at=started + timedelta(seconds=attempt.seconds),
        exit_code=attempt.exit_code,
        termination_reason=attempt.reason,
    )
    return [running, ended]


def seed(store: LedgerStore) -> None:
    for owner, namespace in OWNERS.items():
        store.record_scaled_object(
            uid=f"uid-{owner}", kind="ScaledJob", namespace=namespace, name=owner, generation=1
        )
    for key, (owner, requested) in DECISIONS.items():
        triggers = [
            {"trigger": name, "queueLength": length, "target": target, "active": True}
            for name, length, target in TRIGGERS[owner]
        ]
        decision_id = store.record_decision(
            DecisionInput(
                scaled_object_uid=f"uid-{owner}",
                generation=1,
                strategy="default",
                active=True,
                queue_length=max(length for _, length, _ in TRIGGERS[owner]),
                max_scale=requested,
                running=0,
                pending=0,
                effective_max_scale=requested,
                jobs_requested=requested,
                triggers=triggers,
            )
        )
        created = [observed_job(job, "pending") for job in JOBS if job.decision == key]
        store.record_jobs_created(decision_id=decision_id, jobs=created)
    # Jobs are replayed in list order, so the later a Job comes, the later its state changed.
    for job in JOBS:
        store.observe_job(observed_job(job, "pending"))
        for index, attempt in enumerate(job.pods):
            for event in observed_pods(job, index, attempt):
                store.observe_pod(event)
        store.observe_job(observed_job(job, job.state))


def hour(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:00")


def jobs_per_hour() -> list[dict[str, Any]]:
    counts = Counter(hour(job.created_at) for job in JOBS if job.minutes_ago < 24 * 60)
    return [{"hour_utc": key, "jobs": counts[key]} for key in sorted(counts)]


# Each query's expected rows, as dicts of the columns to compare.
EXPECTED: dict[str, list[dict[str, Any]]] = {
    "failures-by-reason": [
        {"namespace": "shop", "scaled_job": "orders", "reason": BACKOFF, "jobs": 2},
        {"namespace": "other", "scaled_job": "reports", "reason": BACKOFF, "jobs": 1},
        {"namespace": "shop", "scaled_job": "orders", "reason": "DeadlineExceeded", "jobs": 1},
    ],
    # orders: 10, 20, 30, 40 s, so position 0.95 * 3 = 2.85 lies between 30 and 40: 38.5.
    # payments: 5 and 15 s, position 0.95: 14.5. reports: one Job of 60 s.
    "p95-duration-per-scaledjob": [
        {"scaled_job": "reports", "jobs": 1, "p95_seconds": 60.0},
        {"scaled_job": "orders", "jobs": 4, "p95_seconds": 38.5},
        {"scaled_job": "payments", "jobs": 2, "p95_seconds": 14.5},
    ],
    "jobs-per-hour": jobs_per_hour(),
    "never-started": [
        {
            "job": "orders-7",
            "state": "deleted",
            "reason": "",
            "created_at": job_of("orders-7").created_at,
        },
        {
            "job": "orders-8",
            "state": "failed",
            "reason": "DeadlineExceeded",
            "created_at": job_of("orders-8").created_at,
        },
    ],
    # The first pod's start after creation: orders 2, 4, 1, 3, 5, 6 s; payments 10, 20, 8,
    # 12 s; reports 1, 2 s.
    "mean-time-to-start": [
        {"scaled_job": "payments", "jobs": 4, "mean_seconds": 12.5},
        {"scaled_job": "orders", "jobs": 6, "mean_seconds": 3.5},
        {"scaled_job": "reports", "jobs": 2, "mean_seconds": 1.5},
    ],
    "retried-jobs": [
        {"job": "payments-2", "state": "succeeded", "attempts": 2, "exit_code": 0},
        {"job": "orders-5", "state": "failed", "attempts": 2, "exit_code": 1},
        {"job": "orders-6", "state": "failed", "attempts": 2, "exit_code": 137},
    ],
    "deleted-before-finishing": [
        {"scaled_job": "payments", "job": "payments-3", "started": "yes"},
        {"scaled_job": "orders", "job": "orders-7", "started": "no"},
    ],
    "short-decisions": [
        {"scaled_job": "payments", "decision": 4, "jobs_requested": 3, "jobs_created": 1},
        {"scaled_job": "orders", "decision": 2, "jobs_requested": 4, "jobs_created": 2},
    ],
    "oom-killed-pods": [
        {
            "scaled_job": "orders",
            "job": "orders-6",
            "pod": "orders-6-0",
            "node": "node-a",
            "finished_at": finished_at(job_of("orders-6")),
        }
    ],
    "success-rate": [
        {"scaled_job": "reports", "finished": 2, "succeeded": 1, "success_percent": 50.0},
        {"scaled_job": "orders", "finished": 7, "succeeded": 4, "success_percent": 57.1},
        {"scaled_job": "payments", "finished": 2, "succeeded": 2, "success_percent": 100.0},
    ],
    "latest-trigger-inputs": [
        {"decision": decision, "trigger_name": name, "queue_length": length, "target": target}
        for decision, owner in (
            (5, "reports"),
            (4, "payments"),
            (3, "orders"),
            (2, "orders"),
            (1, "orders"),
        )
        for name, length, target in sorted(TRIGGERS[owner])
    ],
}

QUERIES = read_queries()


def normalize(value: Any) -> Any:
    """Bring one value to a form that both databases' drivers return alike.

    PostgreSQL returns numeric aggregates as Decimal and times as aware datetimes, SQLite
    returns times as UTC text. Floats are rounded to 3 decimals, because SQLite's julianday
    arithmetic is exact only to about 0.1 ms.
    """
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, str) and SQLITE_TIME.fullmatch(value):
        value = datetime.fromisoformat(value).replace(tzinfo=UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, float):
        return round(value, 3)
    return value


def test_doc_queries_all_checked() -> None:
    assert list(QUERIES) == list(EXPECTED)
    assert len(QUERIES) >= 8


def test_doc_queries_cover_dialects() -> None:
    for name, versions in QUERIES.items():
        assert sorted(versions) in ([PORTABLE], sorted(DIALECTS)), name


@pytest.mark.parametrize("name", list(EXPECTED))
def test_doc_query(store: LedgerStore, name: str) -> None:
    seed(store)
    sql = query_sql(QUERIES, name, store.engine.dialect.name)

    with store.engine.connect() as connection:
        result = connection.exec_driver_sql(sql)
        columns = list(result.keys())
        rows = [dict(zip(columns, row, strict=True)) for row in result]

    expected = EXPECTED[name]
    assert set(expected[0]) <= set(columns)
    actual = [{key: normalize(row[key]) for key in expected[0]} for row in rows]
    assert actual == [{key: normalize(value) for key, value in row.items()} for row in expected]
