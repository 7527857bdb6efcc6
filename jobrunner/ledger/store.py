"""The ledger store: writes what the runner did and reads it back for `jobrunner history`.

Every write is one short transaction. Rows are keyed by Kubernetes uids, and writes are
idempotent upserts (INSERT ... ON CONFLICT DO NOTHING, then UPDATE), so a replayed watch
event, a restarted runner or two runners sharing one PostgreSQL ledger never add a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from jobrunner.errors import LedgerError
from jobrunner.ledger.history import prune_rows, query_history
from jobrunner.ledger.models import JobPodRow, JobRow, ScaledObjectRow, ScalingDecisionRow, utc
from jobrunner.ledger.records import (
    KEPT_STATES,
    DecisionInput,
    HistoryFilter,
    JobRecord,
    ObservedJob,
    ObservedPod,
)
from jobrunner.ledger.schema import check_schema, describe_database_error
from jobrunner.ledger.urls import redact_url


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> Engine:
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise LedgerError(
            f"invalid database URL {redact_url(url)}: {type(error).__name__}; "
            "give sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from error
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets `jobrunner history` read while the runner writes; the busy timeout makes
    # concurrent writers wait instead of failing at once.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class LedgerStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, check: bool = True) -> LedgerStore:
        """Open the ledger; with `check`, raise SchemaOutdatedError on a stale schema."""
        engine = make_engine(url)
        if check:
            check_schema(engine)
        return cls(engine)

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as error:
            raise LedgerError(
                f"ledger {action} failed on {redact_url(str(self.engine.url))}: "
                f"{describe_database_error(error)}"
            ) from error

    def record_scaled_object(
        self, *, uid: str, kind: str, namespace: str, name: str, generation: int
    ) -> None:
        now = utcnow()
        with self._session("write of a scaled object") as session:
            _insert_ignore(
                session,
                ScaledObjectRow,
                uid=uid,
                kind=kind,
                namespace=namespace,
                name=name,
                generation=generation,
                first_seen_at=now,
                last_seen_at=now,
            )
            session.execute(
                update(ScaledObjectRow)
                .where(ScaledObjectRow.uid == uid)
                .values(generation=generation, last_seen_at=now)
            )

    def record_decision(self, decision: DecisionInput) -> int:
        with self._session("write of a scaling decision") as session:
            row = ScalingDecisionRow(
                scaled_object_uid=decision.scaled_object_uid,
                decided_at=utcnow(),
                generation=decision.generation,
                strategy=decision.strategy,
                active=decision.active,
                queue_length=decision.queue_length,
                max_scale=decision.max_scale,
                running=decision.running,
                pending=decision.pending,
                effective_max_scale=decision.effective_max_scale,
                jobs_requested=decision.jobs_requested,
                jobs_created=0,
                triggers=list(decision.triggers),
            )
            session.add(row)
            session.flush()
            return row.id

    def record_jobs_created(self, *, decision_id: int, jobs: Sequence[ObservedJob]) -> None:
        """Store the Jobs one decision created and link them to it.

        A Job's watch event can be recorded first, by another thread; that row is kept and
        only gains the decision.
        """
        with self._session("write of created Jobs") as session:
            session.execute(
                update(ScalingDecisionRow)
                .where(ScalingDecisionRow.id == decision_id)
                .values(jobs_created=len(jobs))
            )
            # Rows are written in uid order, so two calls that record the same new Jobs take
            # their row locks in one order and do not deadlock each other on PostgreSQL.
            for job in sorted(jobs, key=lambda job: job.uid):
                _insert_job(session, job, decision_id=decision_id)
                session.execute(
                    update(JobRow)
                    .where(JobRow.uid == job.uid, JobRow.decision_id.is_(None))
                    .values(decision_id=decision_id)
                )

    def observe_job(self, job: ObservedJob) -> None:
        """Insert a Job seen in the cluster, or move a known Job to its observed state.

        A Job the ledger has not seen (because the runner stopped between creating it and
        recording it) is inserted without a decision. A finished or deleted Job keeps its
        state, so a Job that succeeded and was later removed by a history limit still reads
        as succeeded.
        """
        with self._session("update of a Job's state") as session:
            now = utcnow()
            _insert_ignore(
                session,
                ScaledObjectRow,
                uid=job.scaled_object_uid,
                kind="ScaledJob",
                namespace=job.namespace,
                name=job.scaled_object_name,
                generation=job.generation,
                first_seen_at=now,
                last_seen_at=now,
            )
            _insert_job(session, job, decision_id=None)
            values: dict[str, Any] = {"state": job.state, "state_changed_at": now}
            if job.finished_at is not None:
                values["finished_at"] = job.finished_at
            if job.reason:
                values.update(reason=job.reason[:128], message=job.message)
            session.execute(
                update(JobRow)
                .where(
                    JobRow.uid == job.uid,
                    JobRow.state != job.state,
                    JobRow.state.not_in(KEPT_STATES),
                )
                .values(**values)
            )
            _refresh_job(session, job.uid)

    def observe_pod(self, pod: ObservedPod) -> None:
        """Insert or update a Job's pod, then the Job's start, exit code and attempts."""
        values: dict[str, Any] = {
            "job_uid": pod.job_uid,
            "namespace": pod.namespace,
            "name": pod.name,
            "node": pod.node or None,
            "phase": pod.phase,
            "started_at": pod.started_at,
            "finished_at": pod.finished_at,
            "exit_code": pod.exit_code,
            "termination_reason": pod.termination_reason[:128] or None,
            "restarts": pod.restarts,
            "updated_at": utcnow(),
        }
        with self._session("write of a Job's pod") as session:
            _insert_ignore(session, JobPodRow, uid=pod.uid, **values)
            # A pod that has finished keeps its final phase if an older event arrives late.
            session.execute(
                update(JobPodRow)
                .where(JobPodRow.uid == pod.uid, JobPodRow.phase.not_in(("Succeeded", "Failed")))
                .values(**values)
            )
            _refresh_job(session, pod.job_uid)

    def mark_missing_jobs(self, present_uids: set[str], *, namespace: str | None) -> int:
        """Mark unfinished Jobs that no longer exist as deleted; return how many.

        The runner calls this after its Job cache has listed the cluster, so Jobs deleted
        while it was stopped do not stay pending forever. Their real outcome is unknown.
        """
        query = select(JobRow.uid).where(JobRow.state.not_in(KEPT_STATES))
        if namespace is not None:
            query = query.where(JobRow.namespace == namespace)
        with self._session("reconciliation of deleted Jobs") as session:
            missing = [uid for uid in session.scalars(query) if uid not in present_uids]
            if missing:
                session.execute(
                    update(JobRow)
                    .where(JobRow.uid.in_(missing), JobRow.state.not_in(KEPT_STATES))
                    .values(state="deleted", state_changed_at=utcnow())
                )
            return len(missing)

    def history(self, selection: HistoryFilter | None = None) -> list[JobRecord]:
        """Return recorded Jobs, newest first, matching `selection`."""
        with self._session("history query") as session:
            return query_history(session, selection or HistoryFilter())

    def prune(self, *, older_than: datetime | None = None, max_jobs: int | None = None) -> int:
        """Delete Jobs created before `older_than`, then the oldest beyond `max_jobs`.

        Their pods and the decisions left without Jobs go too. Returns the Jobs deleted.
        """
        with self._session("retention pruning") as session:
            return prune_rows(session, older_than=older_than, max_jobs=max_jobs)

    def count_jobs(self) -> int:
        with self._session("count of Jobs") as session:
            return int(session.scalar(select(func.count()).select_from(JobRow)) or 0)

    def close(self) -> None:
        self.engine.dispose()


def _insert_ignore(session: Session, model: type[Any], **values: Any) -> None:
    """INSERT a row unless its primary key exists, atomically, so racing writers never clash."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(model).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(model).values(**values).on_conflict_do_nothing()
    else:
        raise LedgerError(f"unsupported ledger database {dialect}; use SQLite or PostgreSQL")
    session.execute(statement)


