"""The `pulsar` trigger: a subscription's message backlog, read from Pulsar's admin REST API.

Each poll sends one request, `GET <adminURL>/admin/v2/persistent/<topic>/stats`, or
`.../partitioned-stats` for a partitioned topic, for which the broker sums the backlog of
every partition. The value is `subscriptions[<subscription>].msgBacklog`, as in KEDA's
pulsar scaler. With `authModes: oauth`, a token request to the OAuth server comes first
whenever the cached token has expired.

Triggers that name the same admin URL with the same TLS settings share one HTTP client and
its connections. Redirects are followed by hand: credentials go only to the admin URL's own
host, and a redirect from https to http is rejected. Credentials never reach a repr, a log
line or an error message.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from jobrunner.errors import ScalerError
from jobrunner.logconfig import context
from jobrunner.scalers.base import Measurement, Scaler
from jobrunner.scalers.metadata import TriggerInput
from jobrunner.scalers.pulsar_settings import (
    PulsarAuth,
    PulsarSettings,
    parse_pulsar_settings,
    redact_url,
)

log = logging.getLogger(__name__)

AUTH_METHOD_HEADER = "X-Pulsar-Auth-Method-Name"
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


# --- shared HTTP clients --------------------------------------------------------------------


def build_ssl_context(auth: PulsarAuth, *, system_roots: bool = False) -> ssl.SSLContext:
    """Build a TLS 1.2+ client context that trusts `ca`, or the system's CAs without it.

    `system_roots` trusts the system's CAs in addition to `ca`.

    With the tls auth mode, the client certificate and key are written to a private
    temporary directory (mode 0700), loaded and removed at once, because Python's ssl
    module loads them only from files.
    """
    ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if system_roots or not auth.ca:
            ssl_context.load_default_certs()
        if auth.ca:
            ssl_context.load_verify_locations(cadata=auth.ca)
    except (ssl.SSLError, ValueError) as error:
        raise ScalerError(f"cannot load the TLS CA certificates (auth ca): {error}") from None
    if auth.mutual_tls:
        with tempfile.TemporaryDirectory(prefix="jobrunner-pulsar-") as directory:
            cert_path = _write_private(Path(directory) / "cert.pem", auth.cert)
            key_path = _write_private(Path(directory) / "key.pem", auth.key)
            try:
                # A password callable stops OpenSSL from prompting for an encrypted key.
                ssl_context.load_cert_chain(cert_path, key_path, password=lambda: "")
            except (ssl.SSLError, ValueError) as error:
                raise ScalerError(
                    f"cannot load the TLS client certificate (auth cert, key): {error}"
                ) from None
    return ssl_context


def _write_private(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return str(path)


def build_client(settings: PulsarSettings) -> httpx.Client:
    """Build an HTTP client that never follows redirects by itself; see `PulsarScaler`."""
    return httpx.Client(
        verify=build_ssl_context(settings.auth),
        timeout=settings.timeout_seconds,
        follow_redirects=False,
        headers={"Accept": "application/json", "User-Agent": "jobrunner"},
    )


# A random key per process, so the pool keys cannot be reversed to the credentials offline.
_POOL_HASH_KEY = secrets.token_bytes(32)


def pool_key(settings: PulsarSettings) -> str:
    """Key shared clients by admin URL and TLS settings, as a keyed hash of both."""
    auth = settings.auth
    material = [settings.admin_url, auth.ca, auth.mutual_tls, auth.cert, auth.key]
    canonical = json.dumps([*material, settings.timeout_seconds])
    return hashlib.blake2b(canonical.encode(), key=_POOL_HASH_KEY, digest_size=16).hexdigest()


class PulsarClientPool:
    """One HTTP client per admin URL (and TLS settings), shared by every pulsar trigger.

    Headers that carry credentials are set per request, so triggers with different tokens
    share one client. httpx documents `Client` as safe to share between threads.
    """

    def __init__(
        self, *, client_factory: Callable[[PulsarSettings], httpx.Client] = build_client
    ) -> None:
        self._factory = client_factory
        self._lock = threading.Lock()
        self._clients: dict[str, httpx.Client] = {}

    def client(self, settings: PulsarSettings) -> httpx.Client:
        key = pool_key(settings)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._factory(settings)
                self._clients[key] = client
                log.info(
                    "created a shared Pulsar admin HTTP client",
                    extra=context(broker=redact_url(settings.admin_url)),
                )
            return client

    def size(self) -> int:
        with self._lock:
            return len(self._clients)

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()


DEFAULT_POOL = PulsarClientPool()


# --- OAuth ----------------------------------------------------------------------------------


class ClientCredentialsToken:
    """Access tokens from an OAuth 2.0 client-credentials grant (RFC 6749, 4.4).

    A token is reused until 30 seconds before its `expires_in`. A token without
    `expires_in` is reused for the life of the scaler, as Go's oauth2 package does. With no
    clientSecret, a random one is sent, as KEDA does for mutual-TLS OAuth (RFC 8705).

    The token endpoint gets a client of its own: it trusts the system's CAs and `ca`, and
    presents the client certificate of the tls mode.
    NOTE: KEDA requests tokens with a default client instead, without `ca` or the client
    certificate.
    """

    REFRESH_MARGIN_SECONDS = 30.0

    def __init__(
        self,
        auth: PulsarAuth,
        *,
        clock: Callable[[], float] = time.monotonic,
        client_factory: Callable[[PulsarAuth, float], httpx.Client] | None = None,
    ) -> None:
        self._auth = auth
        self._client_factory = client_factory or _build_token_client
        self._secret = auth.client_secret or secrets.token_hex(16)
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at: float | None = None
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return "ClientCredentialsToken(token_uri=<set>, client_id=<set>, secret=<set>)"

    def token(self, *, timeout_seconds: float) -> str:
        with self._lock:
            expired = self._expires_at is not None and self._clock() >= self._expires_at
            if not self._token or expired:
                if self._client is None:
                    self._client = self._client_factory(self._auth, timeout_seconds)
                self._token, lifetime = self._request(self._client)
                self._expires_at = (
                    None
                    if lifetime is None
                    else self._clock() + max(lifetime - self.REFRESH_MARGIN_SECONDS, 0.0)
                )
            return self._token

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _request(self, client: httpx.Client) -> tuple[str, float | None]:
        auth = self._auth
        form: dict[str, str | list[str]] = {"grant_type": "client_credentials"}
        if auth.scopes:
            form["scope"] = " ".join(auth.scopes)
        for key, values in auth.endpoint_params:
            form[key] = list(values)
        # RFC 6749 2.3.1: the id and secret are form-encoded before Basic encoding.
        pair = f"{urllib.parse.quote(auth.client_id)}:{urllib.parse.quote(self._secret)}"
        uri = redact_url(auth.oauth_token_uri)

        try:
            response = client.post(
                auth.oauth_token_uri,
                data=form,
                headers={"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()},
            )
        except httpx.HTTPError as error:
            raise ScalerError(
                f"the OAuth token request to {uri} failed: {type(error).__name__}"
            ) from None
        if response.status_code != 200:
            raise ScalerError(
                f"the OAuth token request to {uri} failed with HTTP {response.status_code}"
            )

        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise ScalerError(f"the OAuth token response from {uri} is not a JSON object")
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise ScalerError(f"the OAuth token response from {uri} has no access_token")
        lifetime = payload.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
            return token, None
        return token, float(lifetime)


def _build_token_client(auth: PulsarAuth, timeout_seconds: float) -> httpx.Client:
    return httpx.Client(
        verify=build_ssl_context(auth, system_roots=True),
        timeout=timeout_seconds,
        follow_redirects=False,
    )


# --- the scaler -----------------------------------------------------------------------------


def same_host(url: httpx.URL, host: str) -> bool:
    """Compare host names case-insensitively and ignore the port, as KEDA does."""
    return url.host.lower() == host.lower()


class PulsarScaler(Scaler):
    trigger_type = "pulsar"

    def __init__(self, settings: PulsarSettings, *, pool: PulsarClientPool = DEFAULT_POOL) -> None:
        self.settings = settings
        self.pool = pool
        self._oauth = (
            ClientCredentialsToken(settings.auth) if settings.auth.enabled("oauth") else None
        )

    @classmethod
    def parse_settings(cls, source: TriggerInput) -> PulsarSettings:
        return parse_pulsar_settings(source)

    @classmethod
    def from_settings(cls, settings: Any) -> PulsarScaler:
        return cls(settings)

    def describe_source(self) -> str:
        return f"Pulsar {redact_url(self.settings.admin_url)} topic {self.settings.topic}"

    def measure(self) -> Measurement:
        settings = self.settings
        backlog = self.read_backlog()
        log.debug(
            "subscription %s of topic %s: backlog %d",
            settings.subscription,
            settings.topic,
            backlog,
        )
        return Measurement(
            # KEDA reports a negative metric as 0.
            queue_length=float(max(backlog, 0)),
            target=float(settings.msg_backlog_threshold),
            active=backlog > settings.activation_msg_backlog_threshold,
            activation_value=float(backlog),
            details={"msgBacklog": backlog, "partitioned": settings.is_partitioned_topic},
        )

    def read_backlog(self) -> int:
        """Return the subscription's msgBacklog; raise ScalerError when it cannot be read."""
        stats = self._stats()
        subscriptions = stats.get("subscriptions")
        entry = (
            subscriptions.get(self.settings.subscription)
            if isinstance(subscriptions, dict)
            else None
        )
        if not isinstance(entry, dict):
            raise ScalerError(
                f"subscription {self.settings.subscription} not found on topic "
                f"{self.settings.topic} at {self._where()}; a consumer creates it when it "
                "subscribes"
            )
        # A missing msgBacklog counts as 0, as in KEDA's JSON decoding.
        backlog = entry.get("msgBacklog", 0)
        if isinstance(backlog, bool) or not isinstance(backlog, int):
            raise ScalerError(
                f"the stats of topic {self.settings.topic} from {self._where()} have an invalid "
                f"msgBacklog for subscription {self.settings.subscription}"
            )
        return backlog

    def close(self) -> None:
        # The shared admin client stays open for the other triggers.
        if self._oauth is not None:
            self._oauth.close()

    def _where(self) -> str:
        return f"the Pulsar admin API at {redact_url(self.settings.admin_url)}"

    def _stats(self) -> dict[str, Any]:
        response = self._get_following_redirects(httpx.URL(self.settings.stats_url))
        status = response.status_code
        if status == 200:
            try:
                stats = response.json()
            except ValueError:
                stats = None
            if not isinstance(stats, dict):
                raise ScalerError(
                    f"the stats of topic {self.settings.topic} from {self._where()} are not "
                    "a JSON object"
                )
            return stats
        raise self._status_error(response)

    def _get_following_redirects(self, url: httpx.URL) -> httpx.Response:
        client = self.pool.client(self.settings)
        admin_host = httpx.URL(self.settings.admin_url).host
        for _ in range(MAX_REDIRECTS + 1):
            # Credentials go only to the admin URL's own host, whatever the port.
            headers = self._auth_headers() if same_host(url, admin_host) else {}
            response = self._send(client, url, headers)
            if response.status_code not in REDIRECT_STATUSES or "location" not in response.headers:
                return response
            target = url.join(response.headers["location"])
            if url.scheme == "https" and target.scheme != "https":
                raise ScalerError(
                    f"{self._where()} redirected the stats request of topic "
                    f"{self.settings.topic} from https to {target.scheme}; the redirect is "
                    "rejected so that neither credentials nor stats travel unencrypted"
                )
            if target.scheme not in ("http", "https"):
                raise ScalerError(
                    f"{self._where()} redirected the stats request of topic "
                    f"{self.settings.topic} to a {target.scheme} URL"
                )
            log.debug(
                "following a %d redirect to %s", response.status_code, redact_url(str(target))
            )
            url = target
        raise ScalerError(
            f"{self._where()} redirected the stats request of topic {self.settings.topic} "
            f"more than {MAX_REDIRECTS} times"
        )

    def _send(
        self, client: httpx.Client, url: httpx.URL, headers: dict[str, str]
    ) -> httpx.Response:
        where = self._where()
        topic = self.settings.topic
        try:
            response = client.get(url, headers=headers)
        except httpx.TimeoutException:
            raise ScalerError(
                f"{where} did not respond to the stats request of topic {topic} within "
                f"{self.settings.timeout_seconds:g}s"
            ) from None
        except httpx.ConnectError as error:
            reason = self._scrub(error)
            if "SSL" in reason or "certificate" in reason:
                raise ScalerError(
                    f"the TLS handshake with {where} failed while reading topic {topic}: "
                    f"{reason}; check the trigger's ca, cert and key"
                ) from None
            raise ScalerError(
                f"cannot connect to {where} to read topic {topic}: {reason}; "
                "check that the broker runs and that adminURL is right"
            ) from None
        except httpx.HTTPError as error:
            raise ScalerError(
                f"the stats request of topic {topic} to {where} failed: {self._scrub(error)}"
            ) from None
        return response

    def _auth_headers(self) -> dict[str, str]:
        """Return the headers KEDA sends for the auth modes; bearer wins over basic over tls."""
        auth = self.settings.auth
        headers: dict[str, str] = {}
        if auth.enabled("bearer"):
            headers["Authorization"] = f"Bearer {auth.bearer_token}"
            headers[AUTH_METHOD_HEADER] = "token"
        elif auth.enabled("basic"):
            pair = f"{auth.username}:{auth.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
            headers[AUTH_METHOD_HEADER] = "basic"
        elif auth.mutual_tls:
            headers[AUTH_METHOD_HEADER] = "tls"
        if self._oauth is not None:
            token = self._oauth.token(timeout_seconds=self.settings.timeout_seconds)
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _status_error(self, response: httpx.Response) -> ScalerError:
        """Build the error for a stats response other than 200."""
        status = response.status_code
        if status in (401, 403):
            return self._access_error(status)
        reason = _broker_reason(response)
        if status == 404:
            return self._not_found_error(reason)
        detail = f": {reason}" if reason else ""
        return ScalerError(
            f"{self._where()} returned HTTP {status} for the stats request of topic "
            f"{self.settings.topic}{detail}"
        )

    def _access_error(self, status: int) -> ScalerError:
        where, topic = self._where(), self.settings.topic
        if status == 403:
            return ScalerError(
                f"{where} denied access to the stats of topic {topic} (HTTP 403 Forbidden); "
                "grant the role of the trigger's credentials the consume permission"
            )
        if not self.settings.auth.modes:
            return ScalerError(
                f"{where} requires authentication to read topic {topic} (HTTP 401 "
                "Unauthorized), and the trigger sends no credentials; set authModes and "
                "the trigger's authentication"
            )
        return ScalerError(
            f"{where} rejected the credentials for topic {topic} (HTTP 401 Unauthorized); "
            "check authModes and the token or password of the trigger's authentication"
        )

    def _not_found_error(self, reason: str) -> ScalerError:
        where, topic = self._where(), self.settings.topic
        if "namespace" in reason.lower():
            namespace = "/".join(topic.replace("persistent://", "").split("/")[:2])
            return ScalerError(
                f"namespace {namespace} of topic {topic} not found at {where} (HTTP 404)"
            )
        if self.settings.is_partitioned_topic:
            return ScalerError(
                f"partitioned topic {topic} not found at {where} (HTTP 404); create it, or set "
                "isPartitionedTopic to false if it is not partitioned"
            )
        return ScalerError(
            f"topic {topic} not found at {where} (HTTP 404); create it, or set "
            "isPartitionedTopic to true if it is a partitioned topic"
        )

    def _scrub(self, error: Exception) -> str:
        """Return the error's message with every credential value replaced by `<hidden>`."""
        text = str(error) or type(error).__name__
        url_password = urllib.parse.urlsplit(self.settings.admin_url).password
        secrets_found = [*self.settings.auth.credential_values(), url_password or ""]
        for secret in filter(None, secrets_found):
            text = text.replace(secret, "<hidden>")
        return text


def _broker_reason(response: httpx.Response) -> str:
    """Return the `reason` of a Pulsar error body, cut to 200 characters, or ''."""
    try:
        body = response.json()
    except ValueError:
        return ""
    reason = body.get("reason") if isinstance(body, Mapping) else None
    return str(reason)[:200] if reason else ""
