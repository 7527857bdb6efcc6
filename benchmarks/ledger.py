"""Measure the ledger's queries and writes on a ledger of 100,000 Jobs, on SQLite and PostgreSQL.

The script fills a fresh ledger with simulated history of eight ScaledJobs of different sizes
and run times. Their Jobs, created over the last 7 days, succeed, fail after retries, run out
of memory, hit their deadline, never start or are deleted, and come with their pods and the
decisions that created them. The rows go in with bulk inserts, because writing 100,000 Jobs
one event at a time through `LedgerStore` takes 20 to 40 minutes (13 to 24 ms per Job, as
this script measures). The columns that the store derives (start, duration, exit code, attempts)
are filled in as the store fills them.

It then times, each over many runs, with median and 95th percentile:

- every example query of docs/ledger.md, exactly as the page shows it;
- `LedgerStore.history()` with the filters of `jobrunner history --limit 50`;
- `jobrunner history --limit 50` end to end: in this process through click, and as a new
  process, which includes the interpreter's start and imports;
- the writes of one Job's life into the full ledger: record_decision and record_jobs_created
  on the poll path, and the observe_job and observe_pod calls of the watches;
- the upgrade to revision 0003, which builds an index on the full `jobs` table.

It prints its figures and asserts nothing. Run it with the servers of tests/env up:

    .venv/bin/python benchmarks/ledger.py [--jobs 100000] [--runs 30] [--databases sqlite]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from click.testing import CliRunner
from sqlalchemy import Connection, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from jobrunner.cli import main as jobrunner_cli
from jobrunner.ledger.models import JobPodRow, JobRow, ScaledObjectRow, ScalingDecisionRow
from jobrunner.ledger.records import DecisionInput, HistoryFilter, ObservedJob, ObservedPod
from jobrunner.ledger.schema import downgrade, upgrade
from jobrunner.ledger.store import LedgerStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.ledger_queries import query_sql, read_queries  # noqa: E402

# (namespace, name, share of the Jobs, median run time in seconds)
SCALED_JOBS = [
    ("shop", "orders", 30, 45),
    ("shop", "payments", 20, 20),
    ("shop", "emails", 15, 5),
    ("media", "thumbnails", 12, 8),
    ("analytics", "reports", 10, 600),
    ("media", "transcode", 6, 900),
    ("analytics", "exports", 5, 300),
    ("ops", "backups", 2, 1800),
]
HISTORY_DAYS = 7
NODES = 20
BACKOFF_LIMIT = 2
INSERT_CHUNK = 5_000
WRITE_SAMPLES = 200
CLI_PROCESS_RUNS = 5
WARM_UP_RUNS = 2


# --- simulated history ------------------------------------------------------------------------


@dataclass
class History:
    """The rows of a simulated ledger, as dicts for bulk inserts."""

    scaled_objects: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)


def simulate(job_count: int, now: datetime, rng: random.Random) -> History:
    history = History()
    for namespace, name, _, _ in SCALED_JOBS:
        history.scaled_objects.append(
            {
                "uid": f"uid-{name}",
                "kind": "ScaledJob",
                "namespace": namespace,
                "name": name,
                "generation": 3,
                "first_seen_at": now - timedelta(days=HISTORY_DAYS + 1),
                "last_seen_at": now,
            }
        )
    weights = [share for _, _, share, _ in SCALED_JOBS]
    owners = rng.choices(range(len(SCALED_JOBS)), weights=weights, k=job_count)
    span = HISTORY_DAYS * 86400.0
    created = sorted(now - timedelta(seconds=rng.uniform(0, span)) for _ in range(job_count))
    per_owner: dict[int, list[datetime]] = {}
    for owner, at in zip(owners, created, strict=True):
        per_owner.setdefault(owner, []).append(at)
    for owner, times in per_owner.items():
        simulate_owner(history, owner, times, now, rng)
    return history


def simulate_owner(
    history: History, owner: int, times: list[datetime], now: datetime, rng: random.Random
) -> None:
    """Group one ScaledJob's Jobs into decisions of 1 to 5 Jobs and simulate each Job."""
    namespace, name, _, median_run = SCALED_JOBS[owner]
    index = 0
    while index < len(times):
        size = rng.choice((1, 1, 1, 2, 2, 3, 5))
        batch = times[index : index + size]
        index += size
        decision_id = len(history.decisions) + 1
        # About 3% of decisions could not create every Job they requested.
        short = rng.randint(1, 2) if rng.random() < 0.03 else 0
        history.decisions.append(
            {
                "id": decision_id,
                "scaled_object_uid": f"uid-{name}",
                "decided_at": batch[0] - timedelta(milliseconds=400),
                "generation": 3,
                "strategy": "default",
                "active": True,
                "queue_length": float(10 * (len(batch) + short)),
                "max_scale": len(batch) + short,
                "running": rng.randint(0, 4),
                "pending": 0,
                "effective_max_scale": len(batch) + short,
                "jobs_requested": len(batch) + short,
                "jobs_created": len(batch),
                "triggers": [
                    {
                        "trigger": f"kafka-{name}",
                        "queueLength": float(10 * (len(batch) + short)),
                        "target": 10.0,
                        "active": True,
                    }
                ],
            }
        )
        for created_at in batch:
            job = {
                "uid": str(uuid.UUID(int=rng.getrandbits(128))),
                "namespace": namespace,
                "name": f"{name}-{rng.getrandbits(40):010x}",
                "scaled_object_uid": f"uid-{name}",
                "decision_id": decision_id,
                "scaled_object_generation": 3,
                "created_at": created_at,
                "message": None,
            }
            pods = simulate_job(job, median_run, now, rng)
            history.jobs.append(job)
            history.pods.extend(pods)


