"""Batch files: the JSONL input read as a stream, the JSONL output written durably, resume.

How ``llm-api-client run`` moves rows (each box owns what is listed under it)::

    requests.jsonl ─> InputReader ─── BatchRequest ──> engine ──> Result ─┐
                      (done ids,  └── MalformedLine / DuplicateLine ──────┤
                       seen ids)                                          v
                                         output.jsonl  <── JsonlAppender(success_row / error_row)
                                         failures.jsonl <── JsonlAppender(failure_request)

Formats:

* input: one JSON object per line, either the OpenAI Batch API request format
  (``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``, or
  ``"url": "/v1/embeddings"`` with a body holding ``input`` instead of ``messages``) or a plain
  litellm request dict, whose ``custom_id`` is then made from its content (``content_id``):
  ``content-<hash>-<k>`` for the k-th line of the file with that content. Editing, inserting or
  moving lines between resumed runs therefore never pairs an answer with another row: an edited
  line is a new row (sent), an unchanged one keeps its id (skipped once answered), and identical
  lines stay distinct rows. A malformed line without a usable ``custom_id`` of its own is named
  ``line-<n>`` (n: its 1-based line number);
* output: the OpenAI Batch output format, one line per ``custom_id``:
  ``{"id", "custom_id", "response": {"status_code", "request_id", "body"} | null,
  "error": {"code", "message"} | null}``, plus ``"cost"`` (USD) on answered rows;
* failures: failed requests in the Batch input format, credentials removed, ready to be re-run.

Durability: every row is one ``os.write`` of a complete line to an ``O_APPEND`` descriptor, so
a crash (even ``kill -9``) leaves at most one torn final line; ``compact_output`` discards it.

Resume: ``compact_output`` rewrites an existing output keeping only its successful rows (first
per ``custom_id``) and returns their ids; the reader skips those ids, so failed and unanswered
rows are sent again and every ``custom_id`` ends up in the output exactly once. The ids are held
as a ``set`` of strings: about 60-100 bytes each, so 1 million rows cost well under 100 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from llm_api_client._redact import REDACTED, is_secret_key, redact_text, redact_url
from llm_api_client.providers.answers import request_id, response_headers
from llm_api_client.request_kind import CHAT_URL, endpoint_url

__all__ = [
    "BATCH_URL",
    "BatchRequest",
    "DuplicateLine",
    "InputReader",
    "JsonlAppender",
    "MalformedLine",
    "compact_output",
    "content_id",
    "count_lines",
    "error_row",
    "failure_request",
    "is_success_row",
    "line_id",
    "parse_line",
    "strip_credentials",
    "success_row",
]

BATCH_URL = CHAT_URL
_BATCH_KEYS = ("custom_id", "method", "url", "body")
_HEADER_KEYS = ("extra_headers", "headers")

# fsync the output every this many rows or seconds, whichever comes first. Each row is already
# in the OS page cache when os.write returns (it survives the process being killed); fsync only
# matters for a power loss, and one per ~200 ms bounds that loss without costing throughput
# (an fsync costs 1-10 ms on SSDs, 20 per second at most).
FSYNC_EVERY_ROWS = 1_000
FSYNC_INTERVAL_SECONDS = 0.2

# Reading granularity for the binary passes (line count, torn-tail search): big enough that the
# per-call overhead vanishes, small enough to keep memory flat.
_CHUNK_BYTES = 1 << 20


# ---------------------------------------------------------------------------------- input


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One well-formed input line: the request as written in the file (before CLI defaults).

    ``by_content``: a plain dict line, whose ``custom_id`` is its ``content_id`` (the reader
    numbers repeats of the same content).
    """

    line_number: int
    custom_id: str
    body: dict[str, Any]
    by_content: bool = False


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """An input line that cannot be sent; it gets an error row in the output.

    ``custom_id`` is the line's own when it has a usable one, else ``line_id(line_number)``.
    """

    line_number: int
    custom_id: str
    message: str


@dataclass(frozen=True, slots=True)
class DuplicateLine:
    """A later line whose ``custom_id`` an earlier line of this run already used; it is skipped."""

    line_number: int
    custom_id: str


InputEntry = BatchRequest | MalformedLine | DuplicateLine


