"""Start and stop the real servers that the integration tests and the demo use.

Everything runs as local processes on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, a KWOK controller with one fake node, an agent for a node whose pods run as
local processes (procnode.py), and a single-node KRaft Kafka broker.
Binaries and jars are built or fetched once into the cache directory and reused.

State (certificates, data, logs, pid files) lives in JOBRUNNER_ENV_DIR, /tmp/jobrunner-env by
default. `up` writes `kubeconfig` and `env` there; the tests and the demo read `env`.

The script uses the standard library only, so it runs before the project is installed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kafka_security
import postgres
import pulsar

HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("JOBRUNNER_ENV_DIR", "/tmp/jobrunner-env"))
CACHE = Path(os.environ.get("JOBRUNNER_CACHE", Path.home() / ".cache" / "jobrunner"))

KUBE_VERSION = os.environ.get("KUBE_VERSION", "v1.36.3")
ETCD_VERSION = os.environ.get("ETCD_VERSION", "v3.6.16")
KWOK_VERSION = os.environ.get("KWOK_VERSION", "v0.8.0")
KAFKA_VERSION = "4.4.0"

ETCD_PORT = 2379
APISERVER_PORT = 6443
KAFKA_PORT = 9092
KAFKA_CONTROLLER_PORT = 9093
KWOK_NODE = "kwok-node-0"
PROCESS_NODE = "proc-node-0"
PROCESS_NODE_PORT = 10250

LOGS = STATE / "logs"
PIDS = STATE / "pids"
PKI = STATE / "pki"


class StepFailed(Exception):
    """A start-up step failed; the message names the step and where to look."""


def progress(message: str) -> None:
    print(f"[env] {message}", file=sys.stderr, flush=True)


# --- processes ------------------------------------------------------------------------------


def pid_of(name: str) -> int | None:
    path = PIDS / f"{name}.pid"
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def spawn(name: str, argv: list[str], *, cwd: Path | None = None, env: dict | None = None) -> int:
    """Start a detached process whose output goes to logs/<name>.log."""
    LOGS.mkdir(parents=True, exist_ok=True)
    PIDS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "ab")
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    (PIDS / f"{name}.pid").write_text(str(process.pid))
    return process.pid


def stop(name: str, *, timeout: float = 20.0) -> None:
    pid = pid_of(name)
    if pid is None:
        (PIDS / f"{name}.pid").unlink(missing_ok=True)
        return
    progress(f"{name}: stopping (pid {pid})")
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_of(name) is not None:
        time.sleep(0.2)
    if pid_of(name) is not None:
        os.killpg(pid, signal.SIGKILL)
    (PIDS / f"{name}.pid").unlink(missing_ok=True)


def wait_until(name: str, check: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if pid_of(name) is None:
            raise StepFailed(f"{name}: the process exited; {tail(LOGS / f'{name}.log')}")
        time.sleep(0.3)
    raise StepFailed(f"{name}: not ready after {timeout:.0f}s; {tail(LOGS / f'{name}.log')}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"no log at {path}"
    return f"last lines of {path}:\n  " + "\n  ".join(text)


def run(argv: list[str], *, step: str, cwd: Path | None = None, env: dict | None = None) -> str:
    result = subprocess.run(
        argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise StepFailed(f"{step}: {' '.join(argv[:3])} failed:\n  " + "\n  ".join(output))
    return result.stdout


def http_ok(url: str, *, token: str | None = None, context: ssl.SSLContext | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- builds ---------------------------------------------------------------------------------


def kube_bin(name: str) -> Path:
    return CACHE / "bin" / f"kube-{KUBE_VERSION}" / name


def etcd_bin() -> Path:
    return CACHE / "bin" / f"etcd-{ETCD_VERSION}" / "etcd"


def kwok_dir() -> Path:
    return CACHE / "bin" / f"kwok-{KWOK_VERSION}"


def kafka_lib() -> Path:
    return CACHE / f"kafka-{KAFKA_VERSION}" / "lib"


def build() -> None:
    env = {
        "KUBE_VERSION": KUBE_VERSION,
        "ETCD_VERSION": ETCD_VERSION,
        "JOBRUNNER_CACHE": str(CACHE),
    }
    env["KWOK_VERSION"] = KWOK_VERSION
    for target in ("etcd", "kwok", "kube"):
        started = time.monotonic()
        progress(f"build {target}: checking the cache")
        result = subprocess.run([str(HERE / "build-kube"), target], env={**os.environ, **env})
        if result.returncode != 0:
            raise StepFailed(f"build {target}: tests/env/build-kube {target} failed (output above)")
        progress(f"build {target}: done in {time.monotonic() - started:.0f}s")
    if not (kafka_lib() / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        progress(f"build kafka: resolving kafka_2.13 {KAFKA_VERSION} from Maven Central")
        staging = kafka_lib().with_name("lib.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(HERE / "kafka" / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
                f"-Dkafka.version={KAFKA_VERSION}",
            ],
            step="build kafka",
        )
        shutil.rmtree(kafka_lib(), ignore_errors=True)
        staging.rename(kafka_lib())
    progress(f"build kafka: {kafka_lib()}")
    pulsar.build()


# --- certificates and credentials -----------------------------------------------------------


def make_pki() -> str:
    """Create the CA, the API server's serving certificate, service-account keys and a token."""
    token_file = PKI / "admin.token"
    if token_file.exists():
        return token_file.read_text().strip()
    progress("pki: creating a test CA, serving certificate and service-account keys")
    PKI.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        run(["openssl", *args], step="pki", cwd=PKI)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=jobrunner-test-ca",
    )
    (PKI / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        "-subj",
        "/CN=kube-apiserver",
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "apiserver.crt",
        "-days",
        "3650",
        "-extfile",
        "server.ext",
    )
    openssl("genrsa", "-out", "sa.key", "2048")
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
    token = uuid.uuid4().hex
    (PKI / "tokens.csv").write_text(f'{token},admin,admin-uid,"system:masters"\n')
    token_file.write_text(token)
    return token