def simulate_job(
    job: dict[str, Any], median_run: float, now: datetime, rng: random.Random
) -> list[dict[str, Any]]:
    """Fill in one Job's outcome and return its pods, as the store would have derived them."""
    created_at: datetime = job["created_at"]
    age = (now - created_at).total_seconds()
    roll = rng.random()
    if age < 600 and roll < 0.6:
        outcome = "running" if roll < 0.45 else "pending"
    elif roll < 0.89:
        outcome = "succeeded"
    elif roll < 0.96:
        outcome = "failed"
    else:
        outcome = "deleted"
    # (phase, exit code, termination reason) of each pod, in order.
    attempts: list[tuple[str, int | None, str]]
    reason = None
    if outcome == "succeeded":
        attempts = [("Failed", 1, "Error")] if rng.random() < 0.08 else []
        attempts.append(("Succeeded", 0, "Completed"))
        reason = "CompletionsReached"
    elif outcome == "failed" and rng.random() < 0.75:
        killed = rng.random() < 0.2
        attempts = [("Failed", 137, "OOMKilled") if killed else ("Failed", 1, "Error")] * (
            BACKOFF_LIMIT + 1
        )
        reason = "BackoffLimitExceeded"
    elif outcome == "failed":
        attempts = [("Failed", 143, "Error")] if rng.random() < 0.5 else []
        reason = "DeadlineExceeded"
    elif outcome == "running" or (outcome == "deleted" and rng.random() < 0.5):
        attempts = [("Running", None, "")]
    else:
        attempts = []

    pods: list[dict[str, Any]] = []
    clock = created_at + timedelta(seconds=rng.lognormvariate(1.0, 0.8))
    for number, (phase, exit_code, termination) in enumerate(attempts):
        run = rng.lognormvariate(0.0, 0.5) * median_run
        finished = clock + timedelta(seconds=run) if exit_code is not None else None
        pods.append(
            {
                "uid": str(uuid.UUID(int=rng.getrandbits(128))),
                "job_uid": job["uid"],
                "namespace": job["namespace"],
                "name": f"{job['name']}-{number}{rng.getrandbits(20):05x}",
                "node": f"node-{rng.randrange(NODES)}",
                "phase": phase,
                "started_at": clock,
                "finished_at": finished,
                "exit_code": exit_code,
                "termination_reason": termination or None,
                "restarts": 0,
                "updated_at": finished or clock,
            }
        )
        if finished is not None:
            clock = finished + timedelta(seconds=10 * 2**number)

    finished_at = None
    if outcome in {"succeeded", "failed"}:
        finished_at = pods[-1]["finished_at"] if pods else created_at + timedelta(hours=1)
    started_at = pods[0]["started_at"] if pods else None
    job.update(
        state=outcome,
        state_changed_at=finished_at or (now if outcome == "deleted" else created_at),
        started_at=started_at,
        finished_at=finished_at,
        duration_seconds=(
            (finished_at - started_at).total_seconds() if finished_at and started_at else None
        ),
        reason=reason,
        exit_code=next(
            (p["exit_code"] for p in reversed(pods) if p["exit_code"] is not None), None
        ),
        attempts=len(pods),
    )
    return pods


