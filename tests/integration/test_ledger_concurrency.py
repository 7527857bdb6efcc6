"""Several processes writing one ledger at once, as runners that share a ledger do.

Each writer process records the same Jobs through its own `LedgerStore`: overlapping
decisions, the Jobs' watch events twice over, and two pods per Job.
The ledger must end with one row per Job and pod, the right lifecycle, and no writer error.
"""

from __future__ import annotations

import itertools
import multiprocessing
import traceback
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
from sqlalchemy import func, select

from jobrunner.ledger.models import JobPodRow, JobRow, ScaledObjectRow, ScalingDecisionRow
from jobrunner.ledger.records import DecisionInput, ObservedJob, ObservedPod
from jobrunner.ledger.schema import upgrade
from jobrunner.ledger.store import LedgerStore

pytestmark = pytest.mark.integration

WRITERS = 4
JOBS = 24
# Jobs per decision; each writer groups the Jobs differently, so decisions overlap.
BATCH = 3
# How many times each writer replays every Job's events.
ROUNDS = 2
WRITER_TIMEOUT = 120.0
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
OWNERS = ("orders", "payments")


def job_uid(index: int) -> str:
    return f"uid-job-{index:03d}"


def observed_job(index: int, state: str) -> ObservedJob:
    owner = OWNERS[index % len(OWNERS)]
    finished = T0 + timedelta(minutes=index, seconds=30) if state == "succeeded" else None
    return ObservedJob(
        uid=job_uid(index),
        namespace="shop",
        name=f"{owner}-{index:03d}",
        scaled_object_uid=f"uid-{owner}",
        scaled_object_name=owner,
        generation=1,
        created_at=T0 + timedelta(minutes=index),
        state=state,
        finished_at=finished,
        reason="CompletionsReached" if state == "succeeded" else "",
    )


def observed_pod(index: int, attempt: int, phase: str) -> ObservedPod:
    """Attempt 0 fails with exit code 1 after 10 s; attempt 1 succeeds after another 10 s."""
    started = T0 + timedelta(minutes=index, seconds=5 + 10 * attempt)
    done = phase in {"Succeeded", "Failed"}
    return ObservedPod(
        uid=f"uid-pod-{index:03d}-{attempt}",
        job_uid=job_uid(index),
        namespace="shop",
        name=f"job-{index:03d}-{attempt}",
        node="node-a",
        phase=phase,
        started_at=started,
        finished_at=started + timedelta(seconds=10) if done else None,
        exit_code={"Succeeded": 0, "Failed": 1}.get(phase),
        termination_reason={"Succeeded": "Completed", "Failed": "Error"}.get(phase, ""),
    )


def decision_for(owner: str, jobs: int) -> DecisionInput:
    return DecisionInput(
        scaled_object_uid=f"uid-{owner}",
        generation=1,
        strategy="default",
        active=True,
        queue_length=float(jobs),
        max_scale=10,
        running=0,
        pending=0,
        effective_max_scale=10,
        jobs_requested=jobs,
        triggers=[{"trigger": "0", "queueLength": float(jobs), "target": 1.0, "active": True}],
    )


def replay_job(store: LedgerStore, index: int) -> None:
    """Record the watch events of one Job's life: two pods, the first of them failing."""
    store.observe_job(observed_job(index, "pending"))
    store.observe_pod(observed_pod(index, 0, "Running"))
    store.observe_job(observed_job(index, "running"))
    store.observe_pod(observed_pod(index, 0, "Failed"))
    store.observe_pod(observed_pod(index, 1, "Running"))
    store.observe_pod(observed_pod(index, 1, "Succeeded"))
    store.observe_job(observed_job(index, "succeeded"))


def batches(writer: int) -> list[list[int]]:
    """Split the Jobs into decisions, shifted and ordered differently for each writer.

    Every writer walks the Jobs in about the same order, so writers touch the same Job at
    the same time. The shifted boundaries make decisions overlap, and the reversed order of
    odd writers makes two transactions lock the same Jobs in opposite orders.
    """
    shift = writer % BATCH
    bounds = [0, *range(shift or BATCH, JOBS, BATCH), JOBS]
    groups = [list(range(low, high)) for low, high in itertools.pairwise(bounds)]
    return [group[::-1] if writer % 2 else group for group in groups]


def write_ledger(url: str, writer: int, start: Barrier) -> None:
    store = LedgerStore.open(url)
    start.wait(timeout=WRITER_TIMEOUT)
    for _ in range(ROUNDS):
        for batch in batches(writer):
            for owner in OWNERS:
                store.record_scaled_object(
                    uid=f"uid-{owner}", kind="ScaledJob", namespace="shop", name=owner, generation=1
                )
            decision_id = store.record_decision(decision_for(OWNERS[writer % 2], len(batch)))
            created = [observed_job(index, "pending") for index in batch]
            store.record_jobs_created(decision_id=decision_id, jobs=created)
            for index in batch:
                replay_job(store, index)
    store.close()


def run_writer(url: str, writer: int, start: Barrier, errors: Queue[str]) -> None:
    try:
        write_ledger(url, writer, start)
    except Exception:
        errors.put(f"writer {writer}:\n{traceback.format_exc()}")
        raise


def run_writers(url: str) -> list[str]:
    """Run the writer processes to the end and return their errors' tracebacks."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    errors: Queue[str] = context.Queue()
    processes = [
        context.Process(target=run_writer, args=(url, writer, start, errors))
        for writer in range(WRITERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(WRITER_TIMEOUT)
    reports = []
    for process in processes:
        if process.is_alive():
            process.kill()
            reports.append(f"writer pid {process.pid} still ran after {WRITER_TIMEOUT:.0f}s")
        elif process.exitcode != 0:
            reports.append(f"writer pid {process.pid} exited with code {process.exitcode}")
    while not errors.empty():
        reports.append(errors.get())
    return reports


def test_concurrent_writers(database_url: str) -> None:
    upgrade(database_url)

    errors = run_writers(database_url)

    store = LedgerStore.open(database_url)
    with store.engine.connect() as connection:
        job_rows = list(connection.execute(select(JobRow)))
        pods = connection.scalar(select(func.count()).select_from(JobPodRow))
        owners = connection.scalar(select(func.count()).select_from(ScaledObjectRow))
        decisions = set(connection.scalars(select(ScalingDecisionRow.id)))
    store.close()
    assert errors == []
    assert len(job_rows) == JOBS
    assert pods == 2 * JOBS
    assert owners == len(OWNERS)
    assert len(decisions) == ROUNDS * sum(len(batches(writer)) for writer in range(WRITERS))
    lifecycles = {
        row.uid: (row.state, row.attempts, row.exit_code, row.started_at, row.duration_seconds)
        for row in job_rows
    }
    assert lifecycles == {
        job_uid(index): ("succeeded", 2, 0, observed_pod(index, 0, "Running").started_at, 25.0)
        for index in range(JOBS)
    }
    assert {row.decision_id for row in job_rows} <= decisions
