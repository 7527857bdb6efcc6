"""One poll of one ScaledJob: measure the triggers, count Jobs, decide, create, record."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobrunner.errors import FieldProblem, InvalidSpecError, KubeError, LedgerError, ScalerError
from jobrunner.kube.cache import WatchCache
from jobrunner.kube.jobs import JobClient, JobInfo, PodInfo, build_job, count_jobs, job_info
from jobrunner.ledger.store import DecisionInput, LedgerStore, ObservedJob
from jobrunner.logconfig import context
from jobrunner.resources.scaledjob import ScaledJob, Trigger
from jobrunner.scalers import Scaler, TriggerInput, scaler_class
from jobrunner.scaling.scaledjob import Decision, TriggerValue, decide

log = logging.getLogger(__name__)


@dataclass
class TriggerScaler:
    trigger: Trigger
    scaler: Scaler
    last_error: str | None = None


def build_scalers(scaled_job: ScaledJob) -> list[TriggerScaler]:
    """Check every trigger's metadata and build its scaler.

    Raise InvalidSpecError listing the problems of every trigger at once.
    """
    subject = f"ScaledJob {scaled_job.key}"
    problems: list[FieldProblem] = []
    built: list[TriggerScaler] = []
    env = container_env(scaled_job)
    for trigger in scaled_job.triggers:
        path = f"spec.triggers[{trigger.index}]"
        try:
            cls = scaler_class(trigger.type, subject=subject, path=path)
            source = TriggerInput(
                subject=subject, path=path, metadata=trigger.metadata, resolved_env=env
            )
            built.append(TriggerScaler(trigger, cls.from_settings(cls.parse_settings(source))))
        except InvalidSpecError as error:
            problems.extend(error.problems)
    if problems:
        for item in built:
            item.scaler.close()
        raise InvalidSpecError(subject, problems)
    return built


def container_env(scaled_job: ScaledJob) -> dict[str, str]:
    """Literal `env` values of the target container, for `...FromEnv` parameters.

    The target is the container named by envSourceContainerName, else the first one.
    NOTE: values from Secrets, ConfigMaps and `envFrom` are not resolved here yet.
    """
    pod_spec = (scaled_job.job_template.get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    wanted = scaled_job.env_source_container_name
    chosen = next((c for c in containers if c.get("name") == wanted), None) if wanted else None
    if chosen is None and containers:
        chosen = containers[0]
    env = (chosen or {}).get("env") or []
    return {str(e["name"]): str(e["value"]) for e in env if "name" in e and "value" in e}


class ScaledJobPoller:
    """Polls one ScaledJob; APScheduler calls `poll` every pollingInterval."""

    def __init__(
        self,
        scaled_job: ScaledJob,
        scalers: Sequence[TriggerScaler],
        *,
        jobs: WatchCache[JobInfo],
        pods: WatchCache[PodInfo],
        job_client: JobClient,
        ledger: LedgerStore,
    ) -> None:
        self.scaled_job = scaled_job
        self.scalers = list(scalers)
        self.jobs = jobs
        self.pods = pods
        self.job_client = job_client
        self.ledger = ledger
        self._log_context = context(namespace=scaled_job.namespace, scaled_job=scaled_job.name)

    def poll(self) -> Decision | None:
        scaled_job = self.scaled_job
        if scaled_job.paused:
            log.debug("paused, not polling", extra=self._log_context)
            return None
        values = self._measure()
        counts = count_jobs(
            self.jobs.by_index(scaled_job.key),
            self.pods.by_index,
            pending_pod_conditions=scaled_job.scaling_strategy.pending_pod_conditions,
        )
        decision = decide(
            values,
            running=counts.running,
            pending=counts.pending,
            min_count=scaled_job.min_replica_count,
            max_count=scaled_job.max_replica_count,
            strategy=scaled_job.scaling_strategy,
        )
        log.debug(
            "poll: active=%s queueLength=%s maxScale=%s running=%s pending=%s jobsToCreate=%s",
            decision.active,
            decision.queue_length,
            decision.max_scale,
            decision.running,
            decision.pending,
            decision.jobs_to_create,
            extra=self._log_context,
        )
        if decision.jobs_to_create > 0:
            self._create_jobs(decision, values)
        return decision

    def _measure(self) -> list[TriggerValue]:
        values = []
        for item in self.scalers:
            trigger_context = {**self._log_context, "trigger": item.trigger.label}
            try:
                measurement = item.scaler.measure()
            except ScalerError as error:
                message = str(error)
                # Log a failure when it starts or changes; the same failure on every poll
                # would flood the log, so repeats go to DEBUG.
                level = logging.WARNING if message != item.last_error else logging.DEBUG
                log.log(
                    level,
                    "trigger failed, no Jobs from it on this poll: %s",
                    message,
                    extra=trigger_context,
                )
                item.last_error = message
                continue
            if item.last_error is not None:
                log.info("trigger recovered", extra=trigger_context)
                item.last_error = None
            values.append(
                TriggerValue(
                    item.trigger.label,
                    measurement.queue_length,
                    measurement.target,
                    measurement.active,
                )
            )
        return values

    def _create_jobs(self, decision: Decision, values: Sequence[TriggerValue]) -> None:
        scaled_job = self.scaled_job
        try:
            decision_id = self.ledger.record_decision(_decision_input(scaled_job, decision, values))
        except LedgerError as error:
            # Creating Jobs the ledger cannot record would lose their history.
            log.error(
                "not creating Jobs because the ledger cannot be written: %s",
                error,
                extra=self._log_context,
            )
            return
        created: list[JobInfo] = []
        for _ in range(decision.jobs_to_create):
            try:
                raw = self.job_client.create(build_job(scaled_job))
            except KubeError as error:
                log.warning("%s", error, extra=self._log_context)
                continue
            info = self.jobs.put(raw) or job_info(raw)
            if info is not None:
                created.append(info)
                log.info("created Job %s", info.name, extra={**self._log_context, "job": info.name})
        try:
            self.ledger.record_jobs_created(
                decision_id=decision_id, jobs=[observed_job(job) for job in created]
            )
        except LedgerError as error:
            # The Job watch records these Jobs when their events arrive, so they are not lost.
            log.error("recording created Jobs failed: %s", error, extra=self._log_context)
        if len(created) < decision.jobs_to_create:
            log.warning(
                "created %d of %d Jobs",
                len(created),
                decision.jobs_to_create,
                extra=self._log_context,
            )

    def close(self) -> None:
        for item in self.scalers:
            item.scaler.close()


def observed_job(job: JobInfo, *, deleted: bool = False) -> ObservedJob:
    """The ledger's view of a Job; a Job deleted before it finished is recorded as deleted."""
    return ObservedJob(
        uid=job.uid,
        namespace=job.namespace,
        name=job.name,
        scaled_object_uid=job.owner_uid,
        scaled_object_name=job.scaled_job,
        generation=job.generation,
        created_at=job.created_at,
        state="deleted" if deleted and not job.finished else job.state,
        finished_at=job.finished_at,
    )


def _decision_input(
    scaled_job: ScaledJob, decision: Decision, values: Sequence[TriggerValue]
) -> DecisionInput:
    triggers: list[dict[str, Any]] = [
        {"trigger": v.label, "queueLength": v.queue_length, "target": v.target, "active": v.active}
        for v in values
    ]
    return DecisionInput(
        scaled_object_uid=scaled_job.uid,
        generation=scaled_job.generation,
        strategy=decision.strategy,
        active=decision.active,
        queue_length=decision.queue_length,
        max_scale=decision.max_scale,
        running=decision.running,
        pending=decision.pending,
        effective_max_scale=decision.effective_max_scale,
        jobs_requested=decision.jobs_to_create,
        triggers=triggers,
    )
