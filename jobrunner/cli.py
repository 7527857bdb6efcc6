"""The `jobrunner` command line: run, validate, plan, db, history.

Every failure prints one `error: ...` line and exits 1; `--debug` shows the traceback too.
`validate` prints one line per problem instead, and `plan` one `error:` line per problem.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
import re
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import click

from jobrunner import __version__
from jobrunner.config import DEFAULT_DATABASE_URL, RunnerSettings
from jobrunner.errors import JobRunnerError
from jobrunner.ledger.records import JOB_STATES
from jobrunner.logconfig import configure_logging
from jobrunner.resources.auth import DEFAULT_CLUSTER_OBJECT_NAMESPACE

if TYPE_CHECKING:
    from jobrunner.checks import CheckedScaledJob
    from jobrunner.resources.scaledjob import Trigger

F = TypeVar("F", bound=Callable[..., Any])

# Bounds of the retention options: a century of days, and what a 64-bit row count holds.
MAX_DAYS = 36_500.0
MAX_JOBS = 2**62

database_url_option = click.option(
    "--database-url",
    envvar="JOBRUNNER_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="SQLAlchemy URL of the ledger (sqlite:///path or postgresql+psycopg://...); "
    "also read from JOBRUNNER_DATABASE_URL.",
)

cluster_object_namespace_option = click.option(
    "--cluster-object-namespace",
    envvar="JOBRUNNER_CLUSTER_OBJECT_NAMESPACE",
    default=DEFAULT_CLUSTER_OBJECT_NAMESPACE,
    show_default=True,
    help="Namespace of the Secrets and ConfigMaps that ClusterTriggerAuthentications read "
    "(the runner's own namespace); also read from JOBRUNNER_CLUSTER_OBJECT_NAMESPACE.",
)


def reports_errors(command: F) -> F:
    """Turn a JobRunnerError into one `error:` line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except JobRunnerError as error:
            if click.get_current_context().find_root().params.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jobrunner")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    envvar="JOBRUNNER_LOG_LEVEL",
    help="Lowest level of log lines to print.",
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    envvar="JOBRUNNER_LOG_FORMAT",
    help="Log lines as plain text or as one JSON object each.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def main(log_level: str, log_format: str, debug: bool) -> None:
    """Event-driven Kubernetes Job runner with a SQL ledger of every Job."""
    configure_logging(level=log_level, log_format=log_format)


