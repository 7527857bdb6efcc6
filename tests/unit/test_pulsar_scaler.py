"""Unit tests of the pulsar scaler at the HTTP seam: headers, redirects, errors, shared clients."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping

import httpx
import pytest

from jobrunner.errors import ScalerError
from jobrunner.scalers.metadata import TriggerInput
from jobrunner.scalers.pulsar import ClientCredentialsToken, PulsarClientPool, PulsarScaler
from jobrunner.scalers.pulsar_settings import PulsarSettings, parse_pulsar_settings

BASE = {
    "adminURL": "http://pulsar:8080",
    "topic": "persistent://public/default/orders",
    "subscription": "workers",
}
SECRET = "fixture-secret-Lw4Tn8"
STATS = {"subscriptions": {"workers": {"msgBacklog": 12}}}
Handler = Callable[[httpx.Request], httpx.Response]


def settings_of(
    metadata: Mapping[str, str], auth: Mapping[str, str] | None = None
) -> PulsarSettings:
    source = TriggerInput(
        subject="ScaledJob default/orders",
        path="spec.triggers[0]",
        metadata={**BASE, **metadata},
        auth_params=auth or {},
    )
    return parse_pulsar_settings(source)


def mock_pool(handler: Handler, built: list[PulsarSettings] | None = None) -> PulsarClientPool:
    def factory(settings: PulsarSettings) -> httpx.Client:
        if built is not None:
            built.append(settings)
        return httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=False)

    return PulsarClientPool(client_factory=factory)


def scaler_with(
    handler: Handler,
    metadata: Mapping[str, str] | None = None,
    auth: Mapping[str, str] | None = None,
) -> PulsarScaler:
    return PulsarScaler(settings_of(metadata or {}, auth), pool=mock_pool(handler))


def measure_error(scaler: PulsarScaler) -> str:
    with pytest.raises(ScalerError) as caught:
        scaler.measure()
    return str(caught.value)


# --- requests and headers -------------------------------------------------------------------


def test_pulsar_requests_stats_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=STATS)

    scaler_with(handler).measure()

    assert len(seen) == 1
    assert seen[0].method == "GET"
    assert str(seen[0].url) == "http://pulsar:8080/admin/v2/persistent/public/default/orders/stats"
    assert "authorization" not in seen[0].headers
    assert "x-pulsar-auth-method-name" not in seen[0].headers


@pytest.mark.parametrize(
    ("metadata", "auth", "authorization", "method"),
    [
        pytest.param(
            {"authModes": "bearer"},
            {"bearerToken": SECRET},
            f"Bearer {SECRET}",
            "token",
            id="bearer",
        ),
        pytest.param(
            {"authModes": "basic"},
            {"username": "user", "password": SECRET},
            "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode(),
            "basic",
            id="basic",
        ),
    ],
)
def test_pulsar_auth_headers(
    metadata: dict[str, str], auth: dict[str, str], authorization: str, method: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=STATS)

    scaler_with(handler, metadata, auth).measure()

    assert seen[0].headers["authorization"] == authorization
    assert seen[0].headers["x-pulsar-auth-method-name"] == method


# --- redirects ------------------------------------------------------------------------------


def redirecting(location: str, status: int = 307) -> tuple[Handler, list[httpx.Request]]:
    """A handler that redirects the first request to `location` and serves stats after."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(status, headers={"Location": location})
        return httpx.Response(200, json=STATS)

    return handler, seen


BEARER = ({"authModes": "bearer"}, {"bearerToken": SECRET})


@pytest.mark.parametrize(
    "location",
    [
        "http://PULSAR:9090/admin/v2/persistent/public/default/orders/stats",
        "/admin/v2/persistent/public/default/orders/stats?authoritative=true",
    ],
)
def test_pulsar_redirect_same_host_keeps_credentials(location: str) -> None:
    handler, seen = redirecting(location)

    measurement = scaler_with(handler, *BEARER).measure()

    assert measurement.queue_length == 12.0
    assert len(seen) == 2
    assert seen[1].headers["authorization"] == f"Bearer {SECRET}"
    assert seen[1].headers["x-pulsar-auth-method-name"] == "token"


