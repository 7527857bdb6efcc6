"""Reading the ledger back (`jobrunner history`) and pruning it by age and size."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from jobrunner.ledger.models import (
    JobPodRow,
    JobRow,
    ScaledObjectRow,
    ScalingDecisionRow,
    as_utc,
    utc,
)
from jobrunner.ledger.records import HistoryFilter, JobRecord

# Rows deleted per statement, so pruning a large ledger never holds one huge transaction's
# worth of locks or exceeds SQLite's bound-parameter limit.
PRUNE_BATCH = 500


def query_history(session: Session, selection: HistoryFilter) -> list[JobRecord]:
    query = (
        select(JobRow, ScaledObjectRow.name)
        .join(ScaledObjectRow, JobRow.scaled_object_uid == ScaledObjectRow.uid)
        .order_by(JobRow.created_at.desc(), JobRow.name.desc())
        .limit(selection.limit)
    )
    if selection.scaled_job:
        query = query.where(ScaledObjectRow.name == selection.scaled_job)
    if selection.namespace:
        query = query.where(JobRow.namespace == selection.namespace)
    if selection.job_name:
        query = query.where(JobRow.name == selection.job_name)
    if selection.states:
        query = query.where(JobRow.state.in_(selection.states))
    if selection.since:
        query = query.where(JobRow.created_at >= selection.since)
    rows = list(session.execute(query))
    pods = _pod_names(session, [job.uid for job, _ in rows])
    return [
        JobRecord(
            uid=job.uid,
            namespace=job.namespace,
            name=job.name,
            scaled_job=owner,
            created_at=utc(job.created_at),
            state=job.state,
            started_at=as_utc(job.started_at),
            finished_at=as_utc(job.finished_at),
            duration_seconds=job.duration_seconds,
            exit_code=job.exit_code,
            reason=job.reason or "",
            attempts=job.attempts or 0,
            pods=tuple(pods.get(job.uid, ())),
        )
        for job, owner in rows
    ]


def _pod_names(session: Session, job_uids: list[str]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = defaultdict(list)
    if not job_uids:
        return names
    query = (
        select(JobPodRow.job_uid, JobPodRow.name)
        .where(JobPodRow.job_uid.in_(job_uids))
        .order_by(JobPodRow.name)
    )
    for job_uid, name in session.execute(query):
        names[job_uid].append(name)
    return names


def prune_rows(session: Session, *, older_than: datetime | None, max_jobs: int | None) -> int:
    doomed: list[str] = []
    if older_than is not None:
        doomed += session.scalars(select(JobRow.uid).where(JobRow.created_at < older_than)).all()
    if max_jobs is not None:
        newest_first = select(JobRow.uid).order_by(JobRow.created_at.desc(), JobRow.uid)
        doomed += session.scalars(newest_first.offset(max_jobs)).all()
    unique = sorted(set(doomed))
    for start in range(0, len(unique), PRUNE_BATCH):
        batch = unique[start : start + PRUNE_BATCH]
        session.execute(delete(JobPodRow).where(JobPodRow.job_uid.in_(batch)))
        session.execute(delete(JobRow).where(JobRow.uid.in_(batch)))
    if unique:
        _prune_decisions(session, older_than)
    return len(unique)


def _prune_decisions(session: Session, older_than: datetime | None) -> None:
    """Delete decisions that no Job refers to and that are older than every Job kept."""
    oldest_kept = session.scalar(select(func.min(JobRow.created_at)))
    cutoffs = [c for c in (older_than, oldest_kept) if c is not None]
    if not cutoffs:
        return
    still_used = select(JobRow.decision_id).where(JobRow.decision_id.is_not(None))
    session.execute(
        delete(ScalingDecisionRow).where(
            ScalingDecisionRow.id.not_in(still_used),
            ScalingDecisionRow.decided_at < max(utc(c) for c in cutoffs),
        )
    )
