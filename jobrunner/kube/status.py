"""ScaledJob status conditions and Kubernetes Events.

Conditions follow KEDA's: Ready, Active and Paused, with its reasons. The status subresource
is patched only when a condition changes or lastActiveTime is due, so an idle ScaledJob costs
no API writes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from jobrunner.errors import KubeError
from jobrunner.resources.scaledjob import API_VERSION, GROUP, KIND, PLURAL, VERSION

log = logging.getLogger(__name__)

# lastActiveTime is refreshed at most this often while the ScaledJob stays active.
LAST_ACTIVE_REFRESH = timedelta(seconds=60)
COMPONENT = "jobrunner"


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str
    message: str = ""


def ready_condition(*, errors: Sequence[str], active: bool, trigger_count: int) -> Condition:
    """Ready: True normally, Unknown when some triggers failed but the object is active."""
    if not errors:
        return Condition("Ready", "True", "ScaledJobReady", "ScaledJob is defined correctly")
    message = "; ".join(errors)
    if active and len(errors) < trigger_count:
        return Condition("Ready", "Unknown", "PartialTriggerError", message)
    return Condition("Ready", "False", "TriggerError", message)


def job_create_failed_condition(message: str) -> Condition:
    return Condition("Ready", "False", "JobCreateFailed", message)


def invalid_condition(message: str) -> Condition:
    return Condition("Ready", "False", "ScaledJobCheckFailed", message)


def active_condition(active: bool) -> Condition:
    if active:
        return Condition("Active", "True", "ScalerActive", "Scaling is performed")
    return Condition("Active", "False", "ScalerNotActive", "No trigger is active")


def paused_condition(paused: bool) -> Condition:
    if paused:
        return Condition("Paused", "True", "ScaledJobPaused", "ScaledJob is paused")
    return Condition("Paused", "False", "ScaledJobUnpaused", "ScaledJob is not paused")


def merge_conditions(
    previous: Sequence[Mapping[str, Any]], wanted: Sequence[Condition], now: datetime
) -> list[dict[str, Any]]:
    """Build the conditions list, keeping lastTransitionTime when a status does not change."""
    old = {str(c.get("type")): c for c in previous}
    merged = []
    for condition in wanted:
        before = old.get(condition.type)
        changed = before is None or before.get("status") != condition.status
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": _timestamp(now)
                if changed or before is None
                else before.get("lastTransitionTime", _timestamp(now)),
            }
        )
    return merged


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatusWriter:
    """Writes one ScaledJob's status and Events, skipping writes that change nothing."""

    def __init__(self, api: client.ApiClient, *, namespace: str, name: str, uid: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self._conditions: list[dict[str, Any]] = []
        self._written: tuple[Any, ...] | None = None
        self._last_active_written: datetime | None = None

    def update(
        self,
        conditions: Sequence[Condition],
        *,
        active: bool,
        triggers_types: str,
        authentications_types: str,
        now: datetime | None = None,
    ) -> None:
        now = now or datetime.now(UTC)
        key = (tuple(conditions), triggers_types, authentications_types)
        refresh_active = active and (
            self._last_active_written is None
            or now - self._last_active_written >= LAST_ACTIVE_REFRESH
        )
        if key == self._written and not refresh_active:
            return
        self._conditions = merge_conditions(self._conditions, conditions, now)
        status: dict[str, Any] = {
            "conditions": self._conditions,
            "triggersTypes": triggers_types,
            "authenticationsTypes": authentications_types,
        }
        if active:
            status["lastActiveTime"] = _timestamp(now)
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, self.namespace, PLURAL, self.name, {"status": status}
            )
        except ApiException as error:
            if error.status == 404:
                return
            raise KubeError(
                f"writing the status of ScaledJob {self.namespace}/{self.name} failed: "
                f"HTTP {error.status} {error.reason}"
            ) from error
        except (HTTPError, OSError) as error:
            raise KubeError(
                f"writing the status of ScaledJob {self.namespace}/{self.name} failed: "
                f"{type(error).__name__}"
            ) from error
        self._written = key
        if active:
            self._last_active_written = now

    def event(self, *, reason: str, message: str, warning: bool = False) -> None:
        """Record a Kubernetes Event on the ScaledJob; API and network failures are only logged."""
        now = datetime.now(UTC)
        body = {
            "metadata": {
                "name": f"{self.name}.{uuid.uuid4().hex[:16]}",
                "namespace": self.namespace,
            },
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": self.name,
                "namespace": self.namespace,
                "uid": self.uid,
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": COMPONENT,
            "firstTimestamp": _timestamp(now),
            "lastTimestamp": _timestamp(now),
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(self.namespace, body)  # type: ignore[arg-type]
        except (ApiException, HTTPError, OSError) as error:
            log.warning(
                "recording Event %s on ScaledJob %s/%s failed: %s",
                reason,
                self.namespace,
                self.name,
                type(error).__name__,
            )