def parse_line(line_number: int, raw: bytes) -> BatchRequest | MalformedLine | None:
    """Parse one input line; ``None`` for a blank line.

    >>> parse_line(3, b'{"model": "m", "messages": []}').custom_id
    'content-f34244885bc29122'
    """
    if not raw.strip():
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return MalformedLine(line_number, line_id(line_number), f"invalid JSON: {exc}")
    if not isinstance(obj, dict):
        return MalformedLine(line_number, line_id(line_number), "not a JSON object")
    if any(key in obj for key in _BATCH_KEYS):
        return _parse_batch_line(line_number, obj)
    return BatchRequest(line_number, content_id(obj), obj, by_content=True)


def content_id(body: Mapping[str, Any]) -> str:
    """The id of a plain request line: a hash of its content, credentials left out.

    Keys are sorted, so formatting and key order do not matter; credentials are left out, so
    a new key does not make answered rows new. 16 hex digits (64 bits): a collision among a
    million rows has odds of about 3 in 100 million.
    """
    kept = {key: value for key, value in body.items() if not is_secret_key(key)}
    text = json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"content-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def line_id(line_number: int) -> str:
    """The ``custom_id`` of a line that has none of its own: ``line-<line number>``.

    Not the bare number: files often number their own ids ``"0"``, ``"1"``, ..., and a line
    named by its position would then take the id of another row (which would be skipped).
    """
    return f"line-{line_number}"


def _parse_batch_line(line_number: int, obj: dict[str, Any]) -> BatchRequest | MalformedLine:
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        message = "custom_id must be a non-empty string"
        return MalformedLine(line_number, line_id(line_number), message)
    problem = _batch_line_problem(obj)
    if problem:
        return MalformedLine(line_number, custom_id, problem)
    return BatchRequest(line_number, custom_id, obj["body"])


def _batch_line_problem(obj: Mapping[str, Any]) -> str | None:
    if obj.get("method") != "POST":
        return f"method must be 'POST', got {obj.get('method')!r}"
    if not isinstance(obj.get("body"), dict):
        return "body must be a JSON object"
    expected = endpoint_url(obj["body"])  # an embedding request's body has input, no messages
    if obj.get("url") != expected:
        return f"url must be {expected!r} for this body, got {obj.get('url')!r}"
    return None


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_bytes)`` for each line, 1-based, reading as a stream."""
    with open(path, "rb") as handle:
        yield from enumerate(handle, start=1)


def count_lines(path: str | os.PathLike[str]) -> int:
    """Count lines (a final line without newline included) in one quick binary pass."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


class InputReader:
    """Iterate an input file's entries, skipping ids already answered and flagging duplicates.

    ``done`` holds the ids answered by earlier runs (from ``compact_output``); they are skipped and
    counted in ``already_done``. Blank lines are counted in ``blank``.

        reader = InputReader("requests.jsonl", done=compact_output("results.jsonl"))
        for entry in reader: ...
    """

    def __init__(self, path: str | os.PathLike[str], *, done: set[str] | None = None) -> None:
        self.path = path
        self.done: set[str] = done if done is not None else set()
        self.seen: set[str] = set()
        self.already_done = 0
        self.blank = 0
        self._repeats: dict[str, int] = {}  # content id -> lines with that content so far

    def __iter__(self) -> Iterator[InputEntry]:
        for line_number, raw in iter_lines(self.path):
            entry = self._classify(parse_line(line_number, raw))
            if entry is not None:
                yield entry

    def _classify(self, parsed: BatchRequest | MalformedLine | None) -> InputEntry | None:
        if parsed is None:
            self.blank += 1
            return None
        if isinstance(parsed, BatchRequest) and parsed.by_content:
            parsed = self._numbered(parsed)
        if parsed.custom_id in self.done:
            self.already_done += 1
            return None
        if parsed.custom_id in self.seen:
            return DuplicateLine(parsed.line_number, parsed.custom_id)
        if isinstance(parsed, BatchRequest):
            # Only a row that is sent claims its id: a malformed line must not make a later,
            # well-formed row with the same id look like a duplicate.
            self.seen.add(parsed.custom_id)
        return parsed

    def _numbered(self, request: BatchRequest) -> BatchRequest:
        """``content-<hash>-<k>``: the k-th line of this content, so identical lines stay rows."""
        count = self._repeats[request.custom_id] = self._repeats.get(request.custom_id, 0) + 1
        return replace(request, custom_id=f"{request.custom_id}-{count}")

    def __repr__(self) -> str:
        return (
            f"InputReader({os.fspath(self.path)!r}, seen={len(self.seen)}, "
            f"already_done={self.already_done}, blank={self.blank})"
        )


