"""Database URL helpers that keep passwords out of logs and messages."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def redact_url(url: str) -> str:
    """Return the URL with its password replaced by `***`; unparseable URLs are hidden whole."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"