def write_kubeconfig(token: str) -> Path:
    ca = base64.b64encode((PKI / "ca.crt").read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "jobrunner-test",
                "cluster": {
                    "server": f"https://127.0.0.1:{APISERVER_PORT}",
                    "certificate-authority-data": ca,
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {"name": "jobrunner-test", "context": {"cluster": "jobrunner-test", "user": "admin"}}
        ],
        "current-context": "jobrunner-test",
    }
    path = STATE / "kubeconfig"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


# --- components -----------------------------------------------------------------------------


@dataclass
class Context:
    token: str
    kubeconfig: Path

    def api_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(PKI / "ca.crt"))
        url = f"https://127.0.0.1:{APISERVER_PORT}/readyz"
        return http_ok(url, token=self.token, context=context)

    def kubectl(self, *args: str, step: str, stdin: str | None = None) -> str:
        argv = [str(kube_bin("kubectl")), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True)
        if result.returncode != 0:
            raise StepFailed(
                f"{step}: kubectl {' '.join(args[:2])} failed: {result.stderr.strip()}"
            )
        return result.stdout


def start_component(
    name: str,
    argv: list[str],
    ready: Callable[[], bool],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict | None = None,
) -> None:
    if pid_of(name) is not None and ready():
        progress(f"{name}: already running")
        return
    stop(name)
    started = time.monotonic()
    progress(f"{name}: starting")
    spawn(name, argv, cwd=cwd, env=env)
    wait_until(name, ready, timeout=timeout)
    progress(f"{name}: ready in {time.monotonic() - started:.1f}s")


def start_etcd(ctx: Context) -> None:
    data = STATE / "etcd"
    data.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{ETCD_PORT}"
    argv = [
        str(etcd_bin()),
        f"--data-dir={data}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{ETCD_PORT + 1}",
        f"--initial-cluster=default=http://127.0.0.1:{ETCD_PORT + 1}",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]
    start_component("etcd", argv, lambda: http_ok(f"{url}/health"), timeout=30)


def start_apiserver(ctx: Context) -> None:
    argv = [
        str(kube_bin("kube-apiserver")),
        f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={APISERVER_PORT}",
        f"--tls-cert-file={PKI / 'apiserver.crt'}",
        f"--tls-private-key-file={PKI / 'apiserver.key'}",
        f"--client-ca-file={PKI / 'ca.crt'}",
        f"--token-auth-file={PKI / 'tokens.csv'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={PKI / 'sa.pub'}",
        f"--service-account-signing-key-file={PKI / 'sa.key'}",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--kubelet-preferred-address-types=InternalIP",
    ]
    start_component("kube-apiserver", argv, ctx.api_ready, timeout=120)


