"""Watch-backed lookups of the objects credentials come from.

Secrets, ConfigMaps, TriggerAuthentications and ClusterTriggerAuthentications are mirrored by
watch caches, so each poll resolves its triggers' credentials from memory, and a rotated
Secret is used from the next poll on. Secret values stay base64-encoded in the cache and are
decoded only when a trigger asks for them.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client

from jobrunner.kube.cache import WatchCache
from jobrunner.resources.auth import (
    CLUSTER_TRIGGER_AUTHENTICATION,
    TRIGGER_AUTHENTICATION,
    AuthenticationKey,
    AuthenticationSpec,
    parse_trigger_authentication,
)
from jobrunner.resources.scaledjob import GROUP, VERSION

Listener = Callable[[str, Any, Any], None]


def _data_record(raw: dict[str, Any]) -> dict[str, Any]:
    metadata = raw.get("metadata") or {}
    return {
        "namespace": metadata.get("namespace", ""),
        "name": metadata.get("name", ""),
        "data": dict(raw.get("data") or {}),
        "binaryData": dict(raw.get("binaryData") or {}),
    }


def _auth_record(kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Keep what parsing needs; the kind is set here because list items may omit it."""

    def convert(raw: dict[str, Any]) -> dict[str, Any]:
        keep = ("name", "namespace", "uid")
        metadata = raw.get("metadata") or {}
        return {
            "kind": kind,
            "metadata": {k: metadata[k] for k in keep if k in metadata},
            "spec": raw.get("spec") or {},
        }

    return convert


class CredentialSources:
    """The lookups `jobrunner.resources.auth` needs, served from watch caches.

    `namespace` limits the watches to the runner's watch namespace (None watches all), plus
    `cluster_object_namespace`, where ClusterTriggerAuthentications find their Secrets and
    ConfigMaps. `secret_namespace`, when set, is the only namespace whose Secrets are read,
    for runners whose RBAC grants Secrets in their own namespace only.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str | None,
        cluster_object_namespace: str,
        secret_namespace: str | None = None,
    ) -> None:
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        scopes: list[str | None] = [namespace, cluster_object_namespace] if namespace else [None]
        secret_scopes = [secret_namespace] if secret_namespace else scopes
        self._secrets = {
            scope: _data_cache(
                "secrets", scope, core.list_namespaced_secret, core.list_secret_for_all_namespaces
            )
            for scope in dict.fromkeys(secret_scopes)
        }
        self._config_maps = {
            scope: _data_cache(
                "configmaps",
                scope,
                core.list_namespaced_config_map,
                core.list_config_map_for_all_namespaces,
            )
            for scope in dict.fromkeys(scopes)
        }
        self.trigger_authentications: WatchCache[dict[str, Any]] = WatchCache(
            name="triggerauthentications",
            list_call=(
                functools.partial(
                    custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    "triggerauthentications",
                )
                if namespace
                else functools.partial(
                    custom.list_cluster_custom_object, GROUP, VERSION, "triggerauthentications"
                )
            ),
            convert=_auth_record(TRIGGER_AUTHENTICATION),
        )
        self.cluster_trigger_authentications: WatchCache[dict[str, Any]] = WatchCache(
            name="clustertriggerauthentications",
            list_call=functools.partial(
                custom.list_cluster_custom_object, GROUP, VERSION, "clustertriggerauthentications"
            ),
            convert=_auth_record(CLUSTER_TRIGGER_AUTHENTICATION),
        )

    @property
    def caches(self) -> tuple[WatchCache[dict[str, Any]], ...]:
        return (
            *self._secrets.values(),
            *self._config_maps.values(),
            self.trigger_authentications,
            self.cluster_trigger_authentications,
        )

    def add_listener(self, listener: Listener) -> None:
        for cache in self.caches:
            cache.add_listener(listener)

    # --- the lookups of jobrunner.resources.auth ---

    def secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """Return a Secret's decoded data; a Secret outside the watched namespaces reads missing."""
        record = _lookup(self._secrets, namespace, name)
        if record is None:
            return None
        return {key: _decode(value) for key, value in record["data"].items()}

    def config_map(self, namespace: str, name: str) -> Mapping[str, str] | None:
        record = _lookup(self._config_maps, namespace, name)
        return None if record is None else dict(record["data"])

    def authentication(self, key: AuthenticationKey) -> AuthenticationSpec | None:
        """Return the parsed authentication, None when it does not exist.

        Raise InvalidSpecError when it exists but is invalid or uses an unsupported source.
        """
        if key.namespace:
            raw = self.trigger_authentications.get(f"{key.namespace}/{key.name}")
        else:
            raw = self.cluster_trigger_authentications.get(f"/{key.name}")
        return None if raw is None else parse_trigger_authentication(raw)


def _data_cache(
    name: str,
    scope: str | None,
    namespaced: Callable[..., Any],
    everywhere: Callable[..., Any],
) -> WatchCache[dict[str, Any]]:
    list_call = functools.partial(namespaced, scope) if scope else everywhere
    label = f"{name} in {scope}" if scope else name
    return WatchCache(name=label, list_call=list_call, convert=_data_record)


def _lookup(
    caches: Mapping[str | None, WatchCache[dict[str, Any]]], namespace: str, name: str
) -> dict[str, Any] | None:
    cache = caches.get(None) or caches.get(namespace)
    return None if cache is None else cache.get(f"{namespace}/{name}")


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        # A binary Secret value cannot be a text credential; expose nothing of it.
        return ""
