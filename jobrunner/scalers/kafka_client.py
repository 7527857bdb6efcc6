"""Kafka admin clients for the `kafka` trigger: configuration, errors, and the shared pool.

Admin clients are shared by every trigger that names the same bootstrap servers and
credentials, and credentials never reach a repr, a log line or an error message.
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
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from kafka.admin import KafkaAdminClient
from kafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)
from kafka.net.compat import KafkaNetClient
from kafka.net.manager import KafkaConnectionManager
from kafka.net.sasl.oauth import AbstractTokenProvider
from kafka.net.selector import NetworkSelector

from jobrunner.errors import ScalerError
from jobrunner.logconfig import context
from jobrunner.scalers.kafka_settings import (
    PASSWORD_MODES,
    SASL_MECHANISMS,
    KafkaAuth,
    KafkaSettings,
)

log = logging.getLogger(__name__)


T = TypeVar("T")

NO_OFFSET = -1
UNKNOWN_TOPIC_OR_PARTITION = 3
COORDINATOR_RETRIES = 3
COORDINATOR_RETRY_SECONDS = 0.5
# The broker rejected the SASL handshake or the credentials. Retrying the same credentials
# cannot succeed, so the client stops at the first one (see _FailFastConnectionManager).
AUTHENTICATION_ERRORS = (
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)
# Errors after which a shared admin client is closed and built again on the next call.
# Authentication errors are among them because the client caches them per broker and would
# raise them on every later call, even after the broker's credentials change.
CONNECTION_ERRORS = (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    *AUTHENTICATION_ERRORS,
)
# OpenSSL reasons with which a broker rejects the client certificate or its absence.
_CLIENT_CERTIFICATE_REJECTED = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_UNKNOWN_CA",
    "ALERT_CERTIFICATE_UNKNOWN",
)


# --- client configuration -------------------------------------------------------------------


def admin_client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Build the KafkaAdminClient keyword arguments, which include the credentials.

    Never log the result. Raise ScalerError when the TLS material cannot be loaded.
    """
    auth = settings.auth
    timeout_ms = int(settings.timeout_seconds * 1000)
    config: dict[str, Any] = {
        "bootstrap_servers": list(settings.bootstrap_servers),
        "client_id": "jobrunner",
        "bootstrap_timeout_ms": timeout_ms,
        "request_timeout_ms": timeout_ms,
        "security_protocol": security_protocol(auth),
    }
    if auth.tls:
        config["ssl_context"] = build_ssl_context(auth)
    if auth.sasl in SASL_MECHANISMS:
        config["sasl_mechanism"] = SASL_MECHANISMS[auth.sasl]
    if auth.sasl in PASSWORD_MODES:
        config["sasl_plain_username"] = auth.username
        config["sasl_plain_password"] = auth.password
    if auth.sasl == "oauthbearer":
        config["sasl_oauth_token_provider"] = ClientCredentialsTokenProvider(
            endpoint=auth.oauth_token_endpoint_uri,
            client_id=auth.username,
            client_secret=auth.password,
            scopes=auth.scopes,
            extensions=dict(auth.oauth_extensions),
            timeout_seconds=settings.timeout_seconds,
        )
    return config


def security_protocol(auth: KafkaAuth) -> str:
    if auth.sasl in SASL_MECHANISMS:
        return "SASL_SSL" if auth.tls else "SASL_PLAINTEXT"
    return "SSL" if auth.tls else "PLAINTEXT"


def build_ssl_context(auth: KafkaAuth) -> ssl.SSLContext:
    """Build a TLS 1.2+ client context from the PEM strings of `ca`, `cert` and `key`.

    The CA loads from memory. Python's ssl module loads a client certificate only from
    files, so cert and key are written to a private temporary directory (mode 0700) and
    removed as soon as they are loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if auth.ca:
            context.load_verify_locations(cadata=auth.ca)
        else:
            context.load_default_certs()
    except (ssl.SSLError, ValueError) as error:
        raise ScalerError(f"cannot load the TLS CA certificates (auth ca): {error}") from None
    if auth.cert:
        _load_client_certificate(context, auth)
    if auth.unsafe_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _load_client_certificate(context: ssl.SSLContext, auth: KafkaAuth) -> None:
    # A callable password stops OpenSSL from prompting on the terminal for an encrypted key
    # when no keyPassword is given: the load fails instead.
    password = auth.key_password
    with tempfile.TemporaryDirectory(prefix="jobrunner-kafka-") as directory:
        cert_path = _write_private(Path(directory) / "cert.pem", auth.cert)
        key_path = _write_private(Path(directory) / "key.pem", auth.key)
        try:
            context.load_cert_chain(cert_path, key_path, password=lambda: password)
        except (ssl.SSLError, ValueError) as error:
            # The ssl error names the OpenSSL reason, never the key or its password.
            raise ScalerError(
                f"cannot load the TLS client certificate (auth cert, key, keyPassword): {error}"
            ) from None


def _write_private(path: Path, text: str) -> str:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return str(path)


class _RejectRedirects(urllib.request.HTTPRedirectHandler):
    """Turns a redirect into an HTTPError, so the client secret never follows it elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_TOKEN_OPENER = urllib.request.build_opener(_RejectRedirects)


class ClientCredentialsTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """OAUTHBEARER tokens from an OAuth 2.0 client-credentials grant (RFC 6749, 4.4).

    As in KEDA, `username` and `password` are the client id and secret. A token is reused
    until 30 seconds before its `expires_in`. A token without `expires_in` is reused for
    the life of the client, as Go's oauth2 package does. Redirects are not followed.
    """

    REFRESH_MARGIN_SECONDS = 30.0

    def __init__(
        self,
        *,
        endpoint: str,
        client_id: str,
        client_secret: str,
        scopes: Iterable[str],
        extensions: Mapping[str, str],
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._endpoint = endpoint
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = " ".join(scope for scope in scopes if scope)
        self._extensions = dict(extensions)
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires_at: float | None = None

    def __repr__(self) -> str:
        return "ClientCredentialsTokenProvider(endpoint=<set>, client_id=<set>, secret=<set>)"

    def token(self) -> str:
        with self._lock:
            if not self._token or (
                self._expires_at is not None and self._clock() >= self._expires_at
            ):
                self._token, lifetime = self._request_token()
                self._expires_at = (
                    None
                    if lifetime is None
                    else self._clock() + max(lifetime - self.REFRESH_MARGIN_SECONDS, 0.0)
                )
            return self._token

    def extensions(self) -> dict[str, str]:
        return dict(self._extensions)

    def _request_token(self) -> tuple[str, float | None]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        # RFC 6749 2.3.1: the id and secret are form-encoded before Basic encoding.
        pair = f"{urllib.parse.quote(self._client_id)}:{urllib.parse.quote(self._client_secret)}"
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s)
            self._endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            method="POST",
        )
        try:
            with _TOKEN_OPENER.open(request, timeout=self._timeout_seconds) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as error:
            raise KafkaError(f"OAuth token request failed with HTTP {error.code}") from None
        except (OSError, ValueError) as error:
            raise KafkaError(f"OAuth token request failed: {type(error).__name__}") from None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise KafkaError("OAuth token response has no access_token")
        try:
            lifetime = float(payload["expires_in"])
        except (KeyError, TypeError, ValueError):
            return token, None
        return token, lifetime


