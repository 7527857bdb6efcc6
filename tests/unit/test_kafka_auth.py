"""Unit tests of the Kafka trigger's SASL and TLS parameters and the client they configure."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaError

from jobrunner.errors import InvalidSpecError, ScalerError
from jobrunner.scalers.kafka_client import (
    ClientCredentialsTokenProvider,
    admin_client_config,
    build_ssl_context,
)
from jobrunner.scalers.kafka_settings import KafkaAuth, KafkaSettings, parse_kafka_settings
from jobrunner.scalers.metadata import TriggerInput

SUBJECT = "ScaledJob default/orders"
METADATA = "spec.triggers[0].metadata"
AUTH = "spec.triggers[0].auth"
BASE = {"bootstrapServers": "kafka:9092", "consumerGroup": "workers", "topic": "orders"}

# A throwaway self-signed EC certificate and its key, made for these tests only.
CERT = """-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUbF6Z/e7p5/FW4X+y3MS0xWrAWi0wCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOam9icnVubmVyLXRlc3QwIBcNMjYxMjA0MTQyNzUxWhgPMjEy
NjExMTAxNDI3NTFaMBkxFzAVBgNVBAMMDmpvYnJ1bm5lci10ZXN0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEdOgM4VjAyxijlipFi9SXzN97JPgegKNGarrJuqvp
ubk6y+PW+sdIjHW/Ira2exxz2bmjitzmbqH7ZNMzdAmjnKNTMFEwHQYDVR0OBBYE
FBSklcMgzzcz0U69WVF5R3IfL7PCMB8GA1UdIwQYMBaAFBSklcMgzzcz0U69WVF5
R3IfL7PCMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAPdDkYS8
DLVKpNpSjuBUCU+GBAxRF73q5e1EVyZpAiELAiBtH8B4hQrJIdmYacsfC6vUP5co
A7rtqZpRJxhX+hZEJw==
-----END CERTIFICATE-----
"""
KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg89O/UQaMBdwVj1+M
Pr4lI39ewRMt2rHAF8ZHKYMVhAWhRANCAAR06AzhWMDLGKOWKkWL1JfM33sk+B6A
o0Zqusm6q+m5uTrL49b6x0iMdb8itrZ7HHPZuaOK3OZuoftk0zN0CaOc
-----END PRIVATE KEY-----
"""
# KEY, encrypted with KEY_PASSWORD (PKCS#8, AES-256-CBC).
ENCRYPTED_KEY = """-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhzGCz0QKOyugICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEJ4fSGEglkSlcMc4S2jFHigEgZDB
mHigHQ8ozs4vLgVGfHNYWmyXslGisDMXp0I9LjrNfn9ZIURzB4WBFrvg0/s6cF42
+Nl/0VK/jiLNQxpxGXw1oV4VLH3AT9s45KCF5KKrSyFWBeT5i21sxCD2k3QUrNCO
j0d8enWmOK1CepB6/SkTPAS877L/UKTKql82iJnubdj0BtMqfM8IOGHiadSpkSs=
-----END ENCRYPTED PRIVATE KEY-----
"""
KEY_PASSWORD = "fixture-key-passphrase"

PLAIN_AUTH = {"sasl": "plaintext", "username": "alice", "password": "pw"}
OAUTH_AUTH = {
    "sasl": "oauthbearer",
    "username": "client-id",
    "password": "client-secret",
    "oauthTokenEndpointUri": "https://idp.example/token",
}


def parse(auth: Mapping[str, str], metadata: Mapping[str, str] | None = None) -> KafkaSettings:
    source = TriggerInput(
        subject=SUBJECT,
        path="spec.triggers[0]",
        metadata={**BASE, **(metadata or {})},
        auth_params=auth,
    )
    return parse_kafka_settings(source)


def problems_of(
    auth: Mapping[str, str], metadata: Mapping[str, str] | None = None
) -> dict[str, str]:
    with pytest.raises(InvalidSpecError) as caught:
        parse(auth, metadata)
    return {problem.field: problem.message for problem in caught.value.problems}


# --- valid parameters -----------------------------------------------------------------------


