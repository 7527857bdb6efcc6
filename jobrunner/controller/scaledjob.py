"""One poll of one ScaledJob: measure, count, decide, create, clean up, report.

A poll measures the triggers and counts the unfinished Jobs from the watch caches. It decides
with the pure functions of `jobrunner.scaling`, creates the Jobs and records them in the
ledger. Then it deletes finished Jobs beyond the history limits and updates the status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from jobrunner.controller.triggers import TriggerContext, TriggerScaler, measure_triggers
from jobrunner.errors import KubeError, LedgerError
from jobrunner.kube.cache import WatchCache
from jobrunner.kube.jobs import JobClient, build_job
from jobrunner.kube.records import JobInfo, PodInfo, job_info
from jobrunner.kube.status import (
    StatusWriter,
    active_condition,
    job_create_failed_condition,
    paused_condition,
    ready_condition,
)
from jobrunner.ledger.records import DecisionInput, ObservedJob, ObservedPod
from jobrunner.ledger.store import LedgerStore
from jobrunner.logconfig import context
from jobrunner.resources.scaledjob import ScaledJob
from jobrunner.scaling.cleanup import JobSummary, history_to_delete, rollout_to_delete
from jobrunner.scaling.counts import count_jobs
from jobrunner.scaling.scaledjob import Decision, TriggerValue, decide

log = logging.getLogger(__name__)


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
        trigger_context: TriggerContext,
        status: StatusWriter | None = None,
    ) -> None:
        self.trigger_context = trigger_context
        self.scaled_job = scaled_job
        self.scalers = list(scalers)
        self.jobs = jobs
        self.pods = pods
        self.job_client = job_client
        self.ledger = ledger
        self.status = status
        self._was_active: bool | None = None
        self._last_errors: set[str] = set()
        # Why this poll created no Job at all although it wanted some, for the Ready condition.
        self._creation_failure = ""
        self._rolled_out = False
        self._log_context = context(namespace=scaled_job.namespace, scaled_job=scaled_job.name)

    def poll(self) -> Decision | None:
        scaled_job = self.scaled_job
        if not self._rolled_out:
            self._rollout()
        if scaled_job.paused:
            log.debug("paused, not polling", extra=self._log_context)
            self._write_status(active=False, errors=[], paused=True)
            return None

        reading = measure_triggers(self.scalers, self.trigger_context, self._log_context)
        counts = count_jobs(
            self.jobs.by_index(scaled_job.key),
            self.pods.by_index,
            pending_pod_conditions=scaled_job.scaling_strategy.pending_pod_conditions,
        )
        decision = decide(
            reading.values,
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
        self._report_activity(decision.active)
        self._report_trigger_errors(reading.errors)
        self._creation_failure = ""
        if decision.jobs_to_create > 0:
            self._create_jobs(decision, reading.values)
        self._write_status(active=decision.active, errors=reading.errors, paused=False)
        self._clean_up_history()
        return decision

    # --- Jobs ---

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
            self._event(
                "JobsNotCreated", "the ledger cannot be written; see the runner's log", warning=True
            )
            return
        created: list[JobInfo] = []
        failure = ""
        for _ in range(decision.jobs_to_create):
            try:
                raw = self.job_client.create(build_job(scaled_job))
            except KubeError as error:
                log.warning("%s", error, extra=self._log_context)
                failure = str(error)
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
        self._report_created(len(created), decision.jobs_to_create, failure)

    def _report_created(self, created: int, requested: int, failure: str) -> None:
        if created == 0 and requested > 0 and failure:
            self._creation_failure = failure
        if created == requested:
            self._event("JobsCreated", f"Created {created} Job{'s' if created != 1 else ''}")
            return
        log.warning("created %d of %d Jobs", created, requested, extra=self._log_context)
        self._event(
            "JobsCreateFailed", f"Created {created} of {requested} Jobs: {failure}", warning=True
        )

    def _clean_up_history(self) -> None:
        scaled_job = self.scaled_job
        names = history_to_delete(
            [summary(job) for job in self.jobs.by_index(scaled_job.key) if job.finished],
            successful_limit=scaled_job.successful_jobs_history_limit,
            failed_limit=scaled_job.failed_jobs_history_limit,
        )
        self._delete(names, policy="Background", reason="history limit")

    def _rollout(self) -> None:
        """Delete Jobs of other generations unless the rollout is gradual.

        It runs before the first poll of each new poller, that is after every change of the
        spec, labels or annotations, and once when the runner starts.
        """
        scaled_job = self.scaled_job
        names = rollout_to_delete(
            [summary(job) for job in self.jobs.by_index(scaled_job.key)],
            generation=scaled_job.generation,
            gradual=scaled_job.rollout.gradual,
        )
        policy = scaled_job.rollout.propagation_policy.capitalize()
        self._delete(names, policy=policy, reason=f"rollout to generation {scaled_job.generation}")
        self._rolled_out = True

    def _delete(self, names: Sequence[str], *, policy: str, reason: str) -> None:
        for name in names:
            try:
                self.job_client.delete(self.scaled_job.namespace, name, propagation=policy)
            except KubeError as error:
                log.warning("%s", error, extra=self._log_context)
                continue
            log.info("deleted Job %s (%s)", name, reason, extra={**self._log_context, "job": name})

    # --- status and events ---

    def _report_activity(self, active: bool) -> None:
        if active != self._was_active and (self._was_active is not None or active):
            if active:
                self._event("ScaledJobActive", "Scaling is performed because triggers are active")
            else:
                self._event("ScaledJobInactive", "No trigger is active")
        self._was_active = active

    def _report_trigger_errors(self, errors: list[str]) -> None:
        """Record a Warning Event for each trigger failure that is new since the last poll."""
        for message in errors:
            if message not in self._last_errors:
                self._event("TriggerError", message, warning=True)
        self._last_errors = set(errors)

    def _write_status(self, *, active: bool, errors: list[str], paused: bool) -> None:
        if self.status is None:
            return
        scaled_job = self.scaled_job
        ready = ready_condition(errors=errors, active=active, trigger_count=len(self.scalers))
        if self._creation_failure and ready.status == "True":
            # The triggers work but the API server rejects every Job: the ScaledJob is not
            # doing its work, so the Ready condition reports it, not only the Events.
            ready = job_create_failed_condition(self._creation_failure)
        conditions = [ready, active_condition(active), paused_condition(paused)]
        try:
            self.status.update(
                conditions,
                active=active,
                triggers_types=",".join(dict.fromkeys(t.type for t in scaled_job.triggers)),
                authentications_types=",".join(
                    dict.fromkeys(
                        t.authentication_ref.name
                        for t in scaled_job.triggers
                        if t.authentication_ref
                    )
                ),
            )
        except KubeError as error:
            log.warning("%s", error, extra=self._log_context)

    def _event(self, reason: str, message: str, *, warning: bool = False) -> None:
        if self.status is not None:
            self.status.event(reason=reason, message=message, warning=warning)

    def close(self) -> None:
        for item in self.scalers:
            item.close()


def summary(job: JobInfo) -> JobSummary:
    return JobSummary(
        name=job.name,
        generation=job.generation,
        succeeded=job.complete,
        failed=job.failed,
        finished_at=job.finished_at,
    )


def observed_job(job: JobInfo, *, deleted: bool = False) -> ObservedJob:
    """Convert a Job to the ledger's record; a Job deleted before it finished reads deleted."""
    return ObservedJob(
        uid=job.uid,
        namespace=job.namespace,
        name=job.name,
        scaled_object_uid=job.owner_uid,
        scaled_object_name=job.scaled_job,
        generation=job.generation or 0,
        created_at=job.created_at,
        state="deleted" if deleted and not job.finished else job.state,
        finished_at=job.finished_at,
        reason=job.reason,
        message=job.message,
    )


def observed_pod(pod: PodInfo) -> ObservedPod:
    """Convert a pod to the ledger's record of it."""
    return ObservedPod(
        uid=pod.uid,
        job_uid=pod.job_uid,
        namespace=pod.namespace,
        name=pod.name,
        node=pod.node,
        phase=pod.phase,
        started_at=pod.started_at,
        finished_at=pod.finished_at,
        exit_code=pod.exit_code,
        termination_reason=pod.termination_reason,
        restarts=pod.restarts,
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