def _insert_job(session: Session, job: ObservedJob, *, decision_id: int | None) -> None:
    _insert_ignore(
        session,
        JobRow,
        uid=job.uid,
        namespace=job.namespace,
        name=job.name,
        scaled_object_uid=job.scaled_object_uid,
        decision_id=decision_id,
        scaled_object_generation=job.generation,
        created_at=job.created_at,
        state=job.state,
        state_changed_at=utcnow(),
        finished_at=job.finished_at,
        reason=job.reason[:128] or None,
        message=job.message or None,
    )


def _refresh_job(session: Session, job_uid: str) -> None:
    """Derive a Job's start, exit code, attempts and duration from its pods and its finish.

    The Job's row is locked first (FOR UPDATE, which SQLite ignores because it locks the whole
    database for a write). A second writer's refresh of the same Job then waits and reads the
    pods after this transaction commits, so neither overwrites the Job with fewer pods.
    """
    job = session.get(JobRow, job_uid, with_for_update=True)
    if job is None:
        return
    pods = list(session.scalars(select(JobPodRow).where(JobPodRow.job_uid == job_uid)))
    starts = [utc(p.started_at) for p in pods if p.started_at is not None]
    finished = sorted(
        (p for p in pods if p.finished_at is not None and p.exit_code is not None),
        key=lambda p: utc(p.finished_at),  # type: ignore[arg-type]
    )
    if pods:
        job.attempts = len(pods) + sum(p.restarts for p in pods)
    if starts:
        job.started_at = min(starts)
    if finished:
        job.exit_code = finished[-1].exit_code
    if job.finished_at is not None and job.started_at is not None:
        duration = (utc(job.finished_at) - utc(job.started_at)).total_seconds()
        job.duration_seconds = max(duration, 0.0)
