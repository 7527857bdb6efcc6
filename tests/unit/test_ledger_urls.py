"""Unit tests of the redaction that keeps database passwords out of messages and reprs."""

from __future__ import annotations

import pytest

from jobrunner.config import RunnerSettings
from jobrunner.ledger.urls import redact_url

SECRET = "s3cret"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "postgresql+psycopg://u:s3cret@h/db", "postgresql+psycopg://u:***@h/db", id="password"
        ),
        pytest.param(
            "postgresql+psycopg://u:s3cret@h:5432/db?sslmode=require",
            "postgresql+psycopg://u:***@h:5432/db?sslmode=require",
            id="password-with-port-and-query",
        ),
        pytest.param(
            "postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db", id="no-password"
        ),
        pytest.param("sqlite:///var/lib/ledger.db", "sqlite:///var/lib/ledger.db", id="sqlite"),
        pytest.param("not a URL s3cret", "<unparseable database URL>", id="unparseable"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            "postgresql+psycopg://u:s3cret@h:port/db",
            id="non-numeric-port",
        ),
        pytest.param(
            "postgresql+psycopg://u@h/db?password=s3cret",
            id="password-query-parameter",
        ),
    ],
)
def test_redact_url_hides_password(url: str) -> None:
    assert SECRET not in redact_url(url)


def test_runner_settings_repr_hides_password() -> None:
    settings = RunnerSettings(database_url="postgresql+psycopg://u:s3cret@h/db")

    assert SECRET not in repr(settings)
    assert "postgresql+psycopg://u:***@h/db" in repr(settings)