def load(url: str, history: History) -> float:
    """Insert the simulated rows into an upgraded, empty ledger; return the seconds it took."""
    started = time.perf_counter()
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as connection:
        for model, rows in (
            (ScaledObjectRow, history.scaled_objects),
            (ScalingDecisionRow, history.decisions),
            (JobRow, history.jobs),
            (JobPodRow, history.pods),
        ):
            for first in range(0, len(rows), INSERT_CHUNK):
                connection.execute(insert(model), rows[first : first + INSERT_CHUNK])
        if engine.dialect.name == "postgresql":
            # The ids were inserted explicitly, so the sequence must continue after them.
            connection.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('scaling_decisions', 'id'), "
                    "(SELECT max(id) FROM scaling_decisions))"
                )
            )
    if engine.dialect.name == "postgresql":
        # A production server's autovacuum analyzes new tables soon; this does it at once.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


# --- timing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: list[float]
    note: str = ""

    def line(self) -> str:
        median = statistics.median(self.seconds) * 1000
        p95 = percentile(self.seconds, 0.95) * 1000
        note = f"  {self.note}" if self.note else ""
        return f"  {self.name:34} median {median:9.2f} ms   p95 {p95:9.2f} ms{note}"


def percentile(values: list[float], fraction: float) -> float:
    """Return the `fraction` quantile by linear interpolation, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def measure(action: Callable[[], object], runs: int) -> list[float]:
    for _ in range(WARM_UP_RUNS):
        action()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def time_queries(connection: Connection, dialect: str, runs: int) -> list[Timing]:
    queries = read_queries()
    timings = []
    for name in queries:
        sql = query_sql(queries, name, dialect)
        rows = len(connection.exec_driver_sql(sql).fetchall())
        seconds = measure(lambda sql=sql: connection.exec_driver_sql(sql).fetchall(), runs)
        timings.append(Timing(name, seconds, f"{rows} rows"))
    return timings


def time_history(store: LedgerStore, runs: int) -> list[Timing]:
    selections = {
        "history() --limit 50": HistoryFilter(limit=50),
        "history() --scaled-job backups": HistoryFilter(scaled_job="backups", limit=50),
        "history() --status failed": HistoryFilter(states=("failed",), limit=50),
        "history() --since 24h": HistoryFilter(
            since=datetime.now(UTC) - timedelta(hours=24), limit=50
        ),
    }
    return [
        Timing(name, measure(lambda s=selection: store.history(s), runs))
        for name, selection in selections.items()
    ]


def time_cli(url: str, runs: int) -> list[Timing]:
    """Time `jobrunner history --limit 50` through click in this process, then as a process."""
    arguments = ["history", "--limit", "50", "--database-url", url]
    runner = CliRunner()

    def invoke() -> None:
        result = runner.invoke(jobrunner_cli, arguments)
        if result.exit_code != 0:
            raise RuntimeError(f"jobrunner history failed: {result.output}")

    in_process = measure(invoke, runs)
    executable = str(Path(sys.executable).with_name("jobrunner"))
    process = measure(
        lambda: subprocess.run([executable, *arguments], check=True, capture_output=True),
        CLI_PROCESS_RUNS,
    )
    return [
        Timing("jobrunner history (in process)", in_process),
        Timing("jobrunner history (new process)", process, "includes Python start and imports"),
    ]


def time_job_writes(store: LedgerStore, samples: int) -> list[Timing]:
    """Time the ledger writes of one Job's life on the poll and watch paths."""
    calls: dict[str, list[float]] = {}

    def timed(name: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = action()
        calls.setdefault(name, []).append(time.perf_counter() - started)
        return value

    totals = []
    for number in range(samples):
        started = time.perf_counter()
        write_one_job(store, number, timed)
        totals.append(time.perf_counter() - started)
    timings = [Timing(name, seconds) for name, seconds in calls.items()]
    return [*timings, Timing("one Job's writes in total", totals, f"{len(calls)} kinds of call")]


def write_one_job(store: LedgerStore, number: int, timed: Callable[..., Any]) -> None:
    now = datetime.now(UTC)
    job = ObservedJob(
        uid=f"bench-job-{number}-{uuid.uuid4()}",
        namespace="shop",
        name=f"orders-bench-{number}",
        scaled_object_uid="uid-orders",
        scaled_object_name="orders",
        generation=3,
        created_at=now,
        state="pending",
    )
    pod = ObservedPod(
        uid=f"bench-pod-{job.uid}",
        job_uid=job.uid,
        namespace="shop",
        name=f"{job.name}-x",
        node="node-1",
        phase="Running",
        started_at=now + timedelta(seconds=2),
    )
    decision = DecisionInput(
        scaled_object_uid="uid-orders",
        generation=3,
        strategy="default",
        active=True,
        queue_length=10.0,
        max_scale=1,
        running=0,
        pending=0,
        effective_max_scale=1,
        jobs_requested=1,
        triggers=[{"trigger": "kafka-orders", "queueLength": 10.0, "target": 10.0}],
    )

    # The poll path: the decision, then the Jobs it created.
    decision_id = timed("record_decision", lambda: store.record_decision(decision))
    timed(
        "record_jobs_created",
        lambda: store.record_jobs_created(decision_id=decision_id, jobs=[job]),
    )

    # The watch path: the Job's and its pod's events until the Job succeeds.
    timed("observe_job pending", lambda: store.observe_job(job))
    timed("observe_pod Running", lambda: store.observe_pod(pod))
    running = replace(job, state="running")
    timed("observe_job running", lambda: store.observe_job(running))

    done = now + timedelta(seconds=12)
    finished_pod = replace(pod, phase="Succeeded", finished_at=done, exit_code=0)
    timed("observe_pod Succeeded", lambda: store.observe_pod(finished_pod))
    succeeded = replace(job, state="succeeded", finished_at=done)
    timed("observe_job succeeded", lambda: store.observe_job(succeeded))


# --- databases --------------------------------------------------------------------------------


def default_postgres_url() -> str | None:
    if "JOBRUNNER_TEST_POSTGRES_URL" in os.environ:
        return os.environ["JOBRUNNER_TEST_POSTGRES_URL"]
    env_file = Path(os.environ.get("JOBRUNNER_ENV_DIR", "/tmp/jobrunner-env")) / "env"
    if not env_file.exists():
        return None
    for line in env_file.read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        if key == "JOBRUNNER_TEST_POSTGRES_URL":
            return shlex.split(value)[0]
    return None


@contextmanager
def fresh_database(dialect: str, postgres_url: str | None) -> Iterator[str]:
    """Yield the URL of an empty database, and remove it afterwards."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as directory:
            yield f"sqlite:///{directory}/ledger.db"
        return
    if not postgres_url:
        raise SystemExit("no PostgreSQL URL: start tests/env/up or pass --postgres-url")
    server = make_url(postgres_url)
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def benchmark(dialect: str, history: History, arguments: argparse.Namespace) -> None:
    with fresh_database(dialect, arguments.postgres_url) as url:
        upgrade(url)
        seconds = load(url, history)
        print(
            f"\n{dialect}: loaded {len(history.jobs):,} Jobs, {len(history.pods):,} pods and "
            f"{len(history.decisions):,} decisions in {seconds:.1f} s"
        )
        store = LedgerStore.open(url)
        with store.engine.connect() as connection:
            version = connection.exec_driver_sql(
                "SELECT sqlite_version()" if dialect == "sqlite" else "SHOW server_version"
            ).scalar_one()
            print(f"{dialect} {version}")
            sections = {"docs/ledger.md queries": time_queries(connection, dialect, arguments.runs)}
        sections["history"] = time_history(store, arguments.runs) + time_cli(url, arguments.runs)
        sections["writes of one Job"] = time_job_writes(store, arguments.write_samples)
        store.close()
        migration = time_index_migration(url)
    for title, timings in sections.items():
        print(f" {title}")
        for timing in timings:
            print(timing.line())
    print(f" migration 0002 to 0003 (builds ix_jobs_state_object_duration): {migration:.2f} s")


def time_index_migration(url: str) -> float:
    """Drop the newest revision's index, then time the upgrade that builds it again."""
    downgrade(url, "0002")
    started = time.perf_counter()
    upgrade(url)
    return time.perf_counter() - started


def describe_machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="Jobs in the ledger")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each query")
    parser.add_argument(
        "--write-samples", type=int, default=WRITE_SAMPLES, help="Jobs written to time writes"
    )
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument(
        "--postgres-url",
        default=default_postgres_url(),
        help="a server where the script may create and drop a database "
        "(default: JOBRUNNER_TEST_POSTGRES_URL, or the env file of tests/env/up)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated history")
    arguments = parser.parse_args()

    print(describe_machine())
    started = time.perf_counter()
    history = simulate(arguments.jobs, datetime.now(UTC), random.Random(arguments.seed))
    print(f"simulated {len(history.jobs):,} Jobs in {time.perf_counter() - started:.1f} s")
    for dialect in arguments.databases.split(","):
        benchmark(dialect.strip(), history, arguments)


if __name__ == "__main__":
    main()