# --------------------------------------------------------------------------------- output


class JsonlAppender:
    """Append JSON rows to a file durably: one ``os.write`` per complete line, ``O_APPEND``.

    A row is either entirely in the file or (after a crash mid-write) a torn final line that
    ``compact_output`` removes. ``fsync`` runs every ``fsync_every`` rows or ``fsync_interval``
    seconds of the injected ``clock``, and at ``close()``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        truncate: bool = False,
        fsync_every: int = FSYNC_EVERY_ROWS,
        fsync_interval: float = FSYNC_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if truncate else 0)
        self.path = path
        self._fd: int | None = os.open(path, flags, 0o600)
        self._fsync_every = fsync_every
        self._fsync_interval = fsync_interval
        self._clock = clock
        self._unsynced = 0
        self._last_sync = clock()
        self.rows = 0

    def write(self, row: Mapping[str, Any]) -> None:
        """Write ``row`` as one line; durable against a crash of this process once it returns."""
        self.write_line((json.dumps(row, ensure_ascii=False, default=str) + "\n").encode())

    def write_line(self, data: bytes) -> None:
        """Write one complete line (ending in a newline) with a single ``os.write``."""
        self._write_all(data)
        self.rows += 1
        self._unsynced += 1
        if self._unsynced >= self._fsync_every or self._clock() - self._last_sync >= (
            self._fsync_interval
        ):
            self.sync()

    def _write_all(self, data: bytes) -> None:
        if self._fd is None:
            raise ValueError("write to a closed JsonlAppender")
        written = os.write(self._fd, data)
        # A regular file takes the whole buffer in one write unless the disk is full; finishing
        # the line then at least avoids gluing the next row onto a torn one.
        while written < len(data):
            written += os.write(self._fd, data[written:])

    def sync(self) -> None:
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
        self._unsynced = 0
        self._last_sync = self._clock()

    def close(self) -> None:
        if self._fd is None:
            return
        self._unsynced = max(self._unsynced, 1)
        self.sync()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else f"rows={self.rows}, unsynced={self._unsynced}"
        return f"JsonlAppender({os.fspath(self.path)!r}, {state})"


def _row_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def success_row(custom_id: str, response: Any, cost: float | None = None) -> dict[str, Any]:
    """The output row for an answered request; ``response`` is a litellm ``ModelResponse``.

    ``cost`` (USD, as the tracker priced the answer) is recorded beside the Batch format's keys
    when known: a capped job counts it when resumed (``jobs.spend``).
    """
    body = _model_dump(response) if hasattr(response, "model_dump") else dict(response)
    row = {
        "id": _row_id(),
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": _request_id(response), "body": body},
        "error": None,
    }
    return row if cost is None else {**row, "cost": cost}


def _model_dump(model: Any) -> dict[str, Any]:
    """``model.model_dump()``, building litellm's lazily built pydantic classes when needed.

    litellm's response types defer building their serializers until first instantiated; a
    response unpickled from a worker process is not an instantiation, so in the coordinator
    ``model_dump`` raises ``TypeError`` ('MockValSer' ...) until each nested class is rebuilt.
    """
    try:
        return dict(model.model_dump())
    except TypeError:
        _rebuild_models(model, set())
        return dict(model.model_dump())


def _rebuild_models(value: Any, visited: set[int]) -> None:
    if id(value) in visited:
        return
    visited.add(id(value))
    if isinstance(value, list | tuple):
        for item in value:
            _rebuild_models(item, visited)
    elif isinstance(value, dict):
        for item in value.values():
            _rebuild_models(item, visited)
    elif hasattr(type(value), "model_rebuild"):
        if not getattr(type(value), "__pydantic_complete__", True):
            type(value).model_rebuild(force=True)
        _rebuild_models(dict(vars(value)), visited)
        _rebuild_models(getattr(value, "__pydantic_extra__", None) or {}, visited)


def _request_id(response: Any) -> str | None:
    return request_id(response_headers(response)) or getattr(response, "id", None)


def error_row(custom_id: str, error: BaseException) -> dict[str, Any]:
    """The output row for a failed request: ``error.code`` is our error class name.

    When the provider answered with an HTTP error, ``response`` carries its status code and
    (redacted) body, as in OpenAI's Batch output; otherwise ``response`` is null.
    """
    text = str(getattr(error, "message", None) or error)
    return {
        "id": _row_id(),
        "custom_id": custom_id,
        "response": _error_response(error),
        "error": {"code": type(error).__name__, "message": redact_text(text)},
    }


def _error_response(error: BaseException) -> dict[str, Any] | None:
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        return None
    return {
        "status_code": status,
        "request_id": getattr(error, "request_id", None),
        "body": redact_json(getattr(error, "body", None)),
    }


def redact_json(value: Any) -> Any:
    """A copy of a JSON-like value with credential keys and secret-looking strings redacted."""
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if is_secret_key(str(k)) else redact_json(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_json(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def is_success_row(row: Any) -> bool:
    """True for an output row holding an answer (status 200, no error)."""
    if not isinstance(row, dict) or row.get("error") is not None:
        return False
    response = row.get("response")
    return isinstance(response, dict) and response.get("status_code") == 200


def strip_credentials(body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``body`` without credentials, and whether it had any.

    ``api_key`` and auth headers are dropped; the user-info of a URL (``api_base``, ...) is
    replaced by ``[REDACTED]``, so the line shows where a credential must be put back.
    """
    stripped: dict[str, Any] = {}
    removed = False
    for key, value in body.items():
        if is_secret_key(key):
            removed = True
        elif key in _HEADER_KEYS and isinstance(value, Mapping):
            kept = {k: v for k, v in value.items() if not is_secret_key(str(k))}
            removed = removed or len(kept) != len(value)
            stripped[key] = kept
        elif isinstance(value, str):
            stripped[key] = redact_url(value)
            removed = removed or stripped[key] != value
        else:
            stripped[key] = value
    return stripped, removed


