"""Pulsar standalone brokers for the integration tests, from Maven Central jars.

Two instances run side by side on loopback, each with its metadata in RocksDB and one
BookKeeper bookie in the broker's process:

- `pulsar`, without authentication, on broker port 6650 and web port 8080;
- `pulsar-auth`, with JWT token authentication, on broker port 6660 and web port 8090. Its
  HS256 secret key and a superuser token are generated into the state directory on first use.

`build()` copies the runtime classpath of tests/env/pulsar/pom.xml into the cache once. Each
start step writes a config from tests/env/pulsar/standalone.conf and starts its broker with a
fresh data directory. envctl.py registers the steps, so `tests/env/up` starts both and
`tests/env/down` stops them. The module uses the standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
PULSAR_VERSION = os.environ.get("PULSAR_VERSION", "4.2.4")
CLUSTER = "standalone"
SUPERUSER = "jobrunner-admin"

# Heap and direct memory sized for tests: the shipped pulsar_env.sh sets 2 GB of heap and
# 4 GB direct memory, which would crowd out the control plane and Kafka on a small machine.
JVM_MEMORY = ["-Xms256m", "-Xmx768m", "-XX:MaxDirectMemorySize=256m"]
# What bin/pulsar adds to the JVM command line for a broker on Java 17 and later.
JVM_FLAGS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djute.maxbuffer=10485760",
    "-Dbookkeeper.metadata.bookie.drivers=org.apache.pulsar.metadata.bookkeeper.PulsarMetadataBookieDriver",
    "-Dbookkeeper.metadata.client.drivers=org.apache.pulsar.metadata.bookkeeper.PulsarMetadataClientDriver",
    *(
        f"--add-opens={module}=ALL-UNNAMED"
        for module in (
            "java.base/java.io",
            "java.base/java.lang",
            "java.base/java.nio",
            "java.base/java.util",
            "java.base/java.util.zip",
            "java.base/jdk.internal.misc",
            "java.base/jdk.internal.platform",
            "java.base/sun.net",
            "java.management/sun.management",
            "jdk.management/com.sun.management.internal",
        )
    ),
]


@dataclass(frozen=True)
class Instance:
    """One standalone broker: its step name (also its log and pid file name) and ports."""

    name: str
    broker_port: int
    web_port: int
    bookie_port: int
    token_auth: bool

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def service_url(self) -> str:
        return f"pulsar://127.0.0.1:{self.broker_port}"


PLAIN = Instance("pulsar", broker_port=6650, web_port=8080, bookie_port=3181, token_auth=False)
TOKEN = Instance("pulsar-auth", broker_port=6660, web_port=8090, bookie_port=3191, token_auth=True)


def _envctl() -> ModuleType:
    """Return envctl's process helpers.

    envctl.py imports this module and usually runs as `__main__`, so importing it back at
    the top of this file would be circular. By the time a step runs, envctl is complete.
    """
    main = sys.modules.get("__main__")
    if main is not None and hasattr(main, "spawn") and hasattr(main, "STEPS"):
        return main
    import envctl

    return envctl


# --- classpath ------------------------------------------------------------------------------


def lib_dir() -> Path:
    return _envctl().CACHE / f"pulsar-{PULSAR_VERSION}" / "lib"


def build() -> None:
    """Copy pulsar-broker's runtime classpath into the cache, once per version."""
    env = _envctl()
    lib = lib_dir()
    if (lib / f"pulsar-broker-{PULSAR_VERSION}.jar").exists():
        env.progress(f"build pulsar: {lib}")
        return
    started = time.monotonic()
    env.progress(f"build pulsar: resolving pulsar-broker {PULSAR_VERSION} from Maven Central")
    staging = lib.with_name("lib.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    env.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(HERE / "pulsar" / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
            f"-Dpulsar.version={PULSAR_VERSION}",
        ],
        step="build pulsar",
    )
    shutil.rmtree(lib, ignore_errors=True)
    staging.rename(lib)
    env.progress(f"build pulsar: {lib} in {time.monotonic() - started:.0f}s")


