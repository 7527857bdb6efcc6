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
import re
import secrets
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import httpx

from jobrunner.errors import ScalerError
from jobrunner.logconfig import context
from jobrunner.scalers.base import Measurement, Scaler
from jobrunner.scalers.metadata import MetadataReader, TriggerInput

log = logging.getLogger(__name__)

AUTH_MODES = ("apiKey", "basic", "tls", "bearer", "custom", "oauth")
# KEDA allows at most one of these, since each sets the Authorization header.
EXCLUSIVE_AUTH_MODES = ("bearer", "basic", "oauth")
AUTH_METHOD_HEADER = "X-Pulsar-Auth-Method-Name"
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_METRIC_NAME_UNSAFE = re.compile(r"[/.:%()]")


# --- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulsarAuth:
    """The auth modes and credentials that the scaler presents to the admin API.

    `modes` is the parsed `authModes` list. `repr` shows the modes and which credentials are
    set, never their values.
    """

    modes: tuple[str, ...] = ()
    bearer_token: str = ""
    username: str = ""
    password: str = ""
    cert: str = ""
    key: str = ""
    ca: str = ""
    oauth_token_uri: str = ""
    client_id: str = ""
    client_secret: str = ""
    scopes: tuple[str, ...] = ()
    endpoint_params: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __repr__(self) -> str:
        described = [f"modes={self.modes!r}"]
        for item in fields(self):
            if item.name != "modes":
                state = "<set>" if getattr(self, item.name) else "<unset>"
                described.append(f"{item.name}={state}")
        return f"PulsarAuth({', '.join(described)})"

    def enabled(self, mode: str) -> bool:
        return mode in self.modes

    @property
    def mutual_tls(self) -> bool:
        return self.enabled("tls")

    def credential_values(self) -> list[str]:
        """List the credential values, for scrubbing them out of third-party messages."""
        values = [self.bearer_token, self.username, self.password, self.key, self.client_secret]
        values += [value for _, items in self.endpoint_params for value in items]
        return [value for value in values if value]


@dataclass(frozen=True)
class PulsarSettings:
    """One pulsar trigger's parameters; names and defaults follow KEDA's pulsar metadata.

    A threshold of 0 or below is accepted, as KEDA accepts it, and then no Job is ever
    created, because the queue length divided by the threshold is never positive.
    """

    admin_url: str
    topic: str
    subscription: str
    msg_backlog_threshold: int = 10
    activation_msg_backlog_threshold: int = 0
    is_partitioned_topic: bool = False
    auth: PulsarAuth = field(default_factory=PulsarAuth)
    # Connect and read timeout of each admin request; not a KEDA parameter.
    timeout_seconds: float = 5.0

    def __repr__(self) -> str:
        return (
            f"PulsarSettings(admin_url={redact_url(self.admin_url)!r}, topic={self.topic!r}, "
            f"subscription={self.subscription!r}, "
            f"msg_backlog_threshold={self.msg_backlog_threshold}, "
            f"activation_msg_backlog_threshold={self.activation_msg_backlog_threshold}, "
            f"is_partitioned_topic={self.is_partitioned_topic}, auth={self.auth!r}, "
            f"timeout_seconds={self.timeout_seconds})"
        )

    @property
    def stats_url(self) -> str:
        """The stats URL; like KEDA, strip the `persistent://` prefix with a plain replace."""
        path = self.topic.replace("persistent://", "")
        endpoint = "partitioned-stats" if self.is_partitioned_topic else "stats"
        return f"{self.admin_url}/admin/v2/persistent/{path}/{endpoint}"

    def metric_name(self, trigger_index: int) -> str:
        """Return KEDA's metric name, such as `s0-pulsar-persistent---public-default-t-sub`."""
        name = f"pulsar-{self.topic}-{self.subscription}"
        return f"s{trigger_index}-{_METRIC_NAME_UNSAFE.sub('-', name)}"


