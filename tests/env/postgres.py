"""A PostgreSQL server for the ledger tests, from Debian's `postgresql` package.

The step creates its own cluster in the state directory with `initdb` (Debian's default
cluster 15/main is left alone) and runs it under envctl's pid file, so `tests/env/down`
stops it with the other servers. The server:

- listens on 127.0.0.1:5433 only, plus a Unix socket in the cluster's directory;
- has the login role `jobrunner` (password `jobrunner`, allowed to create databases, so each
  test can create and drop its own database, and a member of pg_signal_backend, so it can
  drop one while an autovacuum worker is in it) and a database of the same name;
- accepts TCP logins with scram-sha-256 and socket logins without a password, which only the
  cluster's owner and root can reach;
- runs with fsync, synchronous commit and full-page writes off, which is fast, and safe for
  test data that need not survive a power loss;
- uses the time zone Asia/Kolkata (UTC+05:30) for its sessions, so a test fails where code
  or SQL assumes that the database server runs on UTC.

`initdb` and `postgres` refuse to run as root, so as root every server command runs as the
`postgres` system user that the package creates. Without the package installed, the step
installs it with apt-get as root and fails with the package's name otherwise.
The module uses the standard library only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

POSTGRES_VERSION = os.environ.get("POSTGRES_VERSION", "15")
PACKAGE = "postgresql"
NAME = "postgres"
PORT = 5433
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
USER = "jobrunner"
# A test credential: the server only listens on loopback.
PASSWORD = "jobrunner"
DATABASE = "jobrunner"
TIME_ZONE = "Asia/Kolkata"

SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "port": str(PORT),
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "timezone": TIME_ZONE,
    "log_timezone": "UTC",
}


def _envctl() -> ModuleType:
    """Return envctl's process helpers.

    envctl.py imports this module and usually runs as `__main__`, so importing it back at
    the top of this file would be circular. By the time a step runs, envctl is complete.
    """
    if "__main__" in sys.modules and hasattr(sys.modules["__main__"], "STEPS"):
        return sys.modules["__main__"]
    import envctl

    return envctl


def bin_dir() -> Path:
    return Path(f"/usr/lib/postgresql/{POSTGRES_VERSION}/bin")


def cluster_dir() -> Path:
    """The cluster's directory: its Unix socket, and its data in `data/`."""
    return _envctl().STATE / NAME


def data_dir() -> Path:
    return cluster_dir() / "data"


def url() -> str:
    """The SQLAlchemy URL of the test database, as the env file gives it to the tests."""
    return f"postgresql+psycopg://{USER}:{PASSWORD}@127.0.0.1:{PORT}/{DATABASE}"


def env_values() -> dict[str, str]:
    """Return the lines that envctl writes into the env file for the ledger tests."""
    return {"JOBRUNNER_TEST_POSTGRES_URL": url()}


def as_server_user(argv: list[str]) -> list[str]:
    """Prefix `argv` so that it runs as the postgres system user when this script is root.

    setpriv replaces itself with the command instead of forking, so the pid envctl records
    is that of the command.
    """
    if os.geteuid() != 0:
        return argv
    return [
        "setpriv",
        f"--reuid={SYSTEM_USER}",
        f"--regid={SYSTEM_USER}",
        "--init-groups",
        "--",
        *argv,
    ]


def ensure_installed() -> None:
    env = _envctl()
    initdb = bin_dir() / "initdb"
    if initdb.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise env.StepFailed(
            f"{NAME}: {initdb} is missing; install the Debian package {PACKAGE} "
            f"(apt-get install -y {PACKAGE}) and run tests/env/up again"
        )
    progress = env.progress
    progress(f"{NAME}: installing the Debian package {PACKAGE}")
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", PACKAGE]
    # An outdated package list can name versions the archive no longer has; refresh it once.
    first_try = subprocess.run(
        install, env={**os.environ, **apt_env}, capture_output=True, check=False
    )
    if first_try.returncode != 0:
        env.run(["apt-get", "update", "-q"], step=f"{NAME} install", env=apt_env)
        env.run(install, step=f"{NAME} install", env=apt_env)
    if not initdb.exists():
        raise env.StepFailed(
            f"{NAME}: the package {PACKAGE} is installed but {initdb} is missing; "
            f"this step needs PostgreSQL {POSTGRES_VERSION} (set POSTGRES_VERSION to another)"
        )