# --- token authentication -------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(subject: str, key: bytes) -> str:
    """Sign an HS256 JWT without expiry whose `sub` is `subject`, as `pulsar tokens create`."""
    header = _b64url(json.dumps({"alg": "HS256"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps({"sub": subject}, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


def auth_dir() -> Path:
    return _envctl().STATE / TOKEN.name / "auth"


def secret_key_file() -> Path:
    return auth_dir() / "secret.key"


def superuser_token_file() -> Path:
    return auth_dir() / "superuser.token"


def ensure_token_material() -> str:
    """Create the broker's secret key and the superuser token once; return the token."""
    key_file, token_file = secret_key_file(), superuser_token_file()
    if key_file.exists() and token_file.exists():
        return token_file.read_text().strip()
    auth_dir().mkdir(parents=True, exist_ok=True)
    auth_dir().chmod(0o700)
    # Pulsar reads a `file://` secret key as raw bytes; HS256 needs at least 256 bits.
    key = secrets.token_bytes(32)
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    token = make_token(SUPERUSER, key)
    token_file.write_text(token)
    token_file.chmod(0o600)
    return token


def auth_settings(instance: Instance) -> str:
    if not instance.token_auth:
        return ""
    ensure_token_material()
    provider = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
    # The broker's own admin client (the starter creates public/default through it) and
    # its internal clients present the superuser token too.
    return "\n".join(
        [
            "authenticationEnabled=true",
            f"authenticationProviders={provider}",
            f"tokenSecretKey=file://{secret_key_file()}",
            f"superUserRoles={SUPERUSER}",
            "authorizationEnabled=false",
            "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken",
            f"brokerClientAuthenticationParameters=file://{superuser_token_file()}",
            "",
        ]
    )


# --- start ----------------------------------------------------------------------------------


def admin_token(instance: Instance) -> str | None:
    return superuser_token_file().read_text().strip() if instance.token_auth else None


def clusters_listed(instance: Instance) -> bool:
    """Check that `GET /admin/v2/clusters` returns a list with the standalone cluster."""
    request = urllib.request.Request(f"{instance.admin_url}/admin/v2/clusters")
    token = admin_token(instance)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            clusters: Any = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(clusters, list) and CLUSTER in clusters


def write_config(instance: Instance, directory: Path) -> Path:
    template = (HERE / "pulsar" / "standalone.conf").read_text()
    path = directory / "standalone.conf"
    path.write_text(
        template.format(
            broker_port=instance.broker_port,
            web_port=instance.web_port,
            auth=auth_settings(instance),
        )
    )
    return path


def start_instance(instance: Instance) -> None:
    env = _envctl()
    name = instance.name
    if env.pid_of(name) is not None and clusters_listed(instance):
        env.progress(f"{name}: already running")
        return
    env.stop(name)
    # A fresh data directory on every start: RocksDB metadata left by a killed broker can
    # keep the next one from starting, and tests never rely on old topics.
    directory = env.STATE / name
    data = directory / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    config = write_config(instance, directory)
    (env.LOGS / f"{name}.log").unlink(missing_ok=True)

    argv = [
        "java",
        *JVM_MEMORY,
        *JVM_FLAGS,
        f"-Dlog4j.configurationFile={HERE / 'pulsar' / 'log4j2.properties'}",
        "-cp",
        f"{lib_dir()}/*",
        "org.apache.pulsar.PulsarStandaloneStarter",
        "--config",
        str(config),
        "--no-functions-worker",
        "--wipe-data",
        f"--metadata-dir={data / 'metadata'}",
        f"--bookkeeper-dir={data / 'bookkeeper'}",
        f"--bookkeeper-port={instance.bookie_port}",
        "--advertised-address=127.0.0.1",
    ]

    started = time.monotonic()
    env.progress(f"{name}: starting")
    # The starter resolves some paths (conf/, data/) against its working directory.
    env.spawn(name, argv, cwd=directory)
    env.wait_until(name, lambda: clusters_listed(instance), timeout=180)
    env.progress(f"{name}: ready in {time.monotonic() - started:.1f}s at {instance.admin_url}")


def start(ctx: object) -> None:
    """Start the broker without authentication; an envctl step."""
    start_instance(PLAIN)


def start_auth(ctx: object) -> None:
    """Start the broker with token authentication; an envctl step."""
    start_instance(TOKEN)


def env_values() -> dict[str, str]:
    """Return the lines that envctl writes into the env file for the Pulsar tests."""
    return {
        "JOBRUNNER_TEST_PULSAR_ADMIN": PLAIN.admin_url,
        "JOBRUNNER_TEST_PULSAR_BROKER": PLAIN.service_url,
        "JOBRUNNER_TEST_PULSAR_AUTH_ADMIN": TOKEN.admin_url,
        "JOBRUNNER_TEST_PULSAR_AUTH_BROKER": TOKEN.service_url,
        "JOBRUNNER_TEST_PULSAR_AUTH_TOKEN_FILE": str(superuser_token_file()),
    }
