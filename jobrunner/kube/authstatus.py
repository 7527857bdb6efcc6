"""The status of TriggerAuthentications: which ScaledJobs refer to them.

Like KEDA, the runner writes `status.scaledjobs`, a comma-separated list of the ScaledJobs
that use each TriggerAuthentication or ClusterTriggerAuthentication, so `kubectl get ta`
shows who depends on a credential before it is changed or deleted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from jobrunner.resources.auth import CLUSTER_TRIGGER_AUTHENTICATION, AuthenticationKey
from jobrunner.resources.scaledjob import GROUP, VERSION

log = logging.getLogger(__name__)


class AuthenticationUsers:
    """Tracks the ScaledJobs using each authentication and writes the changed statuses."""

    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self._lock = threading.Lock()
        self._uses: dict[str, tuple[str, frozenset[AuthenticationKey]]] = {}

    def set(self, uid: str, name: str, keys: Iterable[AuthenticationKey]) -> None:
        """Record that ScaledJob `name` (uid `uid`) refers to `keys`, replacing its old ones."""
        with self._lock:
            _, old = self._uses.get(uid, ("", frozenset()))
            new = frozenset(keys)
            self._uses[uid] = (name, new)
            changed = old ^ new
        self._write(changed)

    def remove(self, uid: str) -> None:
        with self._lock:
            _, old = self._uses.pop(uid, ("", frozenset()))
        self._write(old)

    def _users(self, key: AuthenticationKey) -> str:
        with self._lock:
            names = sorted(name for name, keys in self._uses.values() if key in keys)
        return ",".join(names)

    def _write(self, keys: Iterable[AuthenticationKey]) -> None:
        for key in keys:
            body = {"status": {"scaledjobs": self._users(key)}}
            try:
                if key.kind == CLUSTER_TRIGGER_AUTHENTICATION:
                    self.custom.patch_cluster_custom_object_status(
                        GROUP, VERSION, "clustertriggerauthentications", key.name, body
                    )
                else:
                    self.custom.patch_namespaced_custom_object_status(
                        GROUP, VERSION, key.namespace, "triggerauthentications", key.name, body
                    )
            except ApiException as error:
                # A missing authentication has no status to write; its users report it.
                if error.status != 404:
                    log.warning("writing the status of %s failed: HTTP %s", key, error.status)
            except (HTTPError, OSError) as error:
                log.warning("writing the status of %s failed: %s", key, type(error).__name__)
