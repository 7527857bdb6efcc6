"""Database URL helpers that keep passwords out of logs and messages."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# Query parameters that carry a credential, such as libpq's `password`.
SECRET_QUERY_WORDS = ("password", "passwd", "secret", "token", "sslkey")


def redact_url(url: str) -> str:
    """Return the URL with its password, and credential query parameters, replaced by `***`.

    A URL that does not parse is hidden whole, because any part of it could be a password.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "<unparseable database URL>"
    hidden = {
        key: "***"
        for key in parsed.query
        if any(word in key.lower() for word in SECRET_QUERY_WORDS)
    }
    if hidden:
        parsed = parsed.update_query_dict(hidden)
    return parsed.render_as_string(hide_password=True)
