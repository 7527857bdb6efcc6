"""Two ledger writers racing on PostgreSQL, with one of them paused at the racy moment.

SQLAlchemy engine events hold the first writer's transaction open at a chosen statement
while the second writer runs, so each race happens on every run instead of by chance.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from jobrunner.errors import LedgerError
from jobrunner.ledger.models import JobRow
from jobrunner.ledger.records import DecisionInput, ObservedJob, ObservedPod
from jobrunner.ledger.schema import upgrade
from jobrunner.ledger.store import LedgerStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
# How long a paused writer waits for the other one. The other writer blocks on a row lock
# when the store is correct, so the pause ends by this timeout.
PAUSE_SECONDS = 1.0


@pytest.fixture
def stores(postgres_url: str) -> Iterator[tuple[LedgerStore, LedgerStore]]:
    upgrade(postgres_url)
    first, second = LedgerStore.open(postgres_url), LedgerStore.open(postgres_url)
    yield first, second
    first.close()
    second.close()


def job(name: str) -> ObservedJob:
    return ObservedJob(
        uid=f"uid-{name}",
        namespace="shop",
        name=name,
        scaled_object_uid="uid-orders",
        scaled_object_name="orders",
        generation=1,
        created_at=T0,
        state="pending",
    )


def pod(name: str, job_name: str) -> ObservedPod:
    return ObservedPod(
        uid=f"uid-{name}",
        job_uid=f"uid-{job_name}",
        namespace="shop",
        name=name,
        node="node-a",
        phase="Running",
        started_at=T0 + timedelta(seconds=2),
    )


def decision(store: LedgerStore) -> int:
    store.record_scaled_object(
        uid="uid-orders", kind="ScaledJob", namespace="shop", name="orders", generation=1
    )
    return store.record_decision(
        DecisionInput(
            scaled_object_uid="uid-orders",
            generation=1,
            strategy="default",
            active=True,
            queue_length=2.0,
            max_scale=2,
            running=0,
            pending=0,
            effective_max_scale=2,
            jobs_requested=2,
            triggers=[],
        )
    )


class Writer(threading.Thread):
    """Run one store call in a thread and keep the LedgerError it raises."""

    def __init__(self, action: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.action = action
        self.error: LedgerError | None = None

    def run(self) -> None:
        try:
            self.action()
        except LedgerError as error:
            self.error = error


def jobs_rows(store: LedgerStore) -> dict[str, tuple[int | None, int]]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(JobRow.name, JobRow.decision_id, JobRow.attempts))
        return {name: (decision_id, attempts) for name, decision_id, attempts in rows}


def test_pods_of_one_job_both_counted(stores: tuple[LedgerStore, LedgerStore]) -> None:
    first, second = stores
    first.observe_job(job("a"))
    paused, release = threading.Event(), threading.Event()

    # The first writer stops just before it commits its pod and the attempts it derived.
    def hold_commit(_connection: Any) -> None:
        paused.set()
        release.wait(PAUSE_SECONDS)

    event.listen(first.engine, "commit", hold_commit)
    writer = Writer(lambda: first.observe_pod(pod("a-0", "a")))
    writer.start()
    assert paused.wait(5)
    # Without a lock on the Job, this write counts only its own pod and commits first.
    racer = Writer(lambda: second.observe_pod(pod("a-1", "a")))
    racer.start()
    racer.join(PAUSE_SECONDS)
    release.set()
    writer.join(10)
    racer.join(10)
    event.remove(first.engine, "commit", hold_commit)

    assert writer.error is None
    assert racer.error is None
    assert jobs_rows(first)["a"][1] == 2


def test_jobs_created_in_opposite_orders(stores: tuple[LedgerStore, LedgerStore]) -> None:
    first, second = stores
    first_decision, second_decision = decision(first), decision(second)
    first_inserted, second_inserted = threading.Event(), threading.Event()

    def is_job_insert(statement: str) -> bool:
        return statement.startswith("INSERT INTO jobs ")

    # The first writer pauses after its first Job's insert, until the second writer has
    # inserted a Job too (or the pause times out because the second writer is blocked).
    def after_first_insert(*args: Any) -> None:
        if is_job_insert(args[2]) and not first_inserted.is_set():
            first_inserted.set()
            second_inserted.wait(PAUSE_SECONDS)

    def before_second_insert(*args: Any) -> None:
        if is_job_insert(args[2]) and not second_inserted.is_set():
            first_inserted.wait(5)

    def after_second_insert(*args: Any) -> None:
        if is_job_insert(args[2]):
            second_inserted.set()

    hooks = [
        (first.engine, "after_cursor_execute", after_first_insert),
        (second.engine, "before_cursor_execute", before_second_insert),
        (second.engine, "after_cursor_execute", after_second_insert),
    ]
    for engine, name, hook in hooks:
        event.listen(engine, name, hook)
    jobs = [job("x"), job("y")]
    writer = Writer(lambda: first.record_jobs_created(decision_id=first_decision, jobs=jobs))
    racer = Writer(lambda: second.record_jobs_created(decision_id=second_decision, jobs=jobs[::-1]))
    writer.start()
    racer.start()
    writer.join(15)
    racer.join(15)
    for engine, name, hook in hooks:
        event.remove(engine, name, hook)

    # Without a common order, PostgreSQL aborts one of the two with a deadlock error.
    assert writer.error is None
    assert racer.error is None
    assert jobs_rows(first) == {"x": (first_decision, 0), "y": (first_decision, 0)}