@main.command()
@database_url_option
@click.option(
    "--namespace",
    envvar="JOBRUNNER_NAMESPACE",
    default=None,
    help="Watch ScaledJobs in this namespace only (default: all namespaces).",
)
@click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    default=None,
    help="Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).",
)
@click.option(
    "--workers",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Threads that run polls; bounds how many polls run at once.",
)
@click.option(
    "--retention-days",
    envvar="JOBRUNNER_RETENTION_DAYS",
    default=None,
    type=click.FloatRange(min=0, max=MAX_DAYS, min_open=True),
    help="Delete ledger rows of Jobs created more than this many days ago (default: keep all).",
)
@click.option(
    "--retention-max-jobs",
    envvar="JOBRUNNER_RETENTION_MAX_JOBS",
    default=None,
    type=click.IntRange(1, MAX_JOBS),
    help="Keep at most this many Jobs in the ledger, deleting the oldest (default: no limit).",
)
@click.option(
    "--runner-namespace",
    envvar="JOBRUNNER_RUNNER_NAMESPACE",
    default=None,
    help="The namespace the runner runs in (default: its pod's namespace, else jobrunner).",
)
@click.option(
    "--cluster-object-namespace",
    envvar="JOBRUNNER_CLUSTER_OBJECT_NAMESPACE",
    default=None,
    help="Where ClusterTriggerAuthentications read Secrets and ConfigMaps "
    "(default: the runner namespace).",
)
@click.option(
    "--restrict-secret-access",
    envvar="JOBRUNNER_RESTRICT_SECRET_ACCESS",
    is_flag=True,
    help="Read Secrets only from the runner namespace, so RBAC can grant Secrets there only.",
)
@reports_errors
def run(  # noqa: PLR0917 - click passes every option as an argument
    database_url: str,
    namespace: str | None,
    kubeconfig: str | None,
    workers: int,
    retention_days: float | None,
    retention_max_jobs: int | None,
    runner_namespace: str | None,
    cluster_object_namespace: str | None,
    restrict_secret_access: bool,
) -> None:
    """Watch ScaledJobs and create Jobs from their triggers until interrupted."""
    from jobrunner.config import detect_runner_namespace
    from jobrunner.controller.runner import Runner
    from jobrunner.kube.client import load_api_client
    from jobrunner.ledger.store import LedgerStore

    own_namespace = runner_namespace or detect_runner_namespace()
    settings = RunnerSettings(
        database_url=database_url,
        namespace=namespace,
        kubeconfig=kubeconfig,
        workers=workers,
        retention_days=retention_days,
        retention_max_jobs=retention_max_jobs,
        runner_namespace=own_namespace,
        cluster_object_namespace=cluster_object_namespace or own_namespace,
        restrict_secret_access=restrict_secret_access,
    )
    ledger = LedgerStore.open(settings.database_url)
    runner = Runner(settings, api=load_api_client(settings.kubeconfig), ledger=ledger)

    def request_stop(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
        runner.request_stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runner.start()
    try:
        runner.wait()
    finally:
        runner.stop()
        ledger.close()


@main.command()
@click.argument("files", nargs=-1, required=True)
@cluster_object_namespace_option
@reports_errors
def validate(files: tuple[str, ...], cluster_object_namespace: str) -> None:
    """Check the manifests in FILES without a cluster.

    Reads ScaledJobs, TriggerAuthentications, ClusterTriggerAuthentications, Secrets and
    ConfigMaps from multi-document YAML, resolves every authenticationRef against them and
    checks each ScaledJob and its triggers as the runner would. Other kinds are skipped.

    Prints one line per problem, then a summary on stderr, and exits 1 if there is any
    problem. Otherwise prints the summary and exits 0.
    """
    from jobrunner.checks import check_files

    check = check_files(files, cluster_object_namespace=cluster_object_namespace)
    for problem in check.problems:
        click.echo(str(problem))
    if check.problems:
        click.echo(check.summary(), err=True)
        sys.exit(1)
    click.echo(check.summary())


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option(
    "--queue-length",
    "-q",
    "queue_lengths",
    multiple=True,
    metavar="TRIGGER=VALUE",
    help="Queue length a trigger reports (for Kafka, its lag). TRIGGER is the trigger's name "
    "or 0-based index. Repeat for each trigger; a trigger without a value counts as failed.",
)
@click.option(
    "--running",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Unfinished Jobs of the ScaledJob, pending ones included.",
)
@click.option(
    "--pending",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Unfinished Jobs whose pods have not started; at most --running.",
)
@click.option(
    "--scaled-job",
    "scaled_job_name",
    default=None,
    metavar="[NAMESPACE/]NAME",
    help="The ScaledJob to plan when FILES define more than one.",
)
@click.option(
    "--output",
    "-o",
    "output",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="A step-by-step explanation, or the numbers as JSON.",
)
@cluster_object_namespace_option
@reports_errors
def plan(
    *,
    files: tuple[str, ...],
    queue_lengths: tuple[str, ...],
    running: int,
    pending: int,
    scaled_job_name: str | None,
    output: str,
    cluster_object_namespace: str,
) -> None:
    """Show how many Jobs one poll of a ScaledJob would create, without a cluster or broker.

    FILES define the ScaledJob and the TriggerAuthentications, Secrets and ConfigMaps that
    its triggers reference. Each trigger's target and activation threshold come from its
    metadata; its queue length comes from --queue-length.
    """
    from jobrunner.checks import check_files
    from jobrunner.scaling.explain import (
        TriggerReport,
        decision_report,
        explain_decision,
        trigger_values,
    )
    from jobrunner.scaling.scaledjob import decide

    if pending > running:
        raise click.UsageError(
            f"--pending {pending} is greater than --running {running}; --running counts "
            "every unfinished Job, pending ones included"
        )
    check = check_files(
        files, cluster_object_namespace=cluster_object_namespace, api_server_rules=False
    )
    # A file that cannot be read or parsed explains a missing ScaledJob better than
    # "no ScaledJob", so those problems come first.
    file_problems = [p for p in check.problems if not p.subject]
    if not check.scaled_jobs and file_problems:
        for problem in file_problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    checked = _pick_scaled_job(check.scaled_jobs, scaled_job_name)
    # Problems of other ScaledJobs in the files do not affect this one.
    problems = [
        p
        for p in check.problems
        if p.subject == checked.document.subject or not p.subject.startswith("ScaledJob ")
    ]
    if problems or checked.scaled_job is None:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        click.echo("error: fix these problems first; `jobrunner validate` lists them", err=True)
        sys.exit(1)

    scaled_job = checked.scaled_job
    values = _queue_lengths(queue_lengths, scaled_job.triggers)
    reports = []
    for item in checked.triggers:
        if item.thresholds is None:
            raise JobRunnerError(
                f"ScaledJob {scaled_job.key}: trigger {item.trigger.index}: plan does not "
                f"support trigger type {item.trigger.type} yet because it states no target"
            )
        reports.append(
            TriggerReport(
                index=item.trigger.index,
                name=item.trigger.name,
                type=item.trigger.type,
                target=item.thresholds.target,
                activation_threshold=item.thresholds.activation,
                queue_length=values.get(item.trigger.index),
            )
        )
    decision = decide(
        trigger_values(reports),
        running=running,
        pending=pending,
        min_count=scaled_job.min_replica_count,
        max_count=scaled_job.max_replica_count,
        strategy=scaled_job.scaling_strategy,
    )
    if output == "json":
        report = decision_report(decision, reports, strategy=scaled_job.scaling_strategy)
        document = {"scaledJob": scaled_job.key, "paused": scaled_job.paused, **report}
        click.echo(json.dumps(document, indent=2))
        return
    jobs = decision.jobs_to_create
    click.echo(f"ScaledJob {scaled_job.key}: {jobs} {'Job' if jobs == 1 else 'Jobs'} to create")
    if scaled_job.paused:
        click.echo("  the ScaledJob is paused, so a real poll would not run")
    steps = explain_decision(
        decision,
        reports,
        strategy=scaled_job.scaling_strategy,
        min_count=scaled_job.min_replica_count,
        max_count=scaled_job.max_replica_count,
    )
    for step in steps:
        click.echo(f"  {step}")


def _pick_scaled_job(
    scaled_jobs: Sequence[CheckedScaledJob], wanted: str | None
) -> CheckedScaledJob:
    """Return the CheckedScaledJob named `wanted` (NAME or NAMESPACE/NAME), or the only one."""
    if wanted is not None:
        matches = [
            item
            for item in scaled_jobs
            if wanted in (item.document.name, f"{item.document.namespace}/{item.document.name}")
        ]
    else:
        matches = list(scaled_jobs)
    names = ", ".join(f"{i.document.namespace}/{i.document.name}" for i in scaled_jobs)
    if not matches:
        if wanted is None:
            raise click.UsageError("FILES define no ScaledJob")
        raise click.UsageError(f"--scaled-job {wanted}: not found; ScaledJobs in FILES: {names}")
    if len(matches) > 1:
        raise click.UsageError(
            f"FILES define several ScaledJobs ({names}); pick one with --scaled-job"
        )
    return matches[0]


def _queue_lengths(arguments: Sequence[str], triggers: Sequence[Trigger]) -> dict[int, float]:
    """Map trigger index to the queue length that `--queue-length TRIGGER=VALUE` gives it."""
    by_name = {trigger.name: trigger.index for trigger in triggers if trigger.name}
    listed = ", ".join(f"{t.index} ({t.name})" if t.name else str(t.index) for t in triggers)
    values: dict[int, float] = {}
    for argument in arguments:
        label, separator, text = argument.rpartition("=")
        if not separator or not label:
            raise click.UsageError(f"--queue-length {argument}: expected TRIGGER=VALUE")
        index = by_name.get(label)
        if index is None and label.isdigit() and int(label) < len(triggers):
            index = int(label)
        if index is None:
            raise click.UsageError(
                f"--queue-length {argument}: no trigger with that name or index; triggers: {listed}"
            )
        if index in values:
            raise click.UsageError(f"--queue-length {argument}: trigger {index} is given twice")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise click.UsageError(f"--queue-length {argument}: VALUE must be a number >= 0")
        values[index] = value
    return values


@main.group()
def db() -> None:
    """Manage the ledger database schema."""


@db.command()
@database_url_option
@reports_errors
def upgrade(database_url: str) -> None:
    """Create the ledger's tables, or migrate them to this version's schema."""
    from jobrunner.ledger.schema import head_revision
    from jobrunner.ledger.schema import upgrade as upgrade_schema
    from jobrunner.ledger.urls import redact_url

    upgrade_schema(database_url)
    click.echo(f"ledger at {redact_url(database_url)} is at schema revision {head_revision()}")


@db.command()
@database_url_option
@click.option(
    "--older-than-days",
    type=click.FloatRange(min=0, max=MAX_DAYS, min_open=True),
    default=None,
    help="Delete Jobs created more than this many days ago.",
)
@click.option(
    "--max-jobs",
    type=click.IntRange(1, MAX_JOBS),
    default=None,
    help="Keep only this many newest Jobs.",
)
@reports_errors
def prune(database_url: str, older_than_days: float | None, max_jobs: int | None) -> None:
    """Delete old Jobs, their pods and their decisions from the ledger."""
    from jobrunner.ledger.store import LedgerStore

    if older_than_days is None and max_jobs is None:
        raise click.UsageError("give --older-than-days, --max-jobs or both")
    store = LedgerStore.open(database_url)
    try:
        older_than = (
            datetime.now(UTC) - timedelta(days=older_than_days) if older_than_days else None
        )
        pruned = store.prune(older_than=older_than, max_jobs=max_jobs)
    finally:
        store.close()
    click.echo(f"deleted {pruned} Jobs from the ledger")


@db.command()
@database_url_option
@reports_errors
def current(database_url: str) -> None:
    """Print the ledger's schema revision and the one this version needs."""
    from jobrunner.ledger.schema import current_revision, head_revision
    from jobrunner.ledger.store import make_engine

    engine = make_engine(database_url)
    try:
        click.echo(f"current: {current_revision(engine) or 'none'}\nrequired: {head_revision()}")
    finally:
        engine.dispose()


@main.command()
@database_url_option
@click.option("--scaled-job", default=None, help="Only Jobs of the ScaledJob with this name.")
@click.option("--namespace", "-n", default=None, help="Only Jobs in this namespace.")
@click.option(
    "--status",
    "states",
    multiple=True,
    type=click.Choice(JOB_STATES),
    help="Only Jobs in this state; repeat for several.",
)
@click.option(
    "--since",
    default=None,
    metavar="WHEN",
    help="Only Jobs created since WHEN: a duration back from now (30m, 24h, 7d) or an ISO "
    "8601 time (2026-01-31T12:00:00Z).",
)
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(1),
    help="Show at most this many Jobs.",
)
@click.option(
    "--output",
    "-o",
    "output",
    default="table",
    show_default=True,
    type=click.Choice(["table", "json", "csv"]),
    help="Output format.",
)
@reports_errors
def history(  # noqa: PLR0917 - click passes every option as an argument
    database_url: str,
    scaled_job: str | None,
    namespace: str | None,
    states: tuple[str, ...],
    since: str | None,
    limit: int,
    output: str,
) -> None:
    """List the Jobs in the ledger, newest first."""
    from jobrunner.ledger.records import HistoryFilter
    from jobrunner.ledger.store import LedgerStore

    selection = HistoryFilter(
        scaled_job=scaled_job,
        namespace=namespace,
        states=states,
        since=parse_since(since) if since else None,
        limit=limit,
    )
    store = LedgerStore.open(database_url)
    try:
        records = store.history(selection)
    finally:
        store.close()
    if output == "json":
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
    elif output == "csv":
        click.echo(history_csv(records), nl=False)
    else:
        click.echo(history_table(records))