def test_pulsar_redirect_other_host_drops_credentials() -> None:
    handler, seen = redirecting(
        "http://broker-2:8080/admin/v2/persistent/public/default/orders/stats"
    )

    scaler_with(handler, *BEARER).measure()

    assert seen[1].url.host == "broker-2"
    assert "authorization" not in seen[1].headers
    assert "x-pulsar-auth-method-name" not in seen[1].headers


def test_pulsar_redirect_https_to_http_rejected() -> None:
    handler, seen = redirecting(
        "http://pulsar:8080/admin/v2/persistent/public/default/orders/stats"
    )
    metadata = {**BEARER[0], "adminURL": "https://pulsar:8443"}

    message = measure_error(scaler_with(handler, metadata, BEARER[1]))

    assert len(seen) == 1
    assert "from https to http" in message
    assert SECRET not in message


def test_pulsar_redirect_loop_stops() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": str(request.url)})

    message = measure_error(scaler_with(handler))

    assert "more than 10 times" in message


# --- errors ---------------------------------------------------------------------------------


def responding(status: int, body: object = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return handler


@pytest.mark.parametrize(
    ("handler", "metadata", "auth", "expected"),
    [
        pytest.param(
            responding(200, {"subscriptions": {"other": {"msgBacklog": 3}}}),
            {},
            {},
            "subscription workers not found on topic persistent://public/default/orders at "
            "the Pulsar admin API at http://pulsar:8080",
            id="subscription-missing",
        ),
        pytest.param(
            responding(404, {"reason": "Topic persistent://public/default/orders not found"}),
            {},
            {},
            "topic persistent://public/default/orders not found at the Pulsar admin API at "
            "http://pulsar:8080 (HTTP 404); create it, or set isPartitionedTopic to true if it "
            "is a partitioned topic",
            id="topic-missing",
        ),
        pytest.param(
            responding(404, {"reason": "Partitioned Topic not found"}),
            {"isPartitionedTopic": "true"},
            {},
            "partitioned topic persistent://public/default/orders not found at the Pulsar admin "
            "API at http://pulsar:8080 (HTTP 404); create it, or set isPartitionedTopic to "
            "false if it is not partitioned",
            id="partitioned-topic-missing",
        ),
        pytest.param(
            responding(404, {"reason": "Namespace not found"}),
            {},
            {},
            "namespace public/default of topic persistent://public/default/orders not found",
            id="namespace-missing",
        ),
        pytest.param(
            responding(401),
            {},
            {},
            "requires authentication to read topic persistent://public/default/orders (HTTP "
            "401 Unauthorized), and the trigger sends no credentials",
            id="unauthorized-anonymous",
        ),
        pytest.param(
            responding(401),
            *BEARER,
            "rejected the credentials for topic persistent://public/default/orders (HTTP 401 "
            "Unauthorized)",
            id="unauthorized-token",
        ),
        pytest.param(
            responding(403),
            *BEARER,
            "denied access to the stats of topic persistent://public/default/orders (HTTP 403 "
            "Forbidden)",
            id="forbidden",
        ),
        pytest.param(
            responding(500, {"reason": "bookie down"}),
            {},
            {},
            "returned HTTP 500 for the stats request of topic "
            "persistent://public/default/orders: bookie down",
            id="server-error",
        ),
        pytest.param(
            lambda request: httpx.Response(200, text="<html>"),
            {},
            {},
            "are not a JSON object",
            id="not-json",
        ),
        pytest.param(
            responding(200, {"subscriptions": {"workers": {"msgBacklog": "12"}}}),
            {},
            {},
            "have an invalid msgBacklog for subscription workers",
            id="backlog-not-integer",
        ),
    ],
)
def test_pulsar_error_messages(
    handler: Handler, metadata: dict[str, str], auth: dict[str, str], expected: str
) -> None:
    message = measure_error(scaler_with(handler, metadata, auth))

    assert expected in message
    assert SECRET not in message


def test_pulsar_unreachable_broker() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"[Errno 111] Connection refused token={SECRET}", request=request)

    metadata = {**BEARER[0], "adminURL": f"http://admin:{SECRET}@pulsar:8080"}
    message = measure_error(scaler_with(handler, metadata, BEARER[1]))

    assert message.startswith(
        "cannot connect to the Pulsar admin API at http://pulsar:8080 to read topic "
        "persistent://public/default/orders: [Errno 111] Connection refused token=<hidden>"
    )
    assert SECRET not in message


