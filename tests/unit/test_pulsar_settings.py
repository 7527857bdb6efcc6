"""Unit tests of pulsar trigger metadata: KEDA's parsing rules, problem messages, arithmetic."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest

from jobrunner.errors import InvalidSpecError
from jobrunner.resources.scaledjob import ScalingStrategy
from jobrunner.scalers import REGISTRY, trigger_thresholds
from jobrunner.scalers.metadata import TriggerInput
from jobrunner.scalers.pulsar import PulsarClientPool, PulsarScaler
from jobrunner.scalers.pulsar_settings import (
    PulsarAuth,
    PulsarSettings,
    parse_go_query,
    parse_pulsar_settings,
)
from jobrunner.scaling.scaledjob import TriggerValue, decide

SUBJECT = "ScaledJob default/orders"
METADATA_PREFIX = "spec.triggers[0].metadata"
AUTH_PREFIX = "spec.triggers[0].auth"
BASE = {
    "adminURL": "http://pulsar:8080",
    "topic": "persistent://public/default/orders",
    "subscription": "workers",
}
# A value that must never appear in an error message or a repr, as it could be a credential.
SECRET = "fixture-secret-Pq7Zr2"


def parse(
    metadata: Mapping[str, str],
    *,
    env: Mapping[str, str] | None = None,
    auth: Mapping[str, str] | None = None,
) -> PulsarSettings:
    source = TriggerInput(
        subject=SUBJECT,
        path="spec.triggers[0]",
        metadata=metadata,
        resolved_env=env or {},
        auth_params=auth or {},
    )
    return parse_pulsar_settings(source)


def parse_error(
    metadata: Mapping[str, str],
    *,
    env: Mapping[str, str] | None = None,
    auth: Mapping[str, str] | None = None,
) -> InvalidSpecError:
    with pytest.raises(InvalidSpecError) as caught:
        parse(metadata, env=env, auth=auth)
    return caught.value


def problems_of(error: InvalidSpecError) -> dict[str, str]:
    return {problem.field: problem.message for problem in error.problems}


# --- valid metadata -------------------------------------------------------------------------


def test_pulsar_settings_defaults() -> None:
    assert parse(BASE) == PulsarSettings(
        admin_url="http://pulsar:8080",
        topic="persistent://public/default/orders",
        subscription="workers",
        msg_backlog_threshold=10,
        activation_msg_backlog_threshold=0,
        is_partitioned_topic=False,
        auth=PulsarAuth(),
    )


def test_pulsar_registered_in_sorted_registry() -> None:
    assert REGISTRY["pulsar"] is PulsarScaler
    assert list(REGISTRY) == sorted(REGISTRY)


@pytest.mark.parametrize(
    ("metadata", "attribute", "expected"),
    [
        pytest.param({"msgBacklogThreshold": "25"}, "msg_backlog_threshold", 25, id="threshold"),
        pytest.param({"msgBacklogThreshold": " 7 "}, "msg_backlog_threshold", 7, id="trimmed"),
        # KEDA accepts 0 and negative thresholds; they never create a Job.
        pytest.param({"msgBacklogThreshold": "0"}, "msg_backlog_threshold", 0, id="zero"),
        pytest.param({"msgBacklogThreshold": "-3"}, "msg_backlog_threshold", -3, id="negative"),
        pytest.param(
            {"msgBacklogThreshold": "9223372036854775807"},
            "msg_backlog_threshold",
            2**63 - 1,
            id="int64-max",
        ),
        pytest.param(
            {"activationMsgBacklogThreshold": "5"},
            "activation_msg_backlog_threshold",
            5,
            id="activation",
        ),
        pytest.param({"isPartitionedTopic": "true"}, "is_partitioned_topic", True, id="true"),
        pytest.param({"isPartitionedTopic": "T"}, "is_partitioned_topic", True, id="T"),
        pytest.param({"isPartitionedTopic": "1"}, "is_partitioned_topic", True, id="one"),
        pytest.param({"isPartitionedTopic": "False"}, "is_partitioned_topic", False, id="False"),
        pytest.param({"isPartitionedTopic": "  "}, "is_partitioned_topic", False, id="blank"),
        pytest.param({"subscription": "  sub  "}, "subscription", "sub", id="trim-sub"),
        pytest.param(
            {"topic": "public/default/orders"}, "topic", "public/default/orders", id="bare"
        ),
        pytest.param({"adminURL": "https://p:8443/"}, "admin_url", "https://p:8443", id="slash"),
    ],
)
def test_pulsar_settings_values(metadata: dict[str, str], attribute: str, expected: object) -> None:
    settings = parse({**BASE, **metadata})

    assert getattr(settings, attribute) == expected


def test_pulsar_from_env_forms() -> None:
    metadata = {
        "adminURLFromEnv": "ADMIN",
        "topicFromEnv": "TOPIC",
        "subscriptionFromEnv": "SUB",
    }
    env = {"ADMIN": "http://env:8080", "TOPIC": "persistent://t/n/x", "SUB": " s "}

    settings = parse(metadata, env=env)

    assert settings.admin_url == "http://env:8080"
    assert settings.topic == "persistent://t/n/x"
    assert settings.subscription == "s"


def test_pulsar_metadata_wins_over_env() -> None:
    settings = parse({**BASE, "topicFromEnv": "TOPIC"}, env={"TOPIC": "persistent://a/b/c"})

    assert settings.topic == BASE["topic"]


def test_pulsar_blank_metadata_falls_back_to_env() -> None:
    metadata = {**BASE, "subscription": "   ", "subscriptionFromEnv": "SUB"}

    settings = parse(metadata, env={"SUB": "from-env"})

    assert settings.subscription == "from-env"


@pytest.mark.parametrize(
    ("partitioned", "expected"),
    [
        (False, "http://pulsar:8080/admin/v2/persistent/public/default/orders/stats"),
        (True, "http://pulsar:8080/admin/v2/persistent/public/default/orders/partitioned-stats"),
    ],
)
def test_pulsar_stats_url(partitioned: bool, expected: str) -> None:
    settings = parse({**BASE, "isPartitionedTopic": str(partitioned).lower()})

    assert settings.stats_url == expected


def test_pulsar_metric_name_normalised() -> None:
    settings = parse(
        {**BASE, "topic": "persistent://public/default/my-topic", "subscription": "sub1"}
    )

    assert settings.metric_name(0) == "s0-pulsar-persistent---public-default-my-topic-sub1"


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "auth", "expected"),
    [
        pytest.param({"authModes": "bearer"}, {"bearerToken": "t"}, ("bearer",), id="bearer"),
        pytest.param({"authMode": "bearer"}, {"token": "t"}, ("bearer",), id="aliases"),
        pytest.param({}, {"authModes": "basic", "username": "u"}, ("basic",), id="from-auth"),
        pytest.param(
            {"authModes": " tls , bearer "},
            {
                "bearerToken": "t",
                "cert": "-----BEGIN CERTIFICATE-----",
                "key": "-----BEGIN PRIVATE KEY-----",
            },
            ("tls", "bearer"),
            id="tls-and-bearer",
        ),
        # apiKey and custom are in KEDA's enum; the pulsar trigger sends nothing for them.
        pytest.param({"authModes": "apiKey,custom"}, {}, ("apiKey", "custom"), id="unused-modes"),
        pytest.param({"authModes": "  "}, {}, (), id="blank"),
    ],
)
def test_pulsar_auth_modes(
    metadata: dict[str, str], auth: dict[str, str], expected: tuple[str, ...]
) -> None:
    settings = parse({**BASE, **metadata}, auth=auth)

    assert settings.auth.modes == expected


def test_pulsar_metadata_auth_modes_win() -> None:
    settings = parse(
        {**BASE, "authModes": "bearer"}, auth={"authModes": "basic", "bearerToken": "t"}
    )

    assert settings.auth.modes == ("bearer",)


def test_pulsar_basic_password_optional() -> None:
    settings = parse({**BASE, "authModes": "basic"}, auth={"username": "u"})

    assert settings.auth.username == "u"
    assert settings.auth.password == ""


def test_pulsar_legacy_tls_enable_adds_mode() -> None:
    auth = {"cert": "-----BEGIN CERTIFICATE-----", "key": "-----BEGIN PRIVATE KEY-----"}

    alone = parse({**BASE, "tls": "enable"}, auth=auth)
    appended = parse({**BASE, "tls": "enable", "authModes": "bearer"}, auth={**auth, "token": "t"})
    other_value = parse({**BASE, "tls": "Enable"}, auth=auth)

    assert alone.auth.modes == ("tls",)
    assert appended.auth.modes == ("bearer", "tls")
    assert other_value.auth.modes == ()


def test_pulsar_legacy_tls_needs_cert_and_key() -> None:
    error = parse_error({**BASE, "tls": "enable"}, auth={"cert": "-----BEGIN CERTIFICATE-----"})

    assert problems_of(error) == {f"{AUTH_PREFIX}.key": "required when authModes includes tls"}


def test_pulsar_oauth_metadata_fallbacks() -> None:
    metadata = {
        **BASE,
        "authModes": "oauth",
        "oauthTokenURI": "https://idp/token",
        "clientID": "from-metadata",
        "scope": " a, ,b ",
        "EndpointParams": "audience=x&audience=y&resource=r%20s",
    }

    from_metadata = parse(metadata)
    auth_wins = parse(metadata, auth={"clientID": "from-auth", "scopes": "c"})

    assert from_metadata.auth.oauth_token_uri == "https://idp/token"
    assert from_metadata.auth.client_id == "from-metadata"
    assert from_metadata.auth.scopes == ("a", "b")
    assert from_metadata.auth.endpoint_params == (("audience", ("x", "y")), ("resource", ("r s",)))
    assert auth_wins.auth.client_id == "from-auth"
    # `scopes` is looked up before `scope`, so the authentication's value wins here too.
    assert auth_wins.auth.scopes == ("c",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1&b=2", (("a", ("1",)), ("b", ("2",)))),
        ("a=1&a=2", (("a", ("1", "2")),)),
        ("a+b=c%2Bd", (("a b", ("c+d",)),)),
        ("flag&&x=", (("flag", ("",)), ("x", ("",)))),
    ],
)
def test_parse_go_query_valid(text: str, expected: object) -> None:
    assert parse_go_query(text) == expected


@pytest.mark.parametrize("text", ["a=1;b=2", "a=%zz", "a=%4", "%"])
def test_parse_go_query_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_go_query(text)


# --- what KEDA rejects ----------------------------------------------------------------------

MISSING_LOOKED_IN = "missing required parameter (looked in metadata, <name>FromEnv)"


@pytest.mark.parametrize(
    ("metadata", "auth", "expected"),
    [
        pytest.param(
            {"adminURL": ""},
            {},
            {f"{METADATA_PREFIX}.adminURL": MISSING_LOOKED_IN},
            id="admin-url-missing",
        ),
        pytest.param(
            {"topic": "  "},
            {},
            {f"{METADATA_PREFIX}.topic": MISSING_LOOKED_IN},
            id="topic-blank",
        ),
        pytest.param(
            {"subscription": "", "subscriptionFromEnv": "NOT_SET"},
            {},
            {f"{METADATA_PREFIX}.subscription": MISSING_LOOKED_IN},
            id="subscription-env-unset",
        ),
        pytest.param(
            {"msgBacklogThreshold": "AA"},
            {},
            {f"{METADATA_PREFIX}.msgBacklogThreshold": "must be an integer"},
            id="threshold-text",
        ),
        pytest.param(
            {"msgBacklogThreshold": "1.5"},
            {},
            {f"{METADATA_PREFIX}.msgBacklogThreshold": "must be an integer"},
            id="threshold-float",
        ),
        pytest.param(
            {"msgBacklogThreshold": "+5"},
            {},
            {f"{METADATA_PREFIX}.msgBacklogThreshold": "must be an integer"},
            id="threshold-plus",
        ),
        pytest.param(
            {"msgBacklogThreshold": "010"},
            {},
            {f"{METADATA_PREFIX}.msgBacklogThreshold": "must be an integer"},
            id="threshold-leading-zero",
        ),
        pytest.param(
            {"msgBacklogThreshold": "9223372036854775808"},
            {},
            {f"{METADATA_PREFIX}.msgBacklogThreshold": "must fit in a 64-bit signed integer"},
            id="threshold-overflow",
        ),
        pytest.param(
            {"activationMsgBacklogThreshold": "1e3"},
            {},
            {f"{METADATA_PREFIX}.activationMsgBacklogThreshold": "must be an integer"},
            id="activation-exponent",
        ),
        pytest.param(
            {"isPartitionedTopic": "yes"},
            {},
            {f"{METADATA_PREFIX}.isPartitionedTopic": "must be true or false"},
            id="partitioned-yes",
        ),
        pytest.param(
            {"authModes": "token"},
            {},
            {
                f"{METADATA_PREFIX}.authModes": (
                    "must list modes out of apiKey, basic, tls, bearer, custom, oauth"
                )
            },
            id="mode-unknown",
        ),
        pytest.param(
            {"authModes": "bearer,"},
            {"bearerToken": "t"},
            {
                f"{METADATA_PREFIX}.authModes": (
                    "must list modes out of apiKey, basic, tls, bearer, custom, oauth"
                )
            },
            id="mode-empty-item",
        ),
        pytest.param(
            {},
            {"authMode": "Bearer"},
            {
                f"{AUTH_PREFIX}.authMode": (
                    "must list modes out of apiKey, basic, tls, bearer, custom, oauth"
                )
            },
            id="mode-case-from-auth",
        ),
        pytest.param(
            {"authModes": "bearer,basic"},
            {"bearerToken": "t", "username": "u"},
            {f"{METADATA_PREFIX}.authModes": "may contain only one of bearer, basic, oauth"},
            id="bearer-and-basic",
        ),
        pytest.param(
            {"authModes": "bearer,bearer"},
            {"bearerToken": "t"},
            {f"{METADATA_PREFIX}.authModes": "may contain only one of bearer, basic, oauth"},
            id="bearer-twice",
        ),
        pytest.param(
            {"authModes": "oauth,basic"},
            {},
            {f"{METADATA_PREFIX}.authModes": "may contain only one of bearer, basic, oauth"},
            id="oauth-and-basic",
        ),
        pytest.param(
            {"authModes": "bearer"},
            {"bearerToken": "   "},
            {f"{AUTH_PREFIX}.bearerToken": "required when authModes includes bearer"},
            id="bearer-no-token",
        ),
        pytest.param(
            {"authModes": "basic"},
            {"password": "p"},
            {f"{AUTH_PREFIX}.username": "required when authModes includes basic"},
            id="basic-no-username",
        ),
        pytest.param(
            {"authModes": "tls"},
            {},
            {
                f"{AUTH_PREFIX}.cert": "required when authModes includes tls",
                f"{AUTH_PREFIX}.key": "required when authModes includes tls",
            },
            id="tls-no-cert-key",
        ),
        pytest.param(
            {"authModes": "oauth"},
            {},
            {
                f"{AUTH_PREFIX}.oauthTokenURI": "required when authModes includes oauth",
                f"{AUTH_PREFIX}.clientID": "required when authModes includes oauth",
            },
            id="oauth-no-uri-client",
        ),
        pytest.param(
            {},
            {"endpointParams": "a=1;b=2"},
            {
                f"{AUTH_PREFIX}.endpointParams": (
                    "must be a URL query string such as audience=a&resource=b"
                )
            },
            id="endpoint-params-semicolon",
        ),
    ],
)
def test_pulsar_settings_rejected(
    metadata: dict[str, str], auth: dict[str, str], expected: dict[str, str]
) -> None:
    error = parse_error({**BASE, **metadata}, auth=auth)

    assert problems_of(error) == expected


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        # KEDA accepts these and fails on every poll; rejecting them early changes no
        # configuration that works.
        pytest.param({"adminURL": "pulsar:8080"}, "must be an http or https URL", id="no-scheme"),
        pytest.param({"adminURL": "ftp://pulsar"}, "must be an http or https URL", id="ftp"),
        pytest.param(
            {"topic": "non-persistent://public/default/t"},
            "must be a persistent topic; the admin API has no backlog stats for "
            "non-persistent:// topics under this path",
            id="non-persistent",
        ),
        pytest.param(
            {"topic": "orders"},
            "must name tenant/namespace/topic, such as persistent://public/default/orders",
            id="short-name",
        ),
        pytest.param(
            {"topic": "persistent://public//orders"},
            "must name tenant/namespace/topic, such as persistent://public/default/orders",
            id="empty-part",
        ),
    ],
)
def test_pulsar_settings_rejected_early(metadata: dict[str, str], message: str) -> None:
    field = next(iter(metadata))

    error = parse_error({**BASE, **metadata})

    assert problems_of(error) == {f"{METADATA_PREFIX}.{field}": message}


def test_pulsar_every_problem_reported_at_once() -> None:
    metadata = {"msgBacklogThreshold": "x", "isPartitionedTopic": "maybe", "authModes": "bearer"}

    error = parse_error(metadata)

    assert set(problems_of(error)) == {
        f"{METADATA_PREFIX}.adminURL",
        f"{METADATA_PREFIX}.topic",
        f"{METADATA_PREFIX}.subscription",
        f"{METADATA_PREFIX}.msgBacklogThreshold",
        f"{METADATA_PREFIX}.isPartitionedTopic",
        f"{AUTH_PREFIX}.bearerToken",
    }
    assert str(error).startswith(f"{SUBJECT}: ")


def test_pulsar_problems_never_quote_values() -> None:
    metadata = {
        "adminURL": f"{SECRET}:8080",
        "topic": f"persistent://{SECRET}",
        "subscription": "s",
        "msgBacklogThreshold": SECRET,
        "activationMsgBacklogThreshold": f"1{SECRET}",
        "isPartitionedTopic": SECRET,
        "authModes": f"bearer,{SECRET}",
    }
    auth = {"endpointParams": f"a=%zz{SECRET}", "ca": SECRET}

    error = parse_error(metadata, auth=auth)

    assert len(error.problems) == 8
    assert SECRET not in str(error)


# --- credentials never reach a repr ---------------------------------------------------------


def test_pulsar_settings_repr_hides_credentials() -> None:
    metadata = {
        **BASE,
        "adminURL": f"https://admin:{SECRET}@pulsar:8443",
        "authModes": "oauth,tls",
    }
    auth = {
        "cert": f"-----BEGIN CERTIFICATE-----{SECRET}",
        "key": f"-----BEGIN PRIVATE KEY-----{SECRET}",
        "oauthTokenURI": f"https://idp/token?key={SECRET}",
        "clientID": f"client-{SECRET}",
        "clientSecret": SECRET,
        "scopes": SECRET,
        "endpointParams": f"audience={SECRET}",
        "bearerToken": SECRET,
        "username": SECRET,
        "password": SECRET,
    }

    settings = parse(metadata, auth=auth)
    scaler = PulsarScaler(settings, pool=PulsarClientPool())

    assert settings.auth.client_secret == SECRET
    assert SECRET not in repr(settings)
    assert SECRET not in repr(settings.auth)
    assert SECRET not in str(settings)
    assert SECRET not in scaler.describe_source()
    assert "client_secret=<set>" in repr(settings)
    assert "admin_url='https://pulsar:8443'" in repr(settings)


# --- metric and activation arithmetic -------------------------------------------------------


def scaler_with_backlog(backlog: object, metadata: Mapping[str, str]) -> PulsarScaler:
    """Build a scaler whose admin API returns `backlog` for the subscription."""

    def handler(request: httpx.Request) -> httpx.Response:
        stats = {"subscriptions": {"workers": {"msgBacklog": backlog}}}
        return httpx.Response(200, json=stats)

    pool = PulsarClientPool(
        client_factory=lambda settings: httpx.Client(transport=httpx.MockTransport(handler))
    )
    return PulsarScaler(parse({**BASE, **metadata}), pool=pool)


@pytest.mark.parametrize(
    ("backlog", "metadata", "queue_length", "target", "active"),
    [
        pytest.param(0, {}, 0.0, 10.0, False, id="empty"),
        pytest.param(1, {}, 1.0, 10.0, True, id="one-message"),
        pytest.param(37, {"msgBacklogThreshold": "5"}, 37.0, 5.0, True, id="threshold"),
        # Activation is a strict comparison: the backlog must exceed the threshold.
        pytest.param(5, {"activationMsgBacklogThreshold": "5"}, 5.0, 10.0, False, id="at-act"),
        pytest.param(6, {"activationMsgBacklogThreshold": "5"}, 6.0, 10.0, True, id="past-act"),
        # A negative backlog is reported as 0 and is never active.
        pytest.param(-4, {}, 0.0, 10.0, False, id="negative"),
    ],
)
def test_pulsar_measurement(
    backlog: int, metadata: dict[str, str], queue_length: float, target: float, active: bool
) -> None:
    measurement = scaler_with_backlog(backlog, metadata).measure()

    assert measurement.queue_length == queue_length
    assert measurement.target == target
    assert measurement.active is active
    assert measurement.activation_value == float(backlog)


def test_pulsar_missing_msg_backlog_counts_zero() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"subscriptions": {"workers": {"msgRateOut": 0.0}}})

    pool = PulsarClientPool(
        client_factory=lambda settings: httpx.Client(transport=httpx.MockTransport(handler))
    )

    measurement = PulsarScaler(parse(BASE), pool=pool).measure()

    assert measurement.queue_length == 0.0
    assert measurement.active is False


def test_pulsar_thresholds_entry() -> None:
    settings = parse({**BASE, "msgBacklogThreshold": "4", "activationMsgBacklogThreshold": "2"})

    thresholds = trigger_thresholds("pulsar", settings)

    assert thresholds.target == 4.0
    assert thresholds.activation == 2.0


@pytest.mark.parametrize(
    ("backlog", "threshold", "max_replicas", "jobs"),
    [
        # KEDA's worked examples: queue 10, target 2, max 3 gives 3 Jobs, and queue 4,
        # target 5 gives one Job, since 0.8 rounds up.
        (10, "2", 3, 3),
        (4, "5", 3, 1),
        (25, "10", 100, 3),
        (0, "10", 100, 0),
        (50, "0", 100, 0),
    ],
)
def test_pulsar_backlog_to_job_count(
    backlog: int, threshold: str, max_replicas: int, jobs: int
) -> None:
    measurement = scaler_with_backlog(backlog, {"msgBacklogThreshold": threshold}).measure()
    value = TriggerValue("pulsar", measurement.queue_length, measurement.target, measurement.active)

    decision = decide(
        [value],
        running=0,
        pending=0,
        min_count=None,
        max_count=max_replicas,
        strategy=ScalingStrategy(),
    )

    assert decision.jobs_to_create == jobs
