"""Schema revisions: find the Alembic scripts, upgrade a database, refuse a stale one."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from jobrunner.errors import LedgerError, SchemaOutdatedError
from jobrunner.ledger.urls import redact_url

UPGRADE_HINT = "run `jobrunner db upgrade` with the same --database-url"


def describe_database_error(error: SQLAlchemyError) -> str:
    """Name the error and the driver's first line, such as `connection refused`.

    Drivers do not put passwords in these messages, but statements can carry values, so only
    the first line is kept and the statement SQLAlchemy appends is left out.
    """
    original = getattr(error, "orig", None)
    if original is None:
        return type(error).__name__
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    return f"{type(original).__name__}: {first_line[:300]}" if first_line else type(error).__name__


def migrations_dir() -> Path:
    """Return the Alembic script directory: inside the installed wheel, or the source checkout's."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise LedgerError("the ledger migrations are missing from this installation; reinstall it")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # Alembic's config treats % as interpolation; escape it so URL-encoded passwords survive.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise LedgerError("the ledger migrations have no head revision")
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as error:
        raise LedgerError(
            f"cannot read the schema revision of {redact_url(str(engine.url))}: "
            f"{describe_database_error(error)}"
        ) from error


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutdatedError unless the database is at the code's head revision."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = redact_url(engine.url.render_as_string(hide_password=False))
    if current is None:
        raise SchemaOutdatedError(f"the ledger at {where} has no schema yet; {UPGRADE_HINT}")
    raise SchemaOutdatedError(
        f"the ledger at {where} is at schema revision {current}, this jobrunner needs {head}; "
        f"{UPGRADE_HINT}"
    )


def upgrade(url: str, revision: str = "head") -> None:
    try:
        command.upgrade(alembic_config(url), revision)
    except SQLAlchemyError as error:
        raise LedgerError(
            f"upgrading the ledger at {redact_url(url)} failed: {describe_database_error(error)}"
        ) from error
    except (ImportError, ValueError) as error:
        raise LedgerError(
            f"invalid database URL {redact_url(url)}: {type(error).__name__}; "
            "give sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        ) from error


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