def redact_url(url: str) -> str:
    """Return `url` without a user name or password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def parse_pulsar_settings(source: TriggerInput) -> PulsarSettings:
    """Parse a pulsar trigger; raise InvalidSpecError listing every invalid parameter."""
    source = _apply_compatibility_steps(source)
    reader = MetadataReader(source)
    admin_url = _parse_admin_url(reader)
    topic = _parse_topic(reader)
    settings = PulsarSettings(
        admin_url=admin_url,
        topic=topic,
        subscription=reader.string("subscription", sources="ME", required=True),
        msg_backlog_threshold=_int64(reader, "msgBacklogThreshold", default=10),
        activation_msg_backlog_threshold=_int64(reader, "activationMsgBacklogThreshold", default=0),
        is_partitioned_topic=reader.boolean("isPartitionedTopic"),
        auth=_parse_auth(reader),
    )
    reader.check()
    return settings


def _apply_compatibility_steps(source: TriggerInput) -> TriggerInput:
    """Rewrite the input as KEDA does before it parses a pulsar trigger.

    A legacy `tls: enable` with a client certificate or key in the authentication adds `tls`
    to the metadata's authModes. The metadata keys oauthTokenURI, scope, clientID and
    EndpointParams fill the authentication parameters that are empty, so the
    authentication wins where both are set. Both checks compare raw values, untrimmed.
    """
    metadata = dict(source.metadata)
    auth_params = dict(source.auth_params)
    if metadata.get("tls") == "enable" and (auth_params.get("cert") or auth_params.get("key")):
        modes = metadata.get("authModes")
        metadata["authModes"] = f"{modes},tls" if modes is not None else "tls"
    for metadata_key, auth_key in (
        ("oauthTokenURI", "oauthTokenURI"),
        ("scope", "scope"),
        ("clientID", "clientID"),
        ("EndpointParams", "endpointParams"),
    ):
        if not auth_params.get(auth_key) and metadata.get(metadata_key):
            auth_params[auth_key] = metadata[metadata_key]
    return replace(source, metadata=metadata, auth_params=auth_params)


def _parse_admin_url(reader: MetadataReader) -> str:
    """Read adminURL; unlike KEDA, reject at once a URL that could never be requested."""
    found = reader.raw("adminURL", "ME")
    if found is None:
        reader.string("adminURL", sources="ME", required=True)
        return ""
    text, letter = found
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        reader.problem("adminURL", "must be an http or https URL", where=letter)
        return ""
    # KEDA appends the API path to the URL as given, so a trailing slash gives `//admin`,
    # which Pulsar's web server rejects.
    return text.rstrip("/")


def _parse_topic(reader: MetadataReader) -> str:
    """Read topic; reject names that can never match a persistent topic's stats path.

    KEDA accepts these and then fails on every poll: a `non-persistent://` topic, another
    scheme, or a name that is not tenant/namespace/topic.
    """
    found = reader.raw("topic", "ME")
    if found is None:
        reader.string("topic", sources="ME", required=True)
        return ""
    text, letter = found
    scheme, separator, rest = text.partition("://")
    if separator and scheme != "persistent":
        reader.problem(
            "topic",
            "must be a persistent topic; the admin API has no backlog stats for "
            f"{scheme}:// topics under this path",
            where=letter,
        )
        return ""
    path = rest if separator else text
    if len(path.split("/")) != 3 or not all(path.split("/")):
        reader.problem(
            "topic",
            "must name tenant/namespace/topic, such as persistent://public/default/orders",
            where=letter,
        )
        return ""
    return text


def _int64(reader: MetadataReader, name: str, *, default: int) -> int:
    value = reader.integer(name, default=default)
    if not _INT64_MIN <= value <= _INT64_MAX:
        reader.problem(name, "must fit in a 64-bit signed integer")
        return default
    return value


def _raw_alias(
    reader: MetadataReader, names: tuple[str, ...], sources: str
) -> tuple[str, str, str] | None:
    """Return (value, name, source letter) of the first non-blank value, or None.

    As in KEDA, the sources come first: every alias is tried in one source before the next.
    """
    for letter in sources:
        for name in names:
            found = reader.raw(name, letter)
            if found is not None:
                return found[0], name, letter
    return None


def _parse_auth(reader: MetadataReader) -> PulsarAuth:
    """Parse authModes and the credentials; credentials come only from authentication."""
    modes = _parse_modes(reader)
    token = _raw_alias(reader, ("bearerToken", "token"), "A")
    scopes = _raw_alias(reader, ("scopes", "scope"), "A")
    scopes_text = scopes[0] if scopes else ""
    auth = PulsarAuth(
        modes=modes,
        bearer_token=token[0] if token else "",
        username=reader.string("username", sources="A"),
        password=reader.string("password", sources="A"),
        cert=reader.string("cert", sources="A"),
        key=reader.string("key", sources="A"),
        ca=reader.string("ca", sources="A"),
        oauth_token_uri=reader.string("oauthTokenURI", sources="A"),
        client_id=reader.string("clientID", sources="A"),
        client_secret=reader.string("clientSecret", sources="A"),
        # Trimmed, and empty entries dropped, as KEDA cleans its parsed scopes.
        scopes=tuple(scope.strip() for scope in scopes_text.split(",") if scope.strip()),
        endpoint_params=_parse_endpoint_params(reader),
    )
    _check_auth(reader, auth)
    return auth


def _parse_modes(reader: MetadataReader) -> tuple[str, ...]:
    found = _raw_alias(reader, ("authModes", "authMode"), "MA")
    if found is None:
        return ()
    text, name, letter = found
    # Like KEDA, every item is trimmed and must be a known mode, so `bearer,` is invalid.
    modes = tuple(item.strip() for item in text.split(","))
    if any(mode not in AUTH_MODES for mode in modes):
        reader.problem(name, f"must list modes out of {', '.join(AUTH_MODES)}", where=letter)
        return ()
    if sum(mode in EXCLUSIVE_AUTH_MODES for mode in modes) > 1:
        reader.problem(
            name, f"may contain only one of {', '.join(EXCLUSIVE_AUTH_MODES)}", where=letter
        )
        return ()
    # NOTE: apiKey and custom are valid modes, as in KEDA, but the pulsar trigger sends
    # nothing for them, exactly as KEDA's pulsar scaler does.
    return modes


def _check_auth(reader: MetadataReader, auth: PulsarAuth) -> None:
    if auth.enabled("bearer") and not auth.bearer_token:
        reader.problem("bearerToken", "required when authModes includes bearer", where="A")
    if auth.enabled("basic") and not auth.username:
        reader.problem("username", "required when authModes includes basic", where="A")
    _check_tls(reader, auth)
    if auth.enabled("oauth"):
        if not auth.oauth_token_uri:
            reader.problem("oauthTokenURI", "required when authModes includes oauth", where="A")
        elif urllib.parse.urlsplit(auth.oauth_token_uri).scheme not in ("http", "https"):
            reader.problem("oauthTokenURI", "must be an http or https URL", where="A")
        if not auth.client_id:
            reader.problem("clientID", "required when authModes includes oauth", where="A")


def _check_tls(reader: MetadataReader, auth: PulsarAuth) -> None:
    """Check the client certificate of the tls mode, and `ca`, which applies without it too."""
    if auth.mutual_tls:
        for name in ("cert", "key"):
            if not getattr(auth, name):
                reader.problem(name, "required when authModes includes tls", where="A")
        if auth.cert and "-----BEGIN CERTIFICATE-----" not in auth.cert:
            reader.problem("cert", "must be a PEM certificate", where="A")
        if auth.key and not re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", auth.key):
            reader.problem("key", "must be a PEM private key", where="A")
    if auth.ca:
        try:
            ssl.create_default_context(cadata=auth.ca)
        except (ssl.SSLError, ValueError):
            reader.problem("ca", "must be one or more PEM certificates", where="A")


def _parse_endpoint_params(reader: MetadataReader) -> tuple[tuple[str, tuple[str, ...]], ...]:
    text = reader.string("endpointParams", sources="A")
    if not text:
        return ()
    try:
        return parse_go_query(text)
    except ValueError:
        reader.problem(
            "endpointParams", "must be a URL query string such as audience=a&resource=b", where="A"
        )
        return ()


def parse_go_query(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Parse a query string as Go's `url.ParseQuery` does; raise ValueError where it fails.

    Pairs split on `&`, and a pair containing `;` is invalid. `+` means a space, and a `%`
    that does not start a two-digit hex escape is invalid. Keys keep their first order.
    """
    values: dict[str, list[str]] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        if ";" in pair:
            raise ValueError("invalid semicolon separator in query")
        key, _, value = pair.partition("=")
        values.setdefault(_go_unescape(key), []).append(_go_unescape(value))
    return tuple((key, tuple(items)) for key, items in values.items())