class _HideClientCredentials(logging.Filter):
    """Masks credentials in the configuration that kafka-python logs.

    kafka-python 3.0.12 logs every KafkaAdminClient keyword argument, the SASL password
    included, at DEBUG on the `kafka.admin.client` logger.
    """

    HIDDEN = frozenset({"sasl_plain_username", "sasl_plain_password", "ssl_password"})

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = self._mask(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(
                self._mask(arg) if isinstance(arg, Mapping) else arg for arg in record.args
            )
        return True

    def _mask(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {key: "<hidden>" if key in self.HIDDEN else value for key, value in config.items()}


logging.getLogger("kafka.admin.client").addFilter(_HideClientCredentials())


def scrub(text: str, auth: KafkaAuth) -> str:
    """Replace every credential value in a third-party message with `<hidden>`."""
    for secret in auth.credential_values():
        text = text.replace(secret, "<hidden>")
    return text


def is_tls_failure(error: object) -> bool:
    """Check whether a connection failed in TLS, where retrying the same settings cannot help.

    kafka-python 3.0.12 wraps ssl errors in KafkaConnectionError and keeps only their text,
    which CPython's ssl module formats as `[SSL: REASON] description`.
    """
    return isinstance(error, KafkaConnectionError) and "[SSL: " in str(error)


def describe_kafka_error(error: Exception, auth: KafkaAuth) -> str:
    """Describe why a Kafka call failed, with the likely fix for SASL and TLS rejections.

    Credentials are scrubbed out of the client's and the broker's text.
    """
    text = scrub(str(error), auth)
    if isinstance(error, AUTHENTICATION_ERRORS):
        mechanism = SASL_MECHANISMS.get(auth.sasl, auth.sasl)
        # kafka-python prefixes the broker's message with the error's class name.
        message = scrub(str(error.args[0]) if error.args else "", auth)
        message = message.removeprefix(f"{type(error).__name__}: ") or type(error).__name__
        return (
            f"SASL {mechanism} authentication failed: {message}; check the username and "
            "password of the trigger's authentication"
        )
    if is_tls_failure(error):
        reason = text[text.index("[SSL: ") :]
        if any(alert in reason for alert in _CLIENT_CERTIFICATE_REJECTED):
            hint = "the broker rejected the client certificate; check the trigger's cert and key"
        elif "CERTIFICATE_VERIFY_FAILED" in reason:
            hint = "the broker's certificate is not trusted; check the trigger's ca"
        else:
            hint = "check the trigger's tls, ca, cert and key"
        return f"TLS handshake failed: {reason}; {hint}"
    return text


# A random key per process, so the pool keys cannot be reversed to the credentials offline.
_CREDENTIALS_HASH_KEY = secrets.token_bytes(32)


def credentials_digest(auth: KafkaAuth) -> str:
    """Return a keyed hash of everything in `auth`, to key shared clients without secrets."""
    canonical = json.dumps([getattr(auth, item.name) for item in fields(auth)])
    digest = hashlib.blake2b(canonical.encode(), key=_CREDENTIALS_HASH_KEY, digest_size=16)
    return digest.hexdigest()


# --- shared admin clients -------------------------------------------------------------------


class _FailFastConnectionManager(KafkaConnectionManager):  # type: ignore[misc]
    """A connection manager that stops retrying a broker once it rejects the client.

    Works around two gaps of kafka-python 3.0.12 that turn a wrong password or an untrusted
    certificate into a bootstrap timeout ("Unable to bootstrap") without the reason:

    - The manager keeps the last authentication failure per broker and raises it from
      `get_connection`, but `_connect` records only failures that
      `KafkaConnection.initialize` raises, and `initialize` reports them through
      `init_future` instead. This class records SASL and TLS rejections from
      `init_future` in that cache, `_auth_failures`, after `_connect` is done.
    - A broker sends its SASL error response and closes the connection at once, and when
      both arrive in one read, the transport drops the response and reports only
      "socket disconnected". The transports built here deliver the bytes first and report
      the error on the next read of the closed socket.
    """

    async def _build_transport(self, node: Any, timeout_at: float | None = None) -> Any:
        transport = await super()._build_transport(node, timeout_at=timeout_at)
        receive = transport._sock_recv

        def receive_then_fail() -> tuple[bytes, Any]:
            data, error = receive()
            return (data, None) if data else (data, error)

        transport._sock_recv = receive_then_fail
        return transport

    async def _connect(self, node: Any, conn: Any, **options: Any) -> None:
        await super()._connect(node, conn, **options)
        error = conn.init_future.exception if conn.init_future.failed() else None
        if isinstance(error, AUTHENTICATION_ERRORS) or is_tls_failure(error):
            self._auth_failures[node.node_id] = error


class _NetClient(KafkaNetClient):  # type: ignore[misc]
    """kafka-python's network client with the fail-fast connection manager."""

    def __init__(self, **config: Any) -> None:
        net = NetworkSelector(**config)
        super().__init__(net=net, manager=_FailFastConnectionManager(net, **config), **config)


class _AdminClient(KafkaAdminClient):  # type: ignore[misc]
    """A KafkaAdminClient that fails fast on rejected credentials and cleans up after itself.

    kafka-python 3.0.12 starts the client's IO thread in `__init__` before the bootstrap and
    leaves it running when the bootstrap raises, so each failed poll of an unreachable
    broker would leak a thread. `_client` and `_net` are that version's private attributes.
    """

    def __init__(self, **config: Any) -> None:
        config.setdefault("kafka_client", _NetClient)
        try:
            super().__init__(**config)
        except BaseException:
            client = getattr(self, "_client", None)
            if client is not None:
                client.close()
            net = getattr(self, "_net", None)
            if net is not None:
                net.stop()
            raise


def build_admin_client(settings: KafkaSettings) -> Any:
    return _AdminClient(**admin_client_config(settings))


PoolKey = tuple[tuple[str, ...], str]


def pool_key(settings: KafkaSettings) -> PoolKey:
    """Key shared clients by the set of bootstrap servers and a hash of the credentials."""
    return tuple(sorted(set(settings.bootstrap_servers))), credentials_digest(settings.auth)


@dataclass
class _PoolEntry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: Any = None
    failed_at: float | None = None
    failure: str = ""


class KafkaAdminPool:
    """One admin client per (bootstrap servers, credentials), shared by every trigger.

    The pool lock guards only the entry table. Each entry has its own lock, held while its
    client is built, so an unreachable broker blocks only the triggers that name it. A
    failed build raises ScalerError. For `timeout_seconds` after it, calls for that entry
    fail at once with the same message instead of each waiting for the bootstrap timeout.

    Calls on a shared client are not serialised: kafka-python 3.0.12 runs a client's I/O
    on its own thread and documents its blocking calls as safe from several threads. A
    call that fails with a connection error closes the client, and the next call builds
    a new one, so a restarted broker is picked up without restarting the runner.
    """

    def __init__(
        self,
        *,
        client_factory: Callable[[KafkaSettings], Any] = build_admin_client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = client_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[PoolKey, _PoolEntry] = {}

    def call(self, settings: KafkaSettings, action: Callable[[Any], T]) -> T:
        """Run `action` with the shared client of these settings, building it if needed.

        Raise ScalerError when the client cannot be built, and whatever `action` raises.
        """
        key = pool_key(settings)
        client = self._client(key, settings)
        try:
            return action(client)
        except CONNECTION_ERRORS:
            self._discard(key, client)
            raise

    def _client(self, key: PoolKey, settings: KafkaSettings) -> Any:
        with self._lock:
            entry = self._entries.setdefault(key, _PoolEntry())
        servers = ",".join(settings.bootstrap_servers)
        # While one trigger builds the client, the others fail at once instead of waiting:
        # a broker that does not respond would otherwise hold a poll worker per trigger for
        # the whole bootstrap timeout and starve healthy ScaledJobs of workers.
        if not entry.lock.acquire(blocking=False):
            if entry.client is not None:
                return entry.client
            if entry.failure:
                raise ScalerError(_connect_failure(servers, entry.failure, settings))
            raise ScalerError(f"still connecting to Kafka at {servers}; retrying on the next poll")
        try:
            return self._build(entry, servers, settings)
        finally:
            entry.lock.release()

    def _build(self, entry: _PoolEntry, servers: str, settings: KafkaSettings) -> Any:
        """Return the entry's client, building it unless a recent build failed (lock held)."""
        if entry.client is not None:
            return entry.client
        if entry.failed_at is not None:
            elapsed = self._clock() - entry.failed_at
            if elapsed < settings.timeout_seconds:
                raise ScalerError(_connect_failure(servers, entry.failure, settings))
        try:
            entry.client = self._factory(settings)
        except (KafkaError, ScalerError) as error:
            entry.failed_at = self._clock()
            entry.failure = describe_kafka_error(error, settings.auth)
            raise ScalerError(_connect_failure(servers, entry.failure, settings)) from None
        entry.failed_at = None
        log.info("connected a shared Kafka admin client", extra=context(broker=servers))
        return entry.client

    def _discard(self, key: PoolKey, client: Any) -> None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None:
            with entry.lock:
                if entry.client is client:
                    entry.client = None
        log.debug("closing a Kafka admin client after a connection error", exc_info=True)
        try:
            client.close()
        except KafkaError:
            log.debug("closing a failed Kafka admin client failed", exc_info=True)

    def size(self) -> int:
        """Return the number of connected clients."""
        with self._lock:
            entries = list(self._entries.values())
        return sum(entry.client is not None for entry in entries)

    def close(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            if entry.client is not None:
                entry.client.close()


def _connect_failure(servers: str, failure: str, settings: KafkaSettings) -> str:
    # The failed attempt and the polls that fail fast after it get the same message, so the
    # controller logs a failure once instead of each time the pool tries again.
    return (
        f"cannot connect to Kafka at {servers}: {failure}; retrying at most every "
        f"{settings.timeout_seconds:g}s"
    )


DEFAULT_POOL = KafkaAdminPool()
