"""Settings of the `pulsar` trigger, parsed from its metadata with KEDA's rules.

The parameters, aliases, sources and compatibility steps follow KEDA's pulsar scaler and its
shared authentication config. Where KEDA accepts a value that fails on every poll (an admin
URL without http or https, a topic that is not tenant/namespace/topic), the value is
rejected here at once. Problems name the parameter and its source, never its value, and
the reprs show which credentials are set, never the credentials.
"""

from __future__ import annotations

import re
import ssl
import urllib.parse
from dataclasses import dataclass, field, replace

from jobrunner.scalers.metadata import MetadataReader, TriggerInput, masked_repr

AUTH_MODES = ("apiKey", "basic", "tls", "bearer", "custom", "oauth")
# KEDA allows at most one of these, since each sets the Authorization header.
EXCLUSIVE_AUTH_MODES = ("bearer", "basic", "oauth")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_METRIC_NAME_UNSAFE = re.compile(r"[/.:%()]")


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
        return masked_repr(self, shown=("modes",))

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