_GO_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _go_unescape(text: str) -> str:
    if _GO_ESCAPE.search(text):
        raise ValueError("invalid URL escape")
    return urllib.parse.unquote_plus(text, errors="strict")


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
        settings = self.settings
        where, topic, status = self._where(), settings.topic, response.status_code
        if status == 401 and not settings.auth.modes:
            return ScalerError(
                f"{where} requires authentication to read topic {topic} (HTTP 401 "
                "Unauthorized), and the trigger sends no credentials; set authModes and "
                "the trigger's authentication"
            )
        if status == 401:
            return ScalerError(
                f"{where} rejected the credentials for topic {topic} (HTTP 401 Unauthorized); "
                "check authModes and the token or password of the trigger's authentication"
            )
        if status == 403:
            return ScalerError(
                f"{where} denied access to the stats of topic {topic} (HTTP 403 Forbidden); "
                "grant the role of the trigger's credentials the consume permission"
            )
        reason = _broker_reason(response)
        if status == 404 and "namespace" in reason.lower():
            namespace = "/".join(topic.replace("persistent://", "").split("/")[:2])
            return ScalerError(
                f"namespace {namespace} of topic {topic} not found at {where} (HTTP 404)"
            )
        if status == 404:
            hint = (
                "if it is not partitioned, set isPartitionedTopic to false"
                if settings.is_partitioned_topic
                else "if it is a partitioned topic, set isPartitionedTopic to true"
            )
            return ScalerError(f"topic {topic} not found at {where} (HTTP 404); {hint}")
        detail = f": {reason}" if reason else ""
        return ScalerError(
            f"{where} returned HTTP {status} for the stats request of topic {topic}{detail}"
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
