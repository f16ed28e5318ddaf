"""The response cache: answers already received, kept in SQLite and given again instead of sent.

    client = APIClient(cache="answers.sqlite")           # or cache=ResponseCache(path, mode)
    client.make_requests(requests)                       # sent, answers stored
    client.make_requests(requests)                       # answered from the file, nothing sent

The coordinator looks each prepared request up before the spend cap and the rate limiter see it
(a hit is never sent, never waits, never counts against ``max_cost``) and stores each successful
answer; errors are never stored. Only the coordinator process touches the file.

The key is a SHA-256 of the prepared request (after sanitizing and truncation) without what
says who pays or how long to wait (``uncached_parameters``): credentials (``api_key``,
``organization``, cloud tokens, auth headers) so that a rotated key still hits and no secret, not
even hashed, is written into a file people share; ``timeout`` and retry settings, which do not
change the answer. ``api_base`` is part of the key, without its user-info and query string
(credentials travel there too): the same model name at two endpoints (a local server and the
provider, the simulator) is two different models.

Modes: ``"use"`` looks up and stores, ``"refresh"`` sends everything and overwrites what it
stored, ``"off"`` neither (the file is not opened). One file may be shared by threads, processes
and concurrent jobs: SQLite in WAL mode, each write one autocommitted statement, and a busy
timeout for writers that meet.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from llm_api_client._constants import CACHE_BUSY_TIMEOUT_SECONDS, CACHE_MODES
from llm_api_client._redact import is_secret_key
from llm_api_client.engine.messages import Outcome
from llm_api_client.errors import ConfigurationError
from llm_api_client.providers.answers import Usage
from llm_api_client.providers.stored import dump_response, load_response
from llm_api_client.records import UsageRecord

__all__ = ["CACHE_MODES", "CacheSpec", "ResponseCache", "cache_key", "open_cache"]

# Left out of the key besides credentials (``_redact.is_secret_key``): they say who pays, where
# the bill goes or how long to wait, not what is asked.
_NOT_CONTENT = frozenset(
    {
        "organization",
        "aws_access_key_id",
        "aws_profile_name",
        "timeout",
        "num_retries",
        "max_retries",
        "metadata",
    }
)
_HEADERS = ("extra_headers", "headers")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS responses ("
    " key TEXT PRIMARY KEY, model TEXT NOT NULL, response TEXT NOT NULL,"
    " cost REAL NOT NULL, stored_at REAL NOT NULL)"
)


def uncached_parameters(request: Mapping[str, Any]) -> list[str]:
    """The parameters of ``request`` the key leaves out (for the docs and for tests)."""
    return sorted(key for key in request if _left_out(key))


def cache_key(request: Mapping[str, Any]) -> str:
    """The hex SHA-256 of ``request``'s content (see the module docstring for what is left out)."""
    content = {key: _keyed(key, value) for key, value in request.items() if not _left_out(key)}
    for key in _HEADERS:  # headers that carried only credentials are as good as none
        if content.get(key) == {}:
            del content[key]
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _left_out(key: str) -> bool:
    return is_secret_key(key) or key in _NOT_CONTENT


def _keyed(key: str, value: Any) -> Any:
    if key in _HEADERS and isinstance(value, Mapping):
        return {name: v for name, v in value.items() if not is_secret_key(str(name))}
    if key == "api_base" and isinstance(value, str):
        return _bare_url(value)
    return value


def _bare_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class ResponseCache:
    """Answers by request content, in one SQLite file; safe across threads and processes.

    Example::

        cache = ResponseCache("answers.sqlite", mode="refresh")   # re-ask, keep the new answers
        client = APIClient(cache=cache)
    """

    def __init__(self, path: str | os.PathLike[str], mode: str = "use") -> None:
        if mode not in CACHE_MODES:
            raise ConfigurationError(f"cache_mode must be one of {CACHE_MODES}, not {mode!r}")
        self.path = os.fspath(path)
        self.mode = mode
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0

    def lookup(self, index: int, request: Mapping[str, Any]) -> Outcome | None:
        """The stored answer to ``request`` as an outcome for ``index``; None on a miss."""
        if self.mode != "use":
            return None
        row = self._execute(
            "SELECT response, cost FROM responses WHERE key = ?", (cache_key(request),)
        ).fetchone()
        if row is None:
            return None
        text, cost = row
        response = load_response(text)
        return Outcome(index, response, None, _hit_record(index, request, response, cost))

    def remember(self, request: Mapping[str, Any], outcome: Outcome) -> None:
        """Store a successful ``outcome``'s answer to ``request`` (failures are not stored)."""
        if self.mode == "off" or not outcome.ok or outcome.record.cache_hit:
            return
        text = dump_response(outcome.response)
        if text is None:
            return
        row = (cache_key(request), outcome.record.model, text, outcome.record.cost, time.time())
        self._execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", row)

    def __len__(self) -> int:
        return int(self._execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the file (it is opened again when next used)."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def __repr__(self) -> str:
        return f"ResponseCache({self.path!r}, mode={self.mode!r})"

    def _execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._connect().execute(sql, parameters)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            # A forked child must not use its parent's connection: it opens its own.
            self._connection = _open(self.path)
            self._pid = os.getpid()
        return self._connection


def _open(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path,
        timeout=CACHE_BUSY_TIMEOUT_SECONDS,
        isolation_level=None,  # autocommit: each write is its own short transaction
        check_same_thread=False,  # used under the cache's lock
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses no committed answer
    connection.execute(_SCHEMA)
    return connection


def _hit_record(index: int, request: Mapping[str, Any], response: Any, cost: float) -> UsageRecord:
    """The usage the stored answer had when it was paid for; ``cost`` is what the hit saved."""
    model = str(request.get("model", ""))
    return UsageRecord.of(
        index, model, Usage.of(response), cost=cost, finished_at=time.time(), cache_hit=True
    )


# What ``APIClient(cache=...)`` accepts: a path, a cache, or None.
CacheSpec = str | os.PathLike[str] | ResponseCache | None


def open_cache(cache: CacheSpec, mode: str) -> ResponseCache | None:
    """What ``APIClient(cache=, cache_mode=)`` uses: None when there is no cache or it is off."""
    if mode not in CACHE_MODES:
        raise ConfigurationError(f"cache_mode must be one of {CACHE_MODES}, not {mode!r}")
    if cache is None or mode == "off":
        return None
    if isinstance(cache, ResponseCache):
        return cache if mode == "use" else ResponseCache(cache.path, mode)
    return ResponseCache(cache, mode)
