"""Watch-backed caches that keep slim records instead of the client's model objects.

Each cache lists its resource once, then watches from the list's resourceVersion, and lists
again when the watch expires (410 Gone) or the connection drops. Raw JSON is parsed straight
into small frozen records, so thousands of Jobs cost a few hundred bytes each.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

R = TypeVar("R")

WATCH_TIMEOUT_SECONDS = 290
RETRY_SECONDS = 2.0
HTTP_GONE = 410

# (event type, record, previous record or None)
Listener = Callable[[str, Any, Any], None]


class WatchCache(Generic[R]):
    """A list-and-watch mirror of one resource type.

    `list_call` is a kubernetes client list function (with its positional and keyword
    arguments bound); `convert` turns one raw object into a record or None to skip it.
    Records are keyed by `namespace/name`. `index` maps a record to a secondary key (for
    example `namespace/owner`) so lookups by owner need no scan.
    """

    def __init__(
        self,
        *,
        name: str,
        list_call: Callable[..., Any],
        convert: Callable[[dict[str, Any]], R | None],
        index: Callable[[R], str | None] | None = None,
    ) -> None:
        self.name = name
        self._list_call = list_call
        self._convert = convert
        self._index_of = index
        self._lock = threading.Lock()
        self._records: dict[str, R] = {}
        self._index: dict[str, set[str]] = {}
        self._listeners: list[Listener] = []
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- reading ---

    def get(self, key: str) -> R | None:
        with self._lock:
            return self._records.get(key)

    def by_index(self, index_key: str) -> list[R]:
        with self._lock:
            return [self._records[key] for key in self._index.get(index_key, ())]

    def values(self) -> list[R]:
        with self._lock:
            return list(self._records.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    # --- writing ---

    def put(self, raw: dict[str, Any]) -> R | None:
        """Store an object this process just wrote, before its watch event arrives."""
        record = self._convert(raw)
        if record is not None:
            self._apply("ADDED", _key(raw), record)
        return record

    def _apply(self, event_type: str, key: str, record: R | None) -> None:
        with self._lock:
            previous = self._records.get(key)
            if previous is not None:
                self._unindex(key, previous)
            if event_type == "DELETED" or record is None:
                self._records.pop(key, None)
            else:
                self._records[key] = record
                self._reindex(key, record)
        if event_type == "DELETED":
            record = record if record is not None else previous
        if record is None:
            return
        for listener in self._listeners:
            try:
                listener(event_type, record, previous)
            except Exception:
                # A listener bug must not stop the watch that every poll depends on.
                log.exception("listener of the %s cache failed", self.name)

    def _reindex(self, key: str, record: R) -> None:
        if self._index_of is not None:
            index_key = self._index_of(record)
            if index_key is not None:
                self._index.setdefault(index_key, set()).add(key)

    def _unindex(self, key: str, record: R) -> None:
        if self._index_of is not None:
            index_key = self._index_of(record)
            if index_key is not None:
                members = self._index.get(index_key)
                if members is not None:
                    members.discard(key)
                    if not members:
                        del self._index[index_key]

    # --- the watch loop ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching. The thread is a daemon blocked in a read, so it is not joined."""
        self._stop.set()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._relist()
                failures = 0
                self._watch(version)
            except (ApiException, HTTPError, OSError, ValueError) as error:
                if self._stop.is_set():
                    return
                failures += 1
                # The first failure of a series is worth a warning; repeats are DEBUG.
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(
                    level,
                    "watch of %s failed, retrying in %.0fs: %s",
                    self.name,
                    RETRY_SECONDS,
                    _describe(error),
                )
                self._stop.wait(RETRY_SECONDS)

    def _relist(self) -> str:
        response = self._list_call(_preload_content=False)
        body = json.loads(response.data)
        fresh: dict[str, R] = {}
        for raw in body.get("items") or []:
            record = self._convert(raw)
            if record is not None:
                fresh[_key(raw)] = record
        with self._lock:
            gone = [key for key in self._records if key not in fresh]
        for key in gone:
            self._apply("DELETED", key, None)
        for key, record in fresh.items():
            self._apply("MODIFIED" if self.get(key) is not None else "ADDED", key, record)
        self._ready.set()
        return str(body.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, version: str) -> None:
        response = self._list_call(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_SECONDS,
            _preload_content=False,
        )
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self._stop.is_set() or not line:
                    continue
                event = json.loads(line)
                raw = event.get("object") or {}
                kind = event.get("type")
                if kind == "ERROR":
                    if raw.get("code") == HTTP_GONE:
                        return
                    raise ApiException(status=raw.get("code"), reason=raw.get("message"))
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._apply(kind, _key(raw), self._convert(raw))
        finally:
            response.release_conn()


def _key(raw: dict[str, Any]) -> str:
    metadata = raw.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return f"{type(error).__name__}: {error}"