@main.command()
@click.argument("job")
@click.option(
    "--namespace", "-n", default="default", show_default=True, help="The Job's namespace."
)
@click.option(
    "--previous",
    "-p",
    is_flag=True,
    help="Show the log of each container's previous run, as kubectl logs -p does.",
)
@click.option(
    "--tail",
    "tail_lines",
    type=click.IntRange(0),
    default=None,
    help="Show only this many last lines of each log.",
)
@click.option(
    "--kubeconfig",
    envvar="KUBECONFIG",
    default=None,
    help="Kubeconfig file (default: KUBECONFIG, ~/.kube/config, then in-cluster).",
)
@database_url_option
@reports_errors
def logs(  # noqa: PLR0917 - click passes every option as an argument
    job: str,
    namespace: str,
    previous: bool,
    tail_lines: int | None,
    kubeconfig: str | None,
    database_url: str,
) -> None:
    """Print the logs of a Job's pods; when they are gone, what the ledger recorded."""
    from jobrunner.kube.client import load_api_client
    from jobrunner.kube.logs import job_exists, job_logs

    api = load_api_client(kubeconfig)
    found = False
    if job_exists(api, namespace, job):
        for entry in job_logs(api, namespace, job, previous=previous, tail_lines=tail_lines):
            found = True
            click.echo(
                f"==> pod {entry.pod}, container {entry.container}"
                f"{' (previous run)' if entry.previous else ''} <=="
            )
            click.echo(entry.text, nl=not entry.text.endswith("\n"))
    if found:
        return
    click.echo(ledger_summary(database_url, namespace, job), err=True)
    sys.exit(1)