def failure_request(request: BatchRequest) -> tuple[dict[str, Any], bool]:
    """The failures-file line for ``request`` (Batch input format, re-runnable as is).

    Credentials are removed (pass ``--api-key`` again when re-running it); the second item says
    whether any were.
    """
    body, removed = strip_credentials(request.body)
    url = endpoint_url(request.body)
    line = {"custom_id": request.custom_id, "method": "POST", "url": url, "body": body}
    return line, removed


# --------------------------------------------------------------------------------- resume


def compact_output(path: str | os.PathLike[str]) -> set[str]:
    """Prepare an existing output for resume and return the ``custom_id``s already answered.

    Keeps the first successful row per ``custom_id``; drops failed rows (they are re-run),
    unreadable lines and a torn final line (a crash mid-write). Rewrites the file through a
    temporary file and ``os.replace`` so a crash here loses nothing. A missing file is fine.
    """
    if not os.path.exists(path):
        return set()
    done: set[str] = set()
    tmp = f"{os.fspath(path)}.compact-{os.getpid()}.tmp"
    try:
        dropped, good_bytes = _copy_success_rows(path, tmp, done)
        if dropped:
            _replace_durably(tmp, path)
        else:
            # Nothing to drop: leave the file in place, only cut a torn final line if any.
            os.truncate(path, good_bytes)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return done


def _copy_success_rows(src: str | os.PathLike[str], dst: str, done: set[str]) -> tuple[int, int]:
    """Copy success rows of ``src`` to ``dst``; return (lines dropped, bytes of complete lines)."""
    dropped = good_bytes = 0
    with open(src, "rb") as reader, JsonlAppender(dst, truncate=True) as writer:
        for raw in reader:
            if not raw.endswith(b"\n"):
                break  # torn final line: the process died mid-write
            good_bytes += len(raw)
            custom_id = _success_id(raw)
            if custom_id is None or custom_id in done:
                dropped += 1
                continue
            done.add(custom_id)
            writer.write_line(raw)
    return dropped, good_bytes


def _success_id(raw: bytes) -> str | None:
    try:
        row = json.loads(raw)
    except ValueError:
        return None
    custom_id = row.get("custom_id") if is_success_row(row) else None
    return custom_id if isinstance(custom_id, str) else None


def _replace_durably(tmp: str, path: str | os.PathLike[str]) -> None:
    os.replace(tmp, path)
    folder = os.path.dirname(os.path.abspath(path))
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