def test_auth_defaults() -> None:
    assert parse({}).auth == KafkaAuth()


@pytest.mark.parametrize(
    ("auth", "metadata", "expected"),
    [
        pytest.param(PLAIN_AUTH, {}, {"sasl": "plaintext", "username": "alice"}, id="plaintext"),
        pytest.param(
            {**PLAIN_AUTH, "sasl": "scram_sha256"}, {}, {"sasl": "scram_sha256"}, id="scram-256"
        ),
        pytest.param(
            {**PLAIN_AUTH, "sasl": "scram_sha512"}, {}, {"sasl": "scram_sha512"}, id="scram-512"
        ),
        pytest.param(
            {"username": "a", "password": "b"},
            {"sasl": "plaintext\n"},
            {"sasl": "plaintext"},
            id="sasl-from-metadata-trimmed",
        ),
        pytest.param(
            {**PLAIN_AUTH, "sasl": "scram_sha512"},
            {"sasl": "plaintext"},
            {"sasl": "plaintext"},
            id="metadata-wins-over-auth",
        ),
        pytest.param({"sasl": "none"}, {}, {"sasl": "none"}, id="none"),
        pytest.param({"tls": "enable"}, {}, {"tls": True}, id="tls-from-auth"),
        pytest.param({}, {"tls": "enable"}, {"tls": True}, id="tls-from-metadata"),
        pytest.param({"tls": "disable"}, {}, {"tls": False}, id="tls-disable"),
        pytest.param({"tls": "enable", "ca": CERT}, {}, {"ca": CERT.strip()}, id="ca-alone"),
        pytest.param(
            {"tls": "enable", "cert": CERT, "key": KEY},
            {"unsafeSsl": "true"},
            {"cert": CERT.strip(), "key": KEY.strip(), "unsafe_ssl": True},
            id="client-cert",
        ),
        pytest.param({"cert": CERT}, {}, {"tls": False}, id="cert-ignored-without-tls"),
        pytest.param(
            {**PLAIN_AUTH, "password": " pw \n"}, {}, {"password": "pw"}, id="password-trimmed"
        ),
        pytest.param(
            OAUTH_AUTH,
            {},
            {
                "sasl": "oauthbearer",
                "oauth_token_endpoint_uri": "https://idp.example/token",
                "scopes": ("",),
                "oauth_extensions": (),
            },
            id="oauthbearer-absent-scopes-give-one-empty",
        ),
        pytest.param(
            {**OAUTH_AUTH, "scopes": "read, write", "oauthExtensions": "a=1,b= 2"},
            {"saslTokenProvider": "bearer"},
            {"scopes": ("read", " write"), "oauth_extensions": (("a", "1"), ("b", " 2"))},
            id="oauthbearer-scopes-and-extensions-untrimmed",
        ),
    ],
)
def test_auth_valid(
    auth: dict[str, str], metadata: dict[str, str], expected: dict[str, object]
) -> None:
    parsed = parse(auth, metadata).auth

    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


# --- invalid parameters ---------------------------------------------------------------------


PASSWORD_REQUIRED = "required when sasl is plaintext, scram_sha256 or scram_sha512"
OAUTH_REQUIRED = "required when sasl is oauthbearer"
SASL_ENUM = "must be one of none, plaintext, scram_sha256, scram_sha512, oauthbearer, gssapi"


