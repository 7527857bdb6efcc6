"""TLS material, SASL users and the extra listeners of the test Kafka broker.

Besides PLAINTEXT on 9092, which the other tests use, the broker listens on loopback with:

- 9094 SASL_PLAINTEXT, with the PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 mechanisms;
- 9095 SSL, where only the broker presents a certificate;
- 9096 SSL with `ssl.client.auth=required` (mutual TLS);
- 9097 SASL_SSL, with the same mechanisms as 9094.

The controller and inter-broker listeners stay PLAINTEXT.

`ensure_material()` runs once and writes into STATE/kafka-security (mode 0700). It creates a
test CA, a broker certificate for IP:127.0.0.1 and a client certificate signed by the CA, whose
key it stores both unencrypted and encrypted. It also creates a second CA that the broker does
not trust, and a random password for one user per SASL mechanism. credentials.json (mode 0600)
lists the users, passwords and PEM paths for the tests.

PLAIN users are defined by the JAAS config in server.properties. SCRAM users live in the
cluster metadata, so `create_scram_users()` writes them through the PLAINTEXT listener after
each start. The module uses the standard library, openssl and the broker's own jars only.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent

SASL_PORT = 9094
TLS_PORT = 9095
MTLS_PORT = 9096
SASL_SSL_PORT = 9097

# One user per mechanism, so a client that sends the wrong mechanism fails to authenticate.
USERS = {
    "PLAIN": "plain-user",
    "SCRAM-SHA-256": "scram256-user",
    "SCRAM-SHA-512": "scram512-user",
}
SCRAM_ITERATIONS = 8192


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


def security_dir() -> Path:
    return Path(_envctl().STATE) / "kafka-security"


def credentials_file() -> Path:
    return security_dir() / "credentials.json"


# --- certificates and passwords -------------------------------------------------------------


def ensure_material() -> dict[str, Any]:
    """Create the certificates and passwords once; return the contents of credentials.json."""
    path = credentials_file()
    if path.exists():
        credentials: dict[str, Any] = json.loads(path.read_text())
        return credentials
    env = _envctl()
    directory = security_dir()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    env.progress("kafka: creating a test CA, broker and client certificates, SASL users")

    def openssl(command: str) -> None:
        # Every path is a plain file name in `directory`, so splitting on spaces is safe.
        env.run(["openssl", *command.split()], step="kafka pki", cwd=directory)

    for ca in ("ca", "untrusted-ca"):
        openssl(
            f"req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout {ca}.key -out {ca}.crt "
            f"-subj /CN=jobrunner-kafka-{ca}"
        )
    extensions = {
        "broker": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for name, extension in extensions.items():
        (directory / f"{name}.ext").write_text(extension)
        # `req -nodes` writes a PKCS#8 key, the only form a Kafka PEM keystore reads.
        openssl(
            f"req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr "
            f"-subj /CN=jobrunner-kafka-{name}"
        )
        openssl(
            f"x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 "
            f"-out {name}.crt -extfile {name}.ext"
        )
    # The broker's PEM keystore is one file with the private key and the certificate chain.
    broker_pem = (directory / "broker.key").read_text() + (directory / "broker.crt").read_text()
    (directory / "broker.pem").write_text(broker_pem)

    key_password = secrets.token_urlsafe(18)
    password_file = directory / "client-key.password"
    password_file.write_text(key_password)
    openssl(
        "pkcs8 -topk8 -v2 aes-256-cbc -in client.key -out client-encrypted.key "
        f"-passout file:{password_file.name}"
    )
    password_file.unlink()

    credentials = {
        "ca": str(directory / "ca.crt"),
        "untrusted_ca": str(directory / "untrusted-ca.crt"),
        "client_cert": str(directory / "client.crt"),
        "client_key": str(directory / "client.key"),
        "client_key_encrypted": str(directory / "client-encrypted.key"),
        "client_key_password": key_password,
        "users": {
            mechanism: {"username": username, "password": secrets.token_urlsafe(18)}
            for mechanism, username in USERS.items()
        },
    }
    for item in directory.iterdir():
        item.chmod(0o600)
    # Written last and atomically, so an interrupted run starts over on the next `up`.
    staging = path.with_suffix(".tmp")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(credentials, file, indent=2)
    staging.rename(path)
    return credentials


# --- broker configuration -------------------------------------------------------------------


def properties_values() -> dict[str, str]:
    """Return the security placeholders of tests/env/kafka/server.properties."""
    credentials = ensure_material()
    plain = credentials["users"]["PLAIN"]
    directory = security_dir()
    return {
        "sasl_port": str(SASL_PORT),
        "tls_port": str(TLS_PORT),
        "mtls_port": str(MTLS_PORT),
        "sasl_ssl_port": str(SASL_SSL_PORT),
        "plain_users": f'user_{plain["username"]}="{plain["password"]}"',
        "keystore": str(directory / "broker.pem"),
        "truststore": str(directory / "ca.crt"),
    }


def create_scram_users(java: list[str]) -> None:
    """Create or update the SCRAM users through the PLAINTEXT listener.

    `java` is the JVM command line with the broker's classpath. The passwords travel on
    stdin rather than on the command line, where any local user could read them.
    """
    env = _envctl()
    scram_users = {
        mechanism: user
        for mechanism, user in ensure_material()["users"].items()
        if mechanism.startswith("SCRAM-")
    }
    lines = "".join(
        f"{mechanism} {user['username']} {user['password']}\n"
        for mechanism, user in scram_users.items()
    )
    argv = [
        *java,
        str(HERE / "kafka" / "ScramUsers.java"),
        f"127.0.0.1:{env.KAFKA_PORT}",
        str(SCRAM_ITERATIONS),
    ]
    result = subprocess.run(argv, input=lines, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise env.StepFailed("kafka scram users: ScramUsers.java failed:\n  " + "\n  ".join(output))
    names = ", ".join(user["username"] for user in scram_users.values())
    env.progress(f"kafka: SCRAM users {names} are set")


def listeners_open() -> bool:
    """Check that the broker accepts TCP connections on every SASL and TLS port."""
    for port in (SASL_PORT, TLS_PORT, MTLS_PORT, SASL_SSL_PORT):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
        except OSError:
            return False
    return True


def env_values() -> dict[str, str]:
    """Return the lines that envctl writes into the env file for the Kafka security tests."""
    return {
        "JOBRUNNER_TEST_KAFKA_SASL": f"127.0.0.1:{SASL_PORT}",
        "JOBRUNNER_TEST_KAFKA_TLS": f"127.0.0.1:{TLS_PORT}",
        "JOBRUNNER_TEST_KAFKA_MTLS": f"127.0.0.1:{MTLS_PORT}",
        "JOBRUNNER_TEST_KAFKA_SASL_SSL": f"127.0.0.1:{SASL_SSL_PORT}",
        "JOBRUNNER_TEST_KAFKA_CREDENTIALS": str(credentials_file()),
    }
