"""The SASL and TLS listeners of the test broker, their credentials, and SCRAM users for tests.

tests/env/kafka_security.py starts the listeners and writes the credentials file; the env
file names both. Tests that need a password of their own create a SCRAM user here, through
the PLAINTEXT listener, and delete it afterwards.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.admin import KafkaAdminClient, UserScramCredentialDeletion, UserScramCredentialUpsertion
from kafka.structs import OffsetAndMetadata

from tests.integration.support import START_HINT, port_open, read_env_file

SASL_MECHANISMS = {
    "plaintext": "PLAIN",
    "scram_sha256": "SCRAM-SHA-256",
    "scram_sha512": "SCRAM-SHA-512",
}


@dataclass(frozen=True)
class KafkaSecurity:
    """Addresses of the secured listeners and the credentials that the environment made."""

    plaintext: str
    sasl: str
    tls: str
    mtls: str
    sasl_ssl: str
    # Kept out of the repr, which pytest prints when a test fails.
    credentials: dict[str, Any] = field(repr=False)

    def user(self, sasl: str) -> tuple[str, str]:
        """Return (username, password) of the environment's user for a `sasl` mode."""
        user = self.credentials["users"][SASL_MECHANISMS[sasl]]
        return str(user["username"]), str(user["password"])

    def pem(self, name: str) -> str:
        """Return the PEM text of `ca`, `untrusted_ca`, `client_cert`, `client_key` and others."""
        return Path(self.credentials[name]).read_text()

    def client_tls(self) -> dict[str, str]:
        """Return the auth parameters of mutual TLS with the environment's client certificate."""
        return {
            "tls": "enable",
            "ca": self.pem("ca"),
            "cert": self.pem("client_cert"),
            "key": self.pem("client_key"),
        }


def load_kafka_security() -> KafkaSecurity:
    """Read the listeners from the env file, or fail the test with the command that starts them."""
    values = read_env_file()
    names = ("SASL", "TLS", "MTLS", "SASL_SSL", "CREDENTIALS")
    missing = [name for name in names if f"JOBRUNNER_TEST_KAFKA_{name}" not in values]
    if missing:
        pytest.fail(
            f"the env file has no JOBRUNNER_TEST_KAFKA_{missing[0]}: the broker runs without its "
            f"SASL and TLS listeners; {START_HINT}",
            pytrace=False,
        )
    security = KafkaSecurity(
        plaintext=values["JOBRUNNER_TEST_KAFKA"],
        sasl=values["JOBRUNNER_TEST_KAFKA_SASL"],
        tls=values["JOBRUNNER_TEST_KAFKA_TLS"],
        mtls=values["JOBRUNNER_TEST_KAFKA_MTLS"],
        sasl_ssl=values["JOBRUNNER_TEST_KAFKA_SASL_SSL"],
        credentials=json.loads(Path(values["JOBRUNNER_TEST_KAFKA_CREDENTIALS"]).read_text()),
    )
    for address in (security.sasl, security.tls, security.mtls, security.sasl_ssl):
        if not port_open(address):
            pytest.fail(f"Kafka is not listening on {address}; {START_HINT}", pytrace=False)
    return security


class ScramUsers:
    """Creates SCRAM users with random passwords through the PLAINTEXT listener.

    Each password carries a recognisable prefix, so a test can search output for it.
    """

    def __init__(self, bootstrap: str) -> None:
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests")
        self.created: list[str] = []

    def create(self, mechanism: str = "SCRAM-SHA-256") -> tuple[str, str]:
        """Create a user with `mechanism` and return (username, password)."""
        username = f"user-{uuid.uuid4().hex[:8]}"
        password = f"canary-{secrets.token_hex(12)}"
        self.set_password(username, password, mechanism)
        self.created.append(username)
        return username, password

    def set_password(self, username: str, password: str, mechanism: str) -> None:
        upsertion = UserScramCredentialUpsertion(username, mechanism, password)
        errors = self.admin.alter_user_scram_credentials([upsertion])
        assert errors == {username: None}, f"setting the SCRAM password of {username} failed"

    def close(self) -> None:
        deletions = [
            UserScramCredentialDeletion(username, mechanism)
            for username in self.created
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
        ]
        if deletions:
            # Deleting a mechanism that the user lacks fails only that entry.
            self.admin.alter_user_scram_credentials(deletions)
        self.admin.close()


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit `offsets` (partition to offset) for `group` through the PLAINTEXT listener."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tests")
    try:
        admin.alter_group_offsets(
            group,
            {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for partition, offset in offsets.items()
            },
        )
    finally:
        admin.close()
