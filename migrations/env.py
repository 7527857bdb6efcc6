"""Alembic environment of the jobrunner ledger; `jobrunner db upgrade` runs it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from jobrunner.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # render_as_batch lets later revisions alter columns on SQLite. Alembic compares
        # column types by default but server defaults only when asked, so `alembic check`
        # would miss a default that the models and the migrations disagree on.
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