def prepare_directory() -> None:
    """Create the cluster directory, owned by the postgres system user when running as root."""
    directory = cluster_dir()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if os.geteuid() == 0:
        account = pwd.getpwnam(SYSTEM_USER)
        os.chown(directory, account.pw_uid, account.pw_gid)


def initialize() -> None:
    """Run initdb unless the data directory contains a cluster of this major version."""
    env = _envctl()
    version_file = data_dir() / "PG_VERSION"
    if version_file.exists() and version_file.read_text().strip() == POSTGRES_VERSION:
        return
    shutil.rmtree(data_dir(), ignore_errors=True)
    env.progress(f"{NAME}: creating a PostgreSQL {POSTGRES_VERSION} cluster in {data_dir()}")
    env.run(
        as_server_user(
            [
                str(bin_dir() / "initdb"),
                f"--pgdata={data_dir()}",
                f"--username={SUPERUSER}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        ),
        step=f"{NAME} initdb",
    )


def ready() -> bool:
    result = subprocess.run(
        [str(bin_dir() / "pg_isready"), "--quiet", "--host=127.0.0.1", f"--port={PORT}"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def psql(sql: str) -> str:
    """Run SQL as the superuser over the cluster's Unix socket and return its output."""
    return str(
        _envctl().run(
            [
                str(bin_dir() / "psql"),
                f"--host={cluster_dir()}",
                f"--port={PORT}",
                f"--username={SUPERUSER}",
                "--dbname=postgres",
                "--no-psqlrc",
                "--tuples-only",
                "--no-align",
                "--set=ON_ERROR_STOP=1",
                f"--command={sql}",
            ],
            step=f"{NAME} setup",
        )
    )


def create_test_role() -> None:
    """Create the test role and its database, or leave them as they are."""
    psql(
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') THEN "
        f"CREATE ROLE {USER} LOGIN CREATEDB PASSWORD '{PASSWORD}'; "
        "END IF; END $$"
    )
    # DROP DATABASE ... WITH (FORCE) also ends the autovacuum workers in that database, and
    # only a superuser or a member of pg_signal_backend may end them.
    psql(f"GRANT pg_signal_backend TO {USER}")
    if not psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'").strip():
        psql(f"CREATE DATABASE {DATABASE} OWNER {USER}")


def supervised(argv: list[str]) -> list[str]:
    """Wrap the server command in a shell that turns envctl's SIGTERM into a fast shutdown.

    On SIGTERM the postmaster makes a smart shutdown, which waits for every client session to
    end, so a connected runner or test would hold `tests/env/down` until envctl kills the
    server. SIGINT requests a fast shutdown, which ends the sessions and checkpoints first.
    """
    # The first `wait` returns when the trap runs; the second waits for the server to exit.
    script = '"$@" & trap "kill -INT $!" TERM; wait $!; wait $!'
    return ["sh", "-c", script, NAME, *argv]


def start(ctx: object) -> None:
    """Start the test cluster, or reuse the one that runs; an envctl step."""
    env = _envctl()
    if env.pid_of(NAME) is None or not ready():
        ensure_installed()
        env.stop(NAME)
        prepare_directory()
        initialize()
        settings = [f"--{key}={value}" for key, value in SERVER_SETTINGS.items()]
        argv = [
            str(bin_dir() / "postgres"),
            "-D",
            str(data_dir()),
            *settings,
            f"--unix_socket_directories={cluster_dir()}",
        ]
        started = time.monotonic()
        env.progress(f"{NAME}: starting")
        env.spawn(NAME, as_server_user(supervised(argv)))
        env.wait_until(NAME, ready, timeout=60)
        env.progress(f"{NAME}: ready in {time.monotonic() - started:.1f}s on 127.0.0.1:{PORT}")
    else:
        env.progress(f"{NAME}: already running")
    create_test_role()