def ledger_summary(database_url: str, namespace: str, job: str) -> str:
    """Describe a Job whose pods are gone from what the ledger recorded of it."""
    from jobrunner.errors import LedgerError
    from jobrunner.ledger.records import HistoryFilter
    from jobrunner.ledger.store import LedgerStore

    gone = f"the pods of Job {namespace}/{job} are gone from the cluster"
    try:
        store = LedgerStore.open(database_url)
    except LedgerError as error:
        return f"error: {gone}, and the ledger cannot be read: {error}"
    try:
        records = store.history(HistoryFilter(namespace=namespace, job_name=job, limit=1))
    finally:
        store.close()
    if not records:
        return f"error: {gone}, and the ledger has no Job of that name"
    record = records[0]
    details = [
        f"state {record.state}",
        f"created {_time(record.created_at)}",
        f"exit code {record.exit_code}" if record.exit_code is not None else "",
        f"reason {record.reason}" if record.reason else "",
        f"ran {record.duration_seconds:.1f}s" if record.duration_seconds is not None else "",
        f"pods {', '.join(record.pods)}" if record.pods else "",
    ]
    known = "; ".join(item for item in details if item)
    return (
        f"error: {gone}; the ledger recorded: {known}. "
        f"See jobrunner history -n {namespace} for more."
    )