@pytest.mark.parametrize(
    ("auth", "metadata", "expected"),
    [
        pytest.param({"sasl": "kerberos"}, {}, {f"{AUTH}.sasl": SASL_ENUM}, id="sasl-unknown"),
        pytest.param({"sasl": "PLAINTEXT"}, {}, {f"{AUTH}.sasl": SASL_ENUM}, id="sasl-upper-case"),
        pytest.param(
            {},
            {"sasl": "gssapi"},
            {f"{METADATA}.sasl": "Kerberos (gssapi) is not supported yet"},
            id="gssapi-from-metadata",
        ),
        pytest.param(
            {"sasl": "gssapi", "username": "u", "password": "p"},
            {},
            {f"{AUTH}.sasl": "Kerberos (gssapi) is not supported yet"},
            id="gssapi-from-auth",
        ),
        pytest.param(
            {**OAUTH_AUTH, "saslTokenProvider": "aws_msk_iam"},
            {},
            {f"{AUTH}.saslTokenProvider": "AWS MSK IAM is not supported yet"},
            id="aws-msk-iam",
        ),
        pytest.param(
            {"sasl": "oauthbearer"},
            {"saslTokenProvider": "aws_msk_iam"},
            {f"{METADATA}.saslTokenProvider": "AWS MSK IAM is not supported yet"},
            id="aws-msk-iam-from-metadata",
        ),
        pytest.param(
            {**OAUTH_AUTH, "saslTokenProvider": "azure"},
            {},
            {f"{AUTH}.saslTokenProvider": "must be one of bearer, aws_msk_iam"},
            id="token-provider-unknown",
        ),
        pytest.param(
            {"sasl": "plaintext"},
            {},
            {f"{AUTH}.username": PASSWORD_REQUIRED, f"{AUTH}.password": PASSWORD_REQUIRED},
            id="plaintext-without-credentials",
        ),
        pytest.param(
            {"sasl": "scram_sha256", "username": "u"},
            {},
            {f"{AUTH}.password": PASSWORD_REQUIRED},
            id="scram-without-password",
        ),
        pytest.param(
            {"sasl": "scram_sha512", "password": "p"},
            {},
            {f"{AUTH}.username": PASSWORD_REQUIRED},
            id="scram-without-username",
        ),
        pytest.param(
            {},
            {"sasl": "plaintext", "username": "u", "password": "p"},
            {f"{AUTH}.username": PASSWORD_REQUIRED, f"{AUTH}.password": PASSWORD_REQUIRED},
            id="credentials-only-from-auth",
        ),
        pytest.param(
            {"sasl": "oauthbearer"},
            {},
            {
                f"{AUTH}.username": OAUTH_REQUIRED,
                f"{AUTH}.password": OAUTH_REQUIRED,
                f"{AUTH}.oauthTokenEndpointUri": OAUTH_REQUIRED,
            },
            id="oauthbearer-without-anything",
        ),
        pytest.param(
            {**OAUTH_AUTH, "oauthTokenEndpointUri": "file:///etc/passwd"},
            {},
            {f"{AUTH}.oauthTokenEndpointUri": "must be an http or https URL"},
            id="oauth-endpoint-not-http",
        ),
        pytest.param(
            {**OAUTH_AUTH, "oauthExtensions": "a=1,b"},
            {},
            {f"{AUTH}.oauthExtensions": "must be a list of key=value pairs"},
            id="extension-without-equals",
        ),
        pytest.param(
            {**OAUTH_AUTH, "oauthExtensions": "a=1=2"},
            {},
            {f"{AUTH}.oauthExtensions": "must be a list of key=value pairs"},
            id="extension-with-two-equals",
        ),
        pytest.param(
            {"tls": "yes"},
            {},
            {f"{AUTH}.tls": "must be one of enable, disable"},
            id="tls-invalid",
        ),
        pytest.param(
            {},
            {"unsafeSsl": "maybe"},
            {f"{METADATA}.unsafeSsl": "must be true or false"},
            id="unsafe-ssl-invalid",
        ),
        pytest.param(
            {"tls": "enable", "cert": CERT},
            {},
            {f"{AUTH}.key": "required when tls is enable and cert is set"},
            id="cert-without-key",
        ),
        pytest.param(
            {"tls": "enable", "key": KEY},
            {},
            {f"{AUTH}.cert": "required when tls is enable and key is set"},
            id="key-without-cert",
        ),
        pytest.param(
            {"tls": "enable", "ca": "not a certificate"},
            {},
            {f"{AUTH}.ca": "must be one or more PEM certificates"},
            id="ca-not-pem",
        ),
        pytest.param(
            {"tls": "enable", "cert": "not a certificate", "key": "not a key"},
            {},
            {
                f"{AUTH}.cert": "must be a PEM certificate",
                f"{AUTH}.key": "must be a PEM private key",
            },
            id="cert-and-key-not-pem",
        ),
    ],
)
def test_auth_invalid(
    auth: dict[str, str], metadata: dict[str, str], expected: dict[str, str]
) -> None:
    assert problems_of(auth, metadata) == expected


