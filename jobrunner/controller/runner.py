"""The runner: watches ScaledJobs, schedules one poll job each, and mirrors Jobs to the ledger.

APScheduler runs every ScaledJob's poll as an interval job on a bounded thread pool, with
`coalesce` and `max_instances=1`, so a slow broker delays that ScaledJob's polls instead of
piling them up. Spec changes replace the poll job; a deleted ScaledJob removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from kubernetes import client

from jobrunner.config import RunnerSettings
from jobrunner.controller.scaledjob import ScaledJobPoller, observed_job, observed_pod
from jobrunner.controller.triggers import TriggerContext, build_scalers
from jobrunner.errors import InvalidSpecError, JobRunnerError, KubeError, LedgerError
from jobrunner.kube.authstatus import AuthenticationUsers
from jobrunner.kube.cache import WatchCache
from jobrunner.kube.client import job_list_call, pod_list_call, scaled_job_list_call
from jobrunner.kube.jobs import JobClient
from jobrunner.kube.records import JobInfo, PodInfo, job_info, pod_info
from jobrunner.kube.sources import CredentialSources
from jobrunner.kube.status import (
    StatusWriter,
    active_condition,
    invalid_condition,
    paused_condition,
)
from jobrunner.ledger.records import ObservedJob
from jobrunner.ledger.store import LedgerStore
from jobrunner.logconfig import context
from jobrunner.resources.auth import authentication_key
from jobrunner.resources.scaledjob import KIND, ScaledJob, parse_scaled_job

log = logging.getLogger(__name__)

CACHE_READY_SECONDS = 60
LEDGER_CATCH_UP_SECONDS = 15


def slim_scaled_job(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the parts of a ScaledJob the runner reads; managedFields and status can be large."""
    metadata = raw.get("metadata") or {}
    keep = ("name", "namespace", "uid", "generation", "labels", "annotations")
    return {
        "metadata": {k: metadata[k] for k in keep if k in metadata},
        "spec": raw.get("spec") or {},
    }


