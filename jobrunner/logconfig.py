"""Logging set-up: text or JSON lines on stderr, with fixed context keys.

Context travels in `extra={...}` with the keys namespace, scaled_job, trigger and job, so the
JSON format can index them and the text format can append them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

CONTEXT_KEYS = ("namespace", "scaled_job", "trigger", "job", "broker")


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...` with the context keys that are present."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [f"{key}={getattr(record, key)}" for key in CONTEXT_KEYS if hasattr(record, key)]
        return f"{line} {' '.join(context)}" if context else line


def configure_logging(*, level: str = "INFO", log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
        )
    else:
        formatter = TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Client libraries log each failed connection attempt, some at ERROR, on every poll. The
    # runner reports those failures itself, once, so their logs show only at DEBUG.
    library_level = logging.WARNING if root.level <= logging.DEBUG else logging.CRITICAL
    # httpx logs every request at INFO with its full URL, which can carry a password, so it
    # is held to WARNING even at DEBUG.
    for noisy in ("kafka", "kubernetes", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(library_level)
    for quiet in ("httpx", "httpcore"):
        logging.getLogger(quiet).setLevel(max(library_level, logging.WARNING))
    # APScheduler warns whenever a poll is skipped because the previous one still runs. With
    # coalescing that is the intended behaviour for a slow broker, and the trigger's own
    # failure is already logged, so only its errors are shown.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))


def context(**values: Any) -> dict[str, Any]:
    """Build the `extra` mapping of a log call from the fixed context keys."""
    unknown = set(values) - set(CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"unknown log context keys: {sorted(unknown)}")
    return values