def test_auth_and_metadata_problems_together() -> None:
    problems = problems_of(
        {"sasl": "plaintext", "tls": "enable", "cert": CERT}, {"lagThreshold": "0"}
    )

    assert sorted(problems) == [
        f"{AUTH}.key",
        f"{AUTH}.password",
        f"{AUTH}.username",
        f"{METADATA}.lagThreshold",
    ]


# --- the admin client's configuration -------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "protocol", "mechanism"),
    [
        pytest.param({}, "PLAINTEXT", None, id="none"),
        pytest.param({"tls": "enable"}, "SSL", None, id="tls"),
        pytest.param(PLAIN_AUTH, "SASL_PLAINTEXT", "PLAIN", id="plaintext"),
        pytest.param({**PLAIN_AUTH, "tls": "enable"}, "SASL_SSL", "PLAIN", id="plaintext-tls"),
        pytest.param(
            {**PLAIN_AUTH, "sasl": "scram_sha256"},
            "SASL_PLAINTEXT",
            "SCRAM-SHA-256",
            id="scram-256",
        ),
        pytest.param(
            {**PLAIN_AUTH, "sasl": "scram_sha512", "tls": "enable"},
            "SASL_SSL",
            "SCRAM-SHA-512",
            id="scram-512-tls",
        ),
        pytest.param(OAUTH_AUTH, "SASL_PLAINTEXT", "OAUTHBEARER", id="oauthbearer"),
    ],
)
def test_admin_client_config(auth: dict[str, str], protocol: str, mechanism: str | None) -> None:
    config = admin_client_config(parse(auth))

    assert config["security_protocol"] == protocol
    assert config.get("sasl_mechanism") == mechanism
    assert config["bootstrap_servers"] == ["kafka:9092"]
    assert ("ssl_context" in config) is (auth.get("tls") == "enable")


def test_admin_client_config_credentials() -> None:
    config = admin_client_config(parse({**PLAIN_AUTH, "sasl": "scram_sha256"}))

    assert config["sasl_plain_username"] == "alice"
    assert config["sasl_plain_password"] == "pw"


def test_admin_client_config_token_provider() -> None:
    config = admin_client_config(parse({**OAUTH_AUTH, "oauthExtensions": "logicalCluster=lkc-1"}))

    provider = config["sasl_oauth_token_provider"]
    assert isinstance(provider, ClientCredentialsTokenProvider)
    assert provider.extensions() == {"logicalCluster": "lkc-1"}
    assert "sasl_plain_password" not in config


# --- TLS context ----------------------------------------------------------------------------


def test_ssl_context_verifies_by_default() -> None:
    context = build_ssl_context(KafkaAuth(tls=True, ca=CERT))

    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1


def test_ssl_context_unsafe() -> None:
    context = build_ssl_context(KafkaAuth(tls=True, unsafe_ssl=True))

    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


