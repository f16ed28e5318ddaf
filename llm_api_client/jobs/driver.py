"""One resumable run of a JSONL batch file: what ``llm-api-client run`` does with a client.

    job = BatchJob(JobOptions("requests.jsonl", "results.jsonl", max_retries=3))
    problem = job.usage_problem()          # a missing file, output == input, ...
    stats = job.run(lambda max_cost: APIClient(500, 100_000, max_cost=max_cost))
    sys.exit(stats.exit_code())

``run`` takes the output's lock (one writer per output: ``lock``; a second run fails at once
with ``OutputBusyError``), compacts an existing output (resume: its answered ``custom_id`` are
skipped), gives the client what is left of ``max_cost`` after what the output's answers
already cost (``spend``: the cap covers the output across resumes), streams
the input into ``client.stream`` (see ``batchfile`` for formats and durability), writes each
result at once to the output and each failure to the failures file, and prints the tracker and
a one-line summary. The first SIGINT or SIGTERM stops dispatch and lets the requests in flight
finish and be written; a second one abandons them.

Who owns what::

    RequestFeed   the input rows not yet answered (by engine index); malformed/duplicate lines
    Recorder      writes each settled row: output, failures file, progress, RunStats
    Notices       stderr messages, capped per kind
    SignalGuard   the first signal stops the stream, a second one exits
    BatchJob      the order of it all, the failures file's publication, the summary
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

from llm_api_client._redact import is_secret_key, register_secret
from llm_api_client.engine.keyguard import AUTH_ERROR_NAMES, AUTH_ERRORS
from llm_api_client.errors import BudgetExceededError, InvalidRequestError
from llm_api_client.jobs.batchfile import (
    BatchRequest,
    DuplicateLine,
    InputEntry,
    InputReader,
    JsonlAppender,
    MalformedLine,
    compact_output,
    count_lines,
    error_row,
    failure_request,
    success_row,
)
from llm_api_client.jobs.lock import OutputLock
from llm_api_client.jobs.progress import Progress, format_usd

__all__ = ["BatchJob", "JobOptions", "RunStats"]

# Malformed and duplicate lines are each reported on stderr up to this many times; the rest are
# only counted (their error rows are in the output), so a broken file does not flood a terminal.
MAX_LINE_NOTICES = 20

# Said once on stderr and in the summary when the provider refused the key (401/403).
AUTH_PROBLEM = (
    "authentication failed: the provider refused the API key (401/403), so its remaining rows "
    "were not sent; fix --api-key (or the provider's key variable) and rerun to finish the file"
)

# What the messages on stderr start with.
_PREFIX = "llm-api-client run"


@dataclass(frozen=True)
class JobOptions:
    """What a run needs besides a client: the files, the per-row defaults, retries, limits.

    ``defaults`` fill in the keys a row does not set (``api_base``, ``api_key``, ``model``);
    ``max_cost`` caps the spending on the whole output, earlier runs' answers included.
    """

    input: str
    output: str
    failures: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    max_retries: int = 2
    timeout: float | None = None
    max_cost: float | None = None
    quiet: bool = False
    sanitize: bool = True

    @property
    def failures_path(self) -> str:
        return self.failures or f"{self.output}.failures.jsonl"


# ------------------------------------------------------------------------------ the pieces


@dataclass
class RunStats:
    """What happened to the rows of one run; the summary is made from it."""

    succeeded: int = 0
    failed: int = 0
    malformed: int = 0
    duplicates: int = 0
    already_done: int = 0
    not_started: int | None = 0
    credentials_removed: int = 0
    spent_before: float = 0.0  # USD the output's answers cost before this run
    errors: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None  # "stopped", "budget", "timeout"
    signal: int | None = None

    def exit_code(self) -> int:
        if self.signal is not None:
            return 128 + self.signal
        unfinished = self.failed or self.malformed or self.not_started or self.not_started is None
        return 1 if unfinished else 0


class RequestFeed:
    """The iterable handed to the engine: well-formed requests with the job's defaults applied.

    ``pending`` maps the engine's index (position in this iterable) to its input row until the
    result arrives; the engine pulls lazily, so it holds only the in-flight window. Other entries
    (malformed, duplicate lines) are queued in ``others`` for the writing loop.
    """

    def __init__(
        self, entries: Iterator[InputEntry], defaults: Mapping[str, Any], size_hint: int
    ) -> None:
        self._entries = entries
        self._defaults = dict(defaults)
        self._size_hint = size_hint
        self.pending: dict[int, BatchRequest] = {}
        self.others: deque[MalformedLine | DuplicateLine] = deque()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        index = 0
        for entry in self._entries:
            if not isinstance(entry, BatchRequest):
                self.others.append(entry)
                continue
            self.pending[index] = entry
            index += 1
            yield self._prepare(entry.body)

    def __len__(self) -> int:
        """At most how many requests this feed yields: lets the engine size its workers (a
        small file runs on threads of this process, without starting worker processes)."""
        return self._size_hint

    def _prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        _register_credentials(body)
        missing = {k: v for k, v in self._defaults.items() if k not in body}
        return {**body, **missing}  # a copy: the failures file needs the row as it was read

    def take(self, index: int) -> BatchRequest:
        return self.pending.pop(index)

    def count_unread(self) -> int:
        """Drain what the engine never pulled: rows not started (duplicates aside)."""
        unread = sum(1 for entry in self._entries if not isinstance(entry, DuplicateLine))
        return unread + len(self.pending)


def _register_credentials(body: Mapping[str, Any]) -> None:
    """Teach the redactor this row's credentials, so no error message can carry them."""
    for key, value in body.items():
        if is_secret_key(key) and isinstance(value, str):
            register_secret(value)
            register_secret(value.removeprefix("Bearer ").strip())
        elif key in ("extra_headers", "headers") and isinstance(value, Mapping):
            _register_credentials(value)