def start_controller_manager(ctx: Context) -> None:
    argv = [
        str(kube_bin("kube-controller-manager")),
        f"--kubeconfig={ctx.kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=10257",
        "--controllers=*",
        f"--service-account-private-key-file={PKI / 'sa.key'}",
        f"--root-ca-file={PKI / 'ca.crt'}",
        "--use-service-account-credentials=false",
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
    ]
    ready = lambda: http_ok("https://127.0.0.1:10257/healthz", context=insecure_context())
    start_component("kube-controller-manager", argv, ready, timeout=60)


def start_scheduler(ctx: Context) -> None:
    argv = [
        str(kube_bin("kube-scheduler")),
        f"--kubeconfig={ctx.kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=10259",
        "--kube-api-qps=500",
        "--kube-api-burst=1000",
    ]
    ready = lambda: http_ok("https://127.0.0.1:10259/healthz", context=insecure_context())
    start_component("kube-scheduler", argv, ready, timeout=60)


def kwok_config() -> Path:
    """Concatenate the stock KWOK stages with the project's own pod-completion stage."""
    stock = kwok_dir() / "stage"
    parts = [
        stock / "node" / "fast" / "node-initialize.yaml",
        stock / "pod" / "fast" / "pod-ready.yaml",
        stock / "pod" / "fast" / "pod-delete.yaml",
        HERE / "kwok" / "stages.yaml",
    ]
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise StepFailed(f"kwok: stage files missing: {', '.join(missing)}")
    path = STATE / "kwok.yaml"
    path.write_text("\n---\n".join(p.read_text().strip() for p in parts) + "\n")
    return path


def start_kwok(ctx: Context) -> None:
    argv = [
        str(kwok_dir() / "kwok"),
        f"--kubeconfig={ctx.kubeconfig}",
        f"--config={kwok_config()}",
        "--manage-all-nodes=false",
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-ip=127.0.0.1",
        "--node-port=10247",
        "--server-address=127.0.0.1:10247",
    ]
    start_component(
        "kwok",
        argv,
        lambda: (
            http_ok("http://127.0.0.1:10247/healthz")
            or http_ok("https://127.0.0.1:10247/healthz", context=insecure_context())
        ),
        timeout=60,
    )
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": KWOK_NODE,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": KWOK_NODE, "type": "kwok"},
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
        },
    }
    ctx.kubectl("apply", "-f", "-", step="kwok node", stdin=json.dumps(node))

    def node_ready() -> bool:
        out = subprocess.run(
            [
                str(kube_bin("kubectl")),
                f"--kubeconfig={ctx.kubeconfig}",
                "get",
                "node",
                KWOK_NODE,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
            ],
            capture_output=True,
            text=True,
        )
        return out.stdout.strip() == "True"

    wait_until("kwok", node_ready, timeout=60)
    progress(f"kwok: node {KWOK_NODE} is Ready")


def start_procnode(ctx: Context) -> None:
    """Start the agent of the node whose pods run as local processes (see procnode.py).

    The agent needs the kubernetes client, so it runs on the virtualenv of scripts/bootstrap.
    Its /healthz returns 200 once the node is Ready and schedulable.
    """
    python = HERE.parents[1] / ".venv" / "bin" / "python"
    if not python.exists():
        raise StepFailed(f"procnode: {python} is missing; run scripts/bootstrap first")
    argv = [
        str(python),
        str(HERE / "procnode.py"),
        f"--kubeconfig={ctx.kubeconfig}",
        f"--node-name={PROCESS_NODE}",
        f"--port={PROCESS_NODE_PORT}",
        f"--state-dir={STATE / 'procnode'}",
    ]
    url = f"https://127.0.0.1:{PROCESS_NODE_PORT}/healthz"
    ready = lambda: http_ok(url, context=insecure_context())
    start_component("procnode", argv, ready, timeout=60)
    progress(f"procnode: node {PROCESS_NODE} is Ready")


def kafka_started() -> bool:
    try:
        return "Kafka Server started" in (LOGS / "kafka.log").read_text(errors="replace")
    except OSError:
        return False