@pytest.mark.parametrize(
    ("key", "password"),
    [
        pytest.param(KEY, "", id="plain-key"),
        pytest.param(ENCRYPTED_KEY, KEY_PASSWORD, id="encrypted-key"),
    ],
)
def test_ssl_context_client_cert(
    key: str, password: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    build_ssl_context(KafkaAuth(tls=True, cert=CERT, key=key, key_password=password))

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "password",
    [pytest.param("", id="missing-password"), pytest.param("wrong-pass", id="wrong-password")],
)
def test_ssl_context_bad_key_password(
    password: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    auth = KafkaAuth(tls=True, cert=CERT, key=ENCRYPTED_KEY, key_password=password)

    with pytest.raises(ScalerError) as caught:
        build_ssl_context(auth)

    assert "cannot load the TLS client certificate" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
    if password:
        assert password not in str(caught.value)


# --- OAuth client-credentials tokens --------------------------------------------------------


@dataclass
class TokenEndpoint:
    """A loopback OAuth token endpoint that records the requests it receives."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    response: dict[str, Any] = field(
        default_factory=lambda: {"access_token": "token-1", "expires_in": 3600}
    )


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            endpoint.requests.append(
                {
                    "form": urllib.parse.parse_qs(body),
                    "authorization": self.headers["Authorization"],
                }
            )
            payload = json.dumps(endpoint.response).encode()
            self.send_response(endpoint.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in endpoint.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_port}/token"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield endpoint
    server.shutdown()
    server.server_close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def provider_for(
    endpoint: TokenEndpoint, *, scopes: tuple[str, ...] = ("",), clock: FakeClock | None = None
) -> ClientCredentialsTokenProvider:
    return ClientCredentialsTokenProvider(
        endpoint=endpoint.url,
        client_id="client id",
        client_secret="s3cret:+",
        scopes=scopes,
        extensions={},
        timeout_seconds=5,
        clock=clock or FakeClock(),
    )


def test_token_request(token_endpoint: TokenEndpoint) -> None:
    provider = provider_for(token_endpoint, scopes=("read", "write"))

    assert provider.token() == "token-1"

    request = token_endpoint.requests[0]
    assert request["form"] == {"grant_type": ["client_credentials"], "scope": ["read write"]}
    credentials = base64.b64decode(request["authorization"].removeprefix("Basic ")).decode()
    assert credentials == "client%20id:s3cret%3A%2B"


def test_token_without_scopes(token_endpoint: TokenEndpoint) -> None:
    provider_for(token_endpoint).token()

    assert token_endpoint.requests[0]["form"] == {"grant_type": ["client_credentials"]}


def test_token_reused_until_expiry(token_endpoint: TokenEndpoint) -> None:
    clock = FakeClock()
    provider = provider_for(token_endpoint, clock=clock)

    provider.token()
    clock.now += 3500
    provider.token()
    reused = len(token_endpoint.requests)
    token_endpoint.response = {"access_token": "token-2", "expires_in": 3600}
    clock.now += 100
    refreshed = provider.token()

    assert reused == 1
    assert refreshed == "token-2"
    assert len(token_endpoint.requests) == 2


def test_token_without_expiry_reused(token_endpoint: TokenEndpoint) -> None:
    token_endpoint.response = {"access_token": "forever"}
    clock = FakeClock()
    provider = provider_for(token_endpoint, clock=clock)

    provider.token()
    clock.now += 10**6
    provider.token()

    assert len(token_endpoint.requests) == 1


@pytest.mark.parametrize(
    ("status", "response", "message"),
    [
        pytest.param(401, {"error": "invalid_client"}, "HTTP 401", id="rejected"),
        pytest.param(200, {"token_type": "bearer"}, "no access_token", id="no-token"),
    ],
)
def test_token_request_fails(
    token_endpoint: TokenEndpoint, status: int, response: dict[str, Any], message: str
) -> None:
    token_endpoint.status = status
    token_endpoint.response = response

    with pytest.raises(KafkaError) as caught:
        provider_for(token_endpoint).token()

    assert message in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_token_redirect_not_followed(token_endpoint: TokenEndpoint) -> None:
    token_endpoint.status = 302
    token_endpoint.headers = {"Location": f"{token_endpoint.url}/elsewhere"}

    with pytest.raises(KafkaError) as caught:
        provider_for(token_endpoint).token()

    assert "HTTP 302" in str(caught.value)
    assert len(token_endpoint.requests) == 1


def test_token_expiry_as_string(token_endpoint: TokenEndpoint) -> None:
    token_endpoint.response = {"access_token": "token-1", "expires_in": "60"}
    clock = FakeClock()
    provider = provider_for(token_endpoint, clock=clock)

    provider.token()
    clock.now += 31
    provider.token()

    assert len(token_endpoint.requests) == 2


def test_token_endpoint_unreachable() -> None:
    provider = provider_for(TokenEndpoint(url="http://127.0.0.1:1/token"))

    with pytest.raises(KafkaError) as caught:
        provider.token()

    assert "OAuth token request failed" in str(caught.value)