class Recorder:
    """Writes every settled row: to the output, the failures file, the progress and the stats."""

    def __init__(
        self,
        output: JsonlAppender,
        failures: JsonlAppender,
        progress: Progress,
        stats: RunStats,
        notices: Notices,
    ) -> None:
        self._output = output
        self._failures = failures
        self._progress = progress
        self._stats = stats
        self._notices = notices

    def result(self, request: BatchRequest, result: Any) -> None:
        if result.ok:
            cost = result.usage.cost if result.usage is not None else None
            self._output.write(success_row(request.custom_id, result.response, cost))
            self._stats.succeeded += 1
        else:
            self._failed(request, result.error)
        self._progress.update(result)

    def _failed(self, request: BatchRequest, error: BaseException) -> None:
        self._output.write(error_row(request.custom_id, error))
        line, removed = failure_request(request)
        self._failures.write(line)
        self._stats.failed += 1
        self._stats.credentials_removed += removed
        name = type(error).__name__
        self._stats.errors[name] = self._stats.errors.get(name, 0) + 1
        if isinstance(error, BudgetExceededError):
            self._notices.once("budget", f"spend cap reached: {error.message}")
        if isinstance(error, AUTH_ERRORS):
            self._notices.once("auth", AUTH_PROBLEM)

    def other(self, entry: MalformedLine | DuplicateLine) -> None:
        if isinstance(entry, DuplicateLine):
            self._stats.duplicates += 1
            self._progress.skip()
            self._notices.line(
                "duplicate",
                f"line {entry.line_number}: duplicate custom_id {entry.custom_id!r} skipped",
            )
            return
        error = InvalidRequestError(f"line {entry.line_number}: {entry.message}")
        self._output.write(error_row(entry.custom_id, error))
        self._stats.malformed += 1
        self._progress.advance(failed=True)
        self._notices.line("malformed", str(error))


class Notices:
    """Messages for stderr: capped per kind, silent in quiet mode."""

    def __init__(self, stream: TextIO, quiet: bool, limit: int = MAX_LINE_NOTICES) -> None:
        self._stream = stream
        self._quiet = quiet
        self._limit = limit
        self._counts: dict[str, int] = {}

    def say(self, message: str) -> None:
        if not self._quiet:
            print(f"{_PREFIX}: {message}", file=self._stream, flush=True)

    def once(self, kind: str, message: str) -> None:
        self.line(kind, message, limit=1)

    def line(self, kind: str, message: str, limit: int | None = None) -> None:
        count = self._counts[kind] = self._counts.get(kind, 0) + 1
        limit = self._limit if limit is None else limit
        if count <= limit:
            self.say(message)
        elif count == limit + 1 and limit > 1:
            self.say(f"further {kind} lines are not shown (they are in the output)")