HISTORY_CSV_FIELDS = [
    "uid",
    "namespace",
    "name",
    "scaledJob",
    "state",
    "createdAt",
    "startedAt",
    "finishedAt",
    "durationSeconds",
    "exitCode",
    "reason",
    "attempts",
    "pods",
]
HISTORY_COLUMNS = (
    "NAMESPACE",
    "SCALEDJOB",
    "JOB",
    "STATE",
    "CREATED",
    "DURATION",
    "EXIT",
    "REASON",
)


def history_table(records: Sequence[Any]) -> str:
    rows = [
        (
            r.namespace,
            r.scaled_job,
            r.name,
            r.state,
            _time(r.created_at),
            f"{r.duration_seconds:.1f}s" if r.duration_seconds is not None else "-",
            "-" if r.exit_code is None else str(r.exit_code),
            r.reason or "-",
        )
        for r in records
    ]
    return format_table(HISTORY_COLUMNS, rows)


def history_csv(records: Sequence[Any]) -> str:
    buffer = io.StringIO()
    fields = list(records[0].as_dict()) if records else HISTORY_CSV_FIELDS
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = record.as_dict()
        row["pods"] = " ".join(row["pods"])
        writer.writerow(row)
    return buffer.getvalue()


def parse_since(text: str) -> datetime:
    """Parse `30m`, `24h`, `7d` (back from now) or an ISO 8601 time into an aware datetime."""
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        try:
            return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
        except (OverflowError, ValueError):
            raise click.BadParameter(
                "that reaches back before year 1; give a shorter duration", param_hint="--since"
            ) from None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            "give a duration such as 30m, 24h or 7d, or an ISO 8601 time", param_hint="--since"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _time(value: Any) -> str:
    return str(value.strftime("%Y-%m-%d %H:%M:%S"))


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