def fingerprint(raw: dict[str, Any]) -> str:
    """Changes when the spec, labels or annotations change (the pause annotation among them)."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


class Runner:
    def __init__(
        self, settings: RunnerSettings, *, api: client.ApiClient, ledger: LedgerStore
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.api = api
        self.job_client = JobClient(client.BatchV1Api(api))
        self.scaled_jobs: WatchCache[dict[str, Any]] = WatchCache(
            name="scaledjobs",
            list_call=scaled_job_list_call(api, settings.namespace),
            convert=slim_scaled_job,
        )
        self.jobs: WatchCache[JobInfo] = WatchCache(
            name="jobs",
            list_call=job_list_call(api, settings.namespace),
            convert=job_info,
            index=lambda job: job.owner_key,
        )
        self.pods: WatchCache[PodInfo] = WatchCache(
            name="pods",
            list_call=pod_list_call(api, settings.namespace),
            convert=pod_info,
            index=lambda pod: pod.job_key,
        )
        secret_namespace = settings.runner_namespace if settings.restrict_secret_access else None
        self.sources = CredentialSources(
            api,
            namespace=settings.namespace,
            cluster_object_namespace=settings.cluster_object_namespace,
            secret_namespace=secret_namespace,
        )
        self.authentication_users = AuthenticationUsers(api)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=settings.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._lock = threading.Lock()
        self._pollers: dict[str, tuple[str, ScaledJobPoller]] = {}
        self._reported_invalid: dict[str, str] = {}
        self._invalid: dict[str, dict[str, Any]] = {}
        # ScaledJob events come from the ScaledJob watch, and re-checks of invalid ones come
        # from the credential watches. Handling one at a time keeps the poller table
        # consistent.
        self._events_lock = threading.RLock()
        self._stopped = threading.Event()
        # Set when a Job or Pod event could not be written to the ledger. A periodic job then
        # writes every cached Job and Pod again, so an outage loses no state change.
        self._ledger_behind = threading.Event()
        self._unwritten_jobs: dict[str, ObservedJob] = {}

    # --- life cycle ---

    def start(self) -> None:
        self.jobs.add_listener(self._on_job)
        self.pods.add_listener(self._on_pod)
        self.sources.add_listener(self._on_credentials)
        # Jobs, Pods and credentials must be known before the first poll uses them.
        caches: list[WatchCache[Any]] = [self.jobs, self.pods, *self.sources.caches]
        for cache in caches:
            cache.start()
        for cache in caches:
            if not cache.wait_ready(CACHE_READY_SECONDS):
                raise KubeError(
                    f"listing {cache.name} did not succeed within {CACHE_READY_SECONDS}s; "
                    "check the API server, the runner's RBAC and that the jobrunner CRDs "
                    "are installed"
                )
        self._reconcile_deleted_jobs()
        self.scheduler.start()
        self._schedule_retention()
        self.scheduler.add_job(
            self._catch_up_ledger,
            "interval",
            seconds=LEDGER_CATCH_UP_SECONDS,
            id="ledger-catch-up",
            name="ledger catch-up",
        )
        self.scaled_jobs.add_listener(self._on_scaled_job)
        self.scaled_jobs.start()
        if not self.scaled_jobs.wait_ready(CACHE_READY_SECONDS):
            raise KubeError(
                f"listing ScaledJobs did not succeed within {CACHE_READY_SECONDS}s; "
                "are the jobrunner CRDs installed?"
            )
        where = self.settings.namespace or "all namespaces"
        log.info("runner started, watching ScaledJobs in %s", where)
        if self.settings.restrict_secret_access:
            log.info("reading Secrets only from namespace %s", self.settings.runner_namespace)

    def wait(self) -> None:
        self._stopped.wait()

    def request_stop(self) -> None:
        """Make `wait` return; safe to call from a signal handler."""
        self._stopped.set()

    def stop(self) -> None:
        """Stop polling first, then the watches; a poll in progress finishes."""
        self._stopped.set()
        self.scheduler.shutdown(wait=True)
        stopping: list[WatchCache[Any]] = [
            self.scaled_jobs,
            self.jobs,
            self.pods,
            *self.sources.caches,
        ]
        for cache in stopping:
            cache.stop()
        with self._lock:
            for _, poller in self._pollers.values():
                poller.close()
            self._pollers.clear()
        log.info("runner stopped")

    # --- ScaledJob events ---

    def _on_scaled_job(self, event: str, raw: dict[str, Any], _previous: Any) -> None:
        with self._events_lock:
            self._handle_scaled_job(event, raw)

    def _on_credentials(self, _event: str, record: dict[str, Any], _previous: Any) -> None:
        """Re-check invalid ScaledJobs of the namespace when a credential object changes.

        Valid ScaledJobs need nothing here: each of their polls resolves credentials again.
        """
        namespace = record.get("namespace") or (record.get("metadata") or {}).get("namespace")
        with self._events_lock:
            for raw in list(self._invalid.values()):
                if not namespace or raw["metadata"].get("namespace") == namespace:
                    self._handle_scaled_job("MODIFIED", raw)

    def _handle_scaled_job(self, event: str, raw: dict[str, Any]) -> None:
        """Start, replace or stop the poller of one ScaledJob after a watch event."""
        metadata = raw["metadata"]
        uid = str(metadata.get("uid", ""))
        if event == "DELETED":
            self._forget(uid, metadata)
            return

        # Status writes do not change the fingerprint, so they cause no rebuild.
        version = fingerprint(raw)
        with self._lock:
            current = self._pollers.get(uid)
        if current is not None and current[0] == version:
            return

        try:
            poller = self._build_poller(raw)
        except InvalidSpecError as error:
            self._remove(uid)
            self._invalid[uid] = raw
            self._report_invalid(uid, version, metadata, error)
            return
        self._reported_invalid.pop(uid, None)
        self._invalid.pop(uid, None)
        self._schedule(uid, version, poller)

    def _forget(self, uid: str, metadata: dict[str, Any]) -> None:
        self._remove(uid)
        self._reported_invalid.pop(uid, None)
        self._invalid.pop(uid, None)
        self.authentication_users.remove(uid)
        log.info(
            "ScaledJob deleted, polling stopped",
            extra=context(namespace=metadata.get("namespace"), scaled_job=metadata.get("name")),
        )

    def _build_poller(self, raw: dict[str, Any]) -> ScaledJobPoller:
        """Parse a ScaledJob and build its poller; raise InvalidSpecError for a bad spec."""
        scaled_job = parse_scaled_job(raw)
        trigger_context = TriggerContext(
            scaled_job=scaled_job,
            sources=self.sources,
            cluster_object_namespace=self.settings.cluster_object_namespace,
        )
        scalers = build_scalers(trigger_context)

        self.authentication_users.set(
            scaled_job.uid,
            scaled_job.name,
            [
                authentication_key(t.authentication_ref, namespace=scaled_job.namespace)
                for t in scaled_job.triggers
                if t.authentication_ref is not None
            ],
        )
        self._record_scaled_job(scaled_job)
        status = StatusWriter(
            self.api, namespace=scaled_job.namespace, name=scaled_job.name, uid=scaled_job.uid
        )
        return ScaledJobPoller(
            scaled_job,
            scalers,
            jobs=self.jobs,
            pods=self.pods,
            job_client=self.job_client,
            ledger=self.ledger,
            trigger_context=trigger_context,
            status=status,
        )

    def _schedule(self, uid: str, version: str, poller: ScaledJobPoller) -> None:
        scaled_job = poller.scaled_job
        with self._lock:
            previous = self._pollers.pop(uid, None)
            self._pollers[uid] = (version, poller)
        self.scheduler.add_job(
            self._poll,
            "interval",
            args=[poller],
            id=uid,
            replace_existing=True,
            seconds=scaled_job.polling_interval,
            next_run_time=datetime.now(UTC),
            name=scaled_job.key,
        )
        if previous is not None:
            previous[1].close()
        log.info(
            "polling every %ds",
            scaled_job.polling_interval,
            extra=context(namespace=scaled_job.namespace, scaled_job=scaled_job.name),
        )

    @staticmethod
    def _poll(poller: ScaledJobPoller) -> None:
        try:
            poller.poll()
        except JobRunnerError as error:
            log.error(
                "poll failed: %s",
                error,
                extra=context(
                    namespace=poller.scaled_job.namespace, scaled_job=poller.scaled_job.name
                ),
            )
        except Exception:
            # Keep the scheduler alive for every other ScaledJob; the traceback is the report.
            log.exception(
                "poll failed unexpectedly",
                extra=context(
                    namespace=poller.scaled_job.namespace, scaled_job=poller.scaled_job.name
                ),
            )

    def _remove(self, uid: str) -> None:
        with self._lock:
            entry = self._pollers.pop(uid, None)
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(uid)
        if entry is not None:
            entry[1].close()

    def _report_invalid(
        self, uid: str, version: str, metadata: dict[str, Any], error: InvalidSpecError
    ) -> None:
        """Log an invalid ScaledJob once per version of its spec."""
        if self._reported_invalid.get(uid) == version:
            return
        self._reported_invalid[uid] = version
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        log_context = context(namespace=namespace, scaled_job=name)
        log.error("%s; it is not polled until it is fixed", error, extra=log_context)
        status = StatusWriter(self.api, namespace=namespace, name=name, uid=uid)
        problems = "; ".join(str(problem) for problem in error.problems)
        try:
            status.update(
                [invalid_condition(problems), active_condition(False), paused_condition(False)],
                active=False,
                triggers_types="",
                authentications_types="",
            )
        except KubeError as status_error:
            log.warning("%s", status_error, extra=log_context)
        status.event(reason="ScaledJobCheckFailed", message=problems, warning=True)

    def _record_scaled_job(self, scaled_job: ScaledJob) -> None:
        try:
            self.ledger.record_scaled_object(
                uid=scaled_job.uid,
                kind=KIND,
                namespace=scaled_job.namespace,
                name=scaled_job.name,
                generation=scaled_job.generation,
            )
        except LedgerError as error:
            log.error(
                "%s",
                error,
                extra=context(namespace=scaled_job.namespace, scaled_job=scaled_job.name),
            )

    # --- Job and Pod events ---

    def _reconcile_deleted_jobs(self) -> None:
        present = {job.uid for job in self.jobs.values()}
        try:
            missing = self.ledger.mark_missing_jobs(present, namespace=self.settings.namespace)
        except LedgerError as error:
            log.error("%s", error)
            return
        if missing:
            log.info("marked %d Jobs deleted while the runner was stopped", missing)

    def _schedule_retention(self) -> None:
        settings = self.settings
        if settings.retention_days is None and settings.retention_max_jobs is None:
            return
        self.scheduler.add_job(
            self._prune,
            "interval",
            seconds=settings.retention_interval_seconds,
            id="ledger-retention",
            next_run_time=datetime.now(UTC),
            name="ledger retention",
        )

    def _prune(self) -> None:
        settings = self.settings
        older_than = (
            datetime.now(UTC) - timedelta(days=settings.retention_days)
            if settings.retention_days is not None
            else None
        )
        try:
            pruned = self.ledger.prune(older_than=older_than, max_jobs=settings.retention_max_jobs)
        except LedgerError as error:
            log.error("%s", error)
            return
        if pruned:
            log.info("ledger retention removed %d Jobs", pruned)

    def _on_pod(self, event: str, pod: PodInfo, _previous: Any) -> None:
        if not pod.uid or not pod.job_uid:
            return
        try:
            self.ledger.observe_pod(observed_pod(pod))
        except LedgerError as error:
            self._ledger_behind.set()
            log.error(
                "%s; retrying from the cache",
                error,
                extra=context(namespace=pod.namespace, job=pod.job_name),
            )

    def _catch_up_ledger(self) -> None:
        """Write every cached Job and Pod again after a failed ledger write."""
        if not self._ledger_behind.is_set():
            return
        self._ledger_behind.clear()
        with self._lock:
            unwritten, self._unwritten_jobs = self._unwritten_jobs, {}
        jobs, pods = self.jobs.values(), self.pods.values()
        try:
            for observed in unwritten.values():
                self.ledger.observe_job(observed)
            for job in jobs:
                if job.owner_uid:
                    self.ledger.observe_job(observed_job(job))
            for pod in pods:
                if pod.uid and pod.job_uid:
                    self.ledger.observe_pod(observed_pod(pod))
        except LedgerError as error:
            with self._lock:
                self._unwritten_jobs = {**unwritten, **self._unwritten_jobs}
            self._ledger_behind.set()
            log.warning(
                "the ledger is still unavailable, retrying in %ds: %s",
                LEDGER_CATCH_UP_SECONDS,
                error,
            )
            return
        log.info("the ledger caught up with %d Jobs and %d pods", len(jobs), len(pods))

    def _on_job(self, event: str, job: JobInfo, _previous: Any) -> None:
        if not job.owner_uid:
            return
        observed = observed_job(job, deleted=event == "DELETED")
        try:
            self.ledger.observe_job(observed)
        except LedgerError as error:
            # A deleted Job is no longer in the cache, so keep its last state for the retry.
            with self._lock:
                self._unwritten_jobs[job.uid] = observed
            self._ledger_behind.set()
            log.error(
                "%s; retrying from the cache",
                error,
                extra=context(namespace=job.namespace, job=job.name),
            )