class SignalGuard:
    """First SIGINT/SIGTERM calls ``stop``; a second one raises ``KeyboardInterrupt``.

    Installed only in the main thread (the only one that may set handlers); the previous handlers
    come back on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}
        self.received: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        self._stop()
        # os.write, not print: a handler may interrupt a print to the same stream.
        os.write(2, b"\nstopping: waiting for requests in flight (again to exit now)\n")

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


# --------------------------------------------------------------------------------- the run


class BatchJob:
    """One execution of a batch file: compact the output, stream the input, write, summarize."""

    def __init__(
        self, options: JobOptions, *, out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.options = options
        self.output_path = options.output
        self.failures_path = options.failures_path
        self._out = out if out is not None else sys.stdout
        self._err = err if err is not None else sys.stderr
        self.stats = RunStats()
        # Reentrant: a caller may hold it around usage_problem() and run() to fail fast.
        self.lock = OutputLock(self.output_path)
        self.notices = Notices(self._err, options.quiet)
        self._progress_summary = ""
        self._spent_now = 0.0  # USD this run's answers cost

    def usage_problem(self) -> str | None:
        """Why this job cannot start (a missing input, clashing paths, a model the spend cap
        cannot price), or None."""
        return self.path_problem() or self.price_problem()

    def price_problem(self) -> str | None:
        """A model ``max_cost`` cannot cap, having no price; None when capped models are priced."""
        if self.options.max_cost is None:
            return None
        # Prices mean litellm's map: imported only for a capped job (seconds of import).
        from llm_api_client.jobs.spend import models_of, unpriced_models

        unpriced = unpriced_models(models_of(self.options.input, self.options.defaults))
        if not unpriced:
            return None
        return (
            f"--max-cost cannot cap {', '.join(unpriced)}: no known price. Give each one's "
            "price with --price MODEL=IN:OUT (USD per million input and output tokens)"
        )

    def path_problem(self) -> str | None:
        """A missing input, a missing folder, clashing paths; None when the paths are usable."""
        source, output = self.options.input, self.output_path
        if not os.path.isfile(source):
            return f"no such file: {source}"
        if os.path.exists(output) and os.path.samefile(output, source):
            return "--output must not be the input file"
        if os.path.abspath(output) == os.path.abspath(self.failures_path):
            return "--failures must differ from --output"
        for name, path in (("--output", output), ("--failures", self.failures_path)):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                return f"{name}: no such directory: {folder}"
        return None

    def run(self, make_client: Callable[[float | None], Any]) -> RunStats:
        """Resume, send every row not yet answered through ``make_client(max_cost)`` (anything
        with ``stream(requests, max_retries=, timeout=, sanitize=)`` and ``close()``; the cap is
        what the output's answers left of ``max_cost``), write the results, print the summary.
        Call ``usage_problem`` first. Raises ``OutputBusyError`` when another run holds the
        output."""
        with self.lock:
            return self._run(make_client)

    def _run(self, make_client: Callable[[float | None], Any]) -> RunStats:
        register_secret(self.options.defaults.get("api_key"))
        done = compact_output(self.output_path)
        reader = InputReader(self.options.input, done=done)
        total = count_lines(self.options.input)
        size_hint = max(0, total - len(done))
        feed = RequestFeed(iter(reader), self.options.defaults, size_hint=size_hint)
        progress = Progress(total, self.options.quiet, initial=min(len(done), total))
        budget = self._budget_left()
        tracker = None
        if budget is not None and budget <= 0:
            self._spent_already(feed, progress)
        else:
            tracker = self._send(lambda: make_client(budget), feed, progress)
        self.stats.already_done = reader.already_done
        self._summarize(tracker)
        return self.stats

    def _budget_left(self) -> float | None:
        """What ``max_cost`` leaves after the answers the output holds; None: no cap."""
        if self.options.max_cost is None:
            return None
        from llm_api_client.jobs.spend import answered

        self.stats.spent_before = answered(self.output_path).cost
        return self.options.max_cost - self.stats.spent_before

    def _spent_already(self, feed: RequestFeed, progress: Progress) -> None:
        """The cap was reached by earlier runs: send nothing, count what is left."""
        with progress:
            self.stats.not_started = feed.count_unread()
        self.stats.stop_reason = "budget"
        self._progress_summary = progress.summary()

    def _send(self, make_client: Callable[[], Any], feed: RequestFeed, progress: Progress) -> Any:
        partial = f"{self.failures_path}.partial"
        client = make_client()
        try:
            with (
                JsonlAppender(self.output_path) as output,
                JsonlAppender(partial, truncate=True) as failures,
                progress,
            ):
                recorder = Recorder(output, failures, progress, self.stats, self.notices)
                self._drive(client, feed, recorder)
        finally:
            client.close()
            if os.path.exists(partial):
                self._publish_failures(partial)
        self._progress_summary = progress.summary()
        self._spent_now = progress.cost
        return getattr(client, "tracker", None)

    def _drive(self, client: Any, feed: RequestFeed, recorder: Recorder) -> None:
        options = self.options
        stream = client.stream(
            feed,
            max_retries=options.max_retries,
            timeout=options.timeout,
            sanitize=options.sanitize,
        )
        guard = SignalGuard(stream.stop)
        try:
            with guard:
                self._consume(stream, feed, recorder)
            self.stats.not_started = feed.count_unread()
        except KeyboardInterrupt:
            # The second signal: exit now; what is in flight is lost (and will be re-sent).
            getattr(stream, "close", lambda: None)()
            self.stats.not_started = None
            self.stats.signal = guard.received or signal.SIGINT
            self._drain_others(feed, recorder)
            return
        self.stats.signal = guard.received
        self.stats.stop_reason = getattr(stream, "stop_reason", None)

    def _consume(self, stream: Any, feed: RequestFeed, recorder: Recorder) -> None:
        for result in stream:
            self._drain_others(feed, recorder)
            recorder.result(feed.take(result.index), result)
        self._drain_others(feed, recorder)

    @staticmethod
    def _drain_others(feed: RequestFeed, recorder: Recorder) -> None:
        while feed.others:
            recorder.other(feed.others.popleft())

    def _publish_failures(self, partial: str) -> None:
        """Move this run's failures into place; none at all leaves no failures file."""
        if self.stats.failed:
            os.replace(partial, self.failures_path)
            return
        os.unlink(partial)
        if os.path.exists(self.failures_path):
            os.unlink(self.failures_path)

    # -- the summary ----------------------------------------------------------------------

    def _summarize(self, tracker: Any) -> None:
        if not self.options.quiet and tracker is not None:
            print(str(tracker), file=self._out)
        print(self.summary_line(), file=self._out, flush=True)

    def summary_line(self) -> str:
        s = self.stats
        not_started = "unknown" if s.not_started is None else f"{s.not_started:,}"
        parts = [
            f"{s.succeeded:,} succeeded",
            f"{s.failed:,} failed" + _breakdown(s.errors),
            f"{s.malformed:,} malformed",
            f"{s.duplicates:,} duplicate ids skipped",
            f"{s.already_done:,} already done",
            f"{not_started} not started",
        ]
        notes = [*self._notes(), f"output: {self.output_path}"]
        if s.failed:
            notes.append(f"failures: {self.failures_path}")
        return f"run: {', '.join(parts)}; {self._progress_summary}; {'; '.join(notes)}"

    def _cap_note(self) -> str:
        cap, before = self.options.max_cost or 0.0, self.stats.spent_before
        total = before + self._spent_now
        return (
            f"spend cap of {format_usd(cap)} reached: {format_usd(total)} spent on "
            f"{self.output_path} in all ({format_usd(self._spent_now)} by this run); "
            "a rerun with a higher --max-cost sends the rest"
        )

    def _notes(self) -> Iterator[str]:
        s = self.stats
        if s.signal is not None:
            name = signal.Signals(s.signal).name
            yield f"interrupted by {name}: rerun the same command to resume"
        if s.stop_reason == "budget" and self.options.max_cost is not None:
            yield self._cap_note()
        if s.stop_reason == "timeout":
            yield f"the {self.options.timeout} s timeout ran out: rerun to continue"
        if any(name in s.errors for name in AUTH_ERROR_NAMES):
            yield AUTH_PROBLEM
        if s.credentials_removed:
            yield (
                f"credentials removed from {s.credentials_removed:,} rows of the failures file: "
                "pass --api-key, and put back any [REDACTED] URL user-info, when re-running it"
            )


def _breakdown(errors: Mapping[str, int]) -> str:
    if not errors:
        return ""
    return " (" + ", ".join(f"{n:,} {name}" for name, n in sorted(errors.items())) + ")"
