"""Ledger databases for the tests: a SQLite file, or a new database on the test PostgreSQL.

`database_url` runs a test once on each: `[sqlite]` needs no server, and `[postgresql]`
(marked `integration`) creates a database of its own on the server of tests/env and drops it
afterwards. When that server is down, the PostgreSQL variant fails with the command that
starts it; it never skips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from jobrunner.ledger.schema import upgrade
from jobrunner.ledger.store import LedgerStore
from jobrunner.ledger.urls import redact_url
from tests.integration.support import START_HINT, read_env_file

POSTGRES_URL_VARIABLE = "JOBRUNNER_TEST_POSTGRES_URL"


def postgres_server_url() -> str:
    """The test server's URL: from the environment, else from the env file of tests/env/up."""
    url = os.environ.get(POSTGRES_URL_VARIABLE) or read_env_file().get(POSTGRES_URL_VARIABLE)
    if not url:
        pytest.fail(f"{POSTGRES_URL_VARIABLE} is not set; {START_HINT}", pytrace=False)
    return url


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a database with a unique name on the test server, yield its URL, then drop it."""
    server = make_url(postgres_server_url())
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"test_{uuid.uuid4().hex[:16]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    except OperationalError as error:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {redact_url(str(server))} is not reachable "
            f"({str(error.orig).strip()}); {START_HINT}",
            pytrace=False,
        )
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends the sessions that a failed test left open.
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty ledger database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of an empty database on the test PostgreSQL, for tests that need PostgreSQL."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[LedgerStore]:
    """A ledger store on a database upgraded to the head revision."""
    upgrade(database_url)
    ledger = LedgerStore.open(database_url)
    yield ledger
    ledger.close()