def start_kafka(ctx: Context) -> None:
    """Start the broker with its PLAINTEXT, SASL and TLS listeners (see kafka_security.py)."""
    # A broker started before the SASL and TLS listeners existed is restarted with them.
    if pid_of("kafka") is not None and kafka_started() and kafka_security.listeners_open():
        progress("kafka: already running")
        return
    stop("kafka")
    (LOGS / "kafka.log").unlink(missing_ok=True)
    data = STATE / "kafka"
    data.mkdir(parents=True, exist_ok=True)
    properties = data / "server.properties"
    template = (HERE / "kafka" / "server.properties").read_text()
    properties.write_text(
        template.format(
            log_dirs=data / "log",
            port=KAFKA_PORT,
            controller_port=KAFKA_CONTROLLER_PORT,
            **kafka_security.properties_values(),
        )
    )
    # The JAAS config in the file contains the PLAIN users' passwords.
    properties.chmod(0o600)
    java = [
        "java",
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'kafka' / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={LOGS}",
        "-cp",
        f"{kafka_lib()}/*",
    ]
    cluster_file = data / "cluster.id"
    if not cluster_file.exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        cluster_file.write_text(cluster_id)
    progress("kafka: formatting storage")
    run(
        [
            *java,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_file.read_text(),
            "-c",
            str(properties),
            "--ignore-formatted",
        ],
        step="kafka format",
    )
    started = time.monotonic()
    progress("kafka: starting")
    spawn("kafka", [*java, "kafka.Kafka", str(properties)])
    wait_until("kafka", kafka_started, timeout=90)
    progress(f"kafka: ready in {time.monotonic() - started:.1f}s")
    kafka_security.create_scram_users(java)


def write_env(ctx: Context) -> Path:
    values = {
        "JOBRUNNER_ENV_DIR": str(STATE),
        "KUBECONFIG": str(ctx.kubeconfig),
        "JOBRUNNER_TEST_KUBECTL": str(kube_bin("kubectl")),
        "JOBRUNNER_TEST_KAFKA": f"127.0.0.1:{KAFKA_PORT}",
        "JOBRUNNER_TEST_KWOK_NODE": KWOK_NODE,
        "JOBRUNNER_TEST_PROCESS_NODE": PROCESS_NODE,
        **kafka_security.env_values(),
        **pulsar.env_values(),
        **postgres.env_values(),
    }
    path = STATE / "env"
    path.write_text("".join(f"export {key}={value}\n" for key, value in values.items()))
    return path


# --- commands -------------------------------------------------------------------------------

STEPS: list[tuple[str, Callable[[Context], None]]] = [
    ("etcd", start_etcd),
    ("kube-apiserver", start_apiserver),
    ("kube-controller-manager", start_controller_manager),
    ("kube-scheduler", start_scheduler),
    ("kwok", start_kwok),
    ("procnode", start_procnode),
    ("kafka", start_kafka),
    ("pulsar", pulsar.start),
    ("pulsar-auth", pulsar.start_auth),
    ("postgres", postgres.start),
]


def up() -> None:
    started = time.monotonic()
    STATE.mkdir(parents=True, exist_ok=True)
    build()
    token = make_pki()
    ctx = Context(token=token, kubeconfig=write_kubeconfig(token))
    for _, start in STEPS:
        start(ctx)
    env = write_env(ctx)
    progress(f"up: all servers ready in {time.monotonic() - started:.0f}s; environment in {env}")


def down(*, purge: bool) -> None:
    for name, _ in reversed(STEPS):
        stop(name)
    if purge:
        progress(f"down: removing {STATE}")
        shutil.rmtree(STATE, ignore_errors=True)
    progress("down: all servers stopped")


def status() -> int:
    code = 0
    for name, _ in STEPS:
        pid = pid_of(name)
        print(f"{name:26} {f'running (pid {pid})' if pid else 'stopped'}")
        code |= pid is None
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build what is missing and start every server")
    down_parser = sub.add_parser("down", help="stop every server")
    down_parser.add_argument("--purge", action="store_true", help="also delete the state dir")
    sub.add_parser("status", help="show which servers run")
    sub.add_parser("build", help="only build or fetch the binaries and jars")
    args = parser.parse_args()
    try:
        if args.command == "up":
            up()
        elif args.command == "down":
            down(purge=args.purge)
        elif args.command == "build":
            build()
        else:
            return status()
    except StepFailed as error:
        progress(f"FAILED at {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