def test_pulsar_timeout() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    message = measure_error(scaler_with(handler))

    assert "did not respond to the stats request of topic" in message
    assert "within 5s" in message


# --- shared clients -------------------------------------------------------------------------


def test_pulsar_one_client_per_admin_url() -> None:
    built: list[PulsarSettings] = []
    pool = mock_pool(responding(200, STATS), built)
    first = PulsarScaler(settings_of({}), pool=pool)
    second = PulsarScaler(settings_of({"subscription": "workers"}, BEARER[1]), pool=pool)
    other_url = PulsarScaler(settings_of({"adminURL": "http://pulsar-2:8080"}), pool=pool)

    for scaler in (first, second, other_url, first):
        scaler.measure()

    assert pool.size() == 2
    assert [settings.admin_url for settings in built] == [
        "http://pulsar:8080",
        "http://pulsar-2:8080",
    ]


def test_pulsar_tls_settings_get_own_client() -> None:
    built: list[PulsarSettings] = []
    pool = mock_pool(responding(200, STATS), built)
    auth = {"cert": "-----BEGIN CERTIFICATE-----", "key": "-----BEGIN PRIVATE KEY-----"}
    plain = PulsarScaler(settings_of({}), pool=pool)
    mutual_tls = PulsarScaler(settings_of({"authModes": "tls"}, auth), pool=pool)

    plain.measure()
    mutual_tls.measure()

    assert pool.size() == 2


# --- OAuth ----------------------------------------------------------------------------------


OAUTH = (
    {"authModes": "oauth"},
    {
        "oauthTokenURI": "https://idp/token",
        "clientID": "id",
        "clientSecret": SECRET,
        "scopes": "a,b",
        "endpointParams": "audience=pulsar",
    },
)


def token_server(lifetime: object = 60) -> tuple[Handler, list[httpx.Request]]:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        body: dict[str, object] = {"access_token": f"token-{len(requests)}"}
        if lifetime is not None:
            body["expires_in"] = lifetime
        return httpx.Response(200, json=body)

    return handler, requests


def token_source(handler: Handler, clock: Callable[[], float]) -> ClientCredentialsToken:
    settings = settings_of(*OAUTH)
    return ClientCredentialsToken(
        settings.auth,
        clock=clock,
        client_factory=lambda auth, timeout: httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_client_credentials_request() -> None:
    handler, requests = token_server()

    token = token_source(handler, lambda: 0.0).token(timeout_seconds=5)

    assert token == "token-1"
    assert str(requests[0].url) == "https://idp/token"
    form = requests[0].content.decode()
    assert "grant_type=client_credentials" in form
    assert "scope=a+b" in form
    assert "audience=pulsar" in form
    expected = base64.b64encode(f"id:{SECRET}".encode()).decode()
    assert requests[0].headers["authorization"] == f"Basic {expected}"


def test_client_credentials_token_cached_until_expiry() -> None:
    now = [1000.0]
    handler, requests = token_server(lifetime=60)
    source = token_source(handler, lambda: now[0])

    first = source.token(timeout_seconds=5)
    now[0] += 29
    cached = source.token(timeout_seconds=5)
    now[0] += 1
    renewed = source.token(timeout_seconds=5)

    assert (first, cached, renewed) == ("token-1", "token-1", "token-2")
    assert len(requests) == 2
    assert SECRET not in repr(source)


def test_client_credentials_token_without_expiry_kept() -> None:
    now = [0.0]
    handler, requests = token_server(lifetime=None)
    source = token_source(handler, lambda: now[0])

    source.token(timeout_seconds=5)
    now[0] += 10**6
    source.token(timeout_seconds=5)

    assert len(requests) == 1


def test_pulsar_oauth_sends_access_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=STATS)

    token_handler, _ = token_server()
    scaler = scaler_with(handler, *OAUTH)
    scaler._oauth = token_source(token_handler, lambda: 0.0)

    scaler.measure()

    assert seen[0].headers["authorization"] == "Bearer token-1"
    assert "x-pulsar-auth-method-name" not in seen[0].headers


def test_client_credentials_rejected_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid_client"})

    source = token_source(handler, lambda: 0.0)

    with pytest.raises(ScalerError, match="failed with HTTP 401") as caught:
        source.token(timeout_seconds=5)
    assert SECRET not in str(caught.value)
