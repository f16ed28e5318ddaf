"""``APIClient``: the published llm-api-client 0.1.8 API on top of the multi-process engine.

Names, defaults and meaning are the seed's: ``make_requests`` returns litellm ``ModelResponse``
objects in input order with ``None`` for failures, ``make_requests_with_retries`` also retries
what can be retried, ``tracker`` accumulates usage and cost, ``history`` and ``details`` are
kept. New: ``stream`` (results as they finish, any iterable in, bounded memory), ``map``,
``processes``, ``max_cost`` and the optional input/output token limits.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from datetime import datetime
from typing import TYPE_CHECKING, Any

from llm_api_client import _settings
from llm_api_client._constants import (
    DEFAULT_BURST_SECONDS,
    DEFAULT_MAX_DELAY_SECONDS,
    DEFAULT_MAX_REQUESTS_PER_MINUTE,
    DEFAULT_MAX_TOKENS_PER_MINUTE,
    DEFAULT_PROBE_SECONDS,
    MAX_THREADS_PER_PROCESS,
)
from llm_api_client._redact import redact_request
from llm_api_client.cache import ResponseCache, open_cache
from llm_api_client.call.execute import Outcome
from llm_api_client.engine.backend import Backend
from llm_api_client.engine.coordinator import BatchOptions, BatchStream, Budget
from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.keyguard import KeyGuard
from llm_api_client.engine.sizing import (
    FixedWindow,
    LatencyWindow,
    Window,
    default_processes,
    split_threads,
)
from llm_api_client.errors import ConfigurationError, LLMAPIClientError
from llm_api_client.prepare.chat_tokens import count_message_tokens
from llm_api_client.prepare.sanitize import sanitize_request
from llm_api_client.prepare.truncate import context_window, fit_to_context
from llm_api_client.providers.http_transport import make_transport
from llm_api_client.providers.litellm_transport import FunctionTransport
from llm_api_client.ratelimit.base import Limits, RateLimiter
from llm_api_client.records import Result
from llm_api_client.tracker import APIUsageTracker

if TYPE_CHECKING:
    from llm_api_client.ratelimit.shared import SharedMemoryRateLimiter

logger = logging.getLogger("llm_api_client")


class _Resources:
    """What a client owns outside Python's heap: worker processes and shared memory.

    Kept apart from the client so a ``weakref.finalize`` can release them when the client is
    collected or the interpreter exits, without the finalizer holding the client alive. The
    in-process ``limiter`` outlives each thread backend, so successive batches share one quota;
    a process backend owns its own shared-memory limiter.
    """

    def __init__(self) -> None:
        self.backend: Backend | None = None
        self.backend_key: tuple[int, int] | None = None
        self.limiter: RateLimiter | None = None
        _ALL_RESOURCES.add(self)

    def close_backend(self) -> None:
        backend, self.backend, self.backend_key = self.backend, None, None
        if backend is not None:
            backend.close()

    def close(self) -> None:
        self.close_backend()
        limiter, self.limiter = self.limiter, None
        if limiter is not None:
            limiter.close()

    def forget(self) -> None:
        """In a forked child: start over, leaving the parent's workers and limiter to it."""
        backend, self.backend, self.backend_key, self.limiter = self.backend, None, None, None
        if backend is not None:
            backend.forget()


_ALL_RESOURCES: weakref.WeakSet[_Resources] = weakref.WeakSet()


def _forget_inherited_resources() -> None:
    for resources in list(_ALL_RESOURCES):
        resources.forget()


# A forked child that used a client's workers would fail every request, and one that exits
# normally would terminate them; instead its clients start their own workers when next used.
os.register_at_fork(after_in_child=_forget_inherited_resources)


class APIClient:
    """Rate-limited, concurrent LLM requests through litellm, from a few to millions.

    Example::

        client = APIClient(max_requests_per_minute=3_000, max_tokens_per_minute=600_000)
        responses = client.make_requests_with_retries(requests)
        print(client.tracker)

    Parameters (the seed's, unchanged): ``max_requests_per_minute`` and
    ``max_tokens_per_minute`` (``None``: unlimited), ``max_workers`` (requests in flight, on as many
    threads; default: enough to reach the rate limit at the latency observed so far, starting
    from 2 s, capped at 256 per process) and
    ``max_delay_seconds`` (a request not admitted by the rate limiter within this fails with
    ``RateLimitDelayExceeded`` and is not sent).

    New, keyword-only: ``processes`` (worker processes; 0 runs on threads of this process;
    default: one per ~150 requests/s of the limit, up to one per core, and none for batches
    under 500 requests), ``max_cost`` (USD spend cap), ``input_tokens_per_minute`` and
    ``output_tokens_per_minute`` (Anthropic-style limits), ``burst_seconds`` (how many seconds
    of each limit may go out at once), ``keep_history`` (``history`` of the list API) and
    ``completion`` (the function called per request; default ``litellm.completion``) and
    ``transport``: ``"auto"`` (default) sends plain OpenAI-compatible chat completions over the
    library's own HTTP client and everything else (and everything, while litellm has callbacks,
    a cache or a replaced ``litellm.completion``) through litellm; ``"litellm"`` sends everything
    through litellm; ``"http"`` only the lean way (other requests fail with
    ``InvalidRequestError``). Ignored when ``completion`` is given.
    ``cache``: a SQLite file (or a ``ResponseCache``) of answers already received: a request
    answered before is answered from it, never sent (see ``llm_api_client.cache``);
    ``cache_mode``: ``"use"`` (default), ``"refresh"`` (send all, store the new answers) or
    ``"off"``.

    A client runs one batch at a time. Use it as a context manager, or call ``close()``, to
    stop its worker processes and free its shared memory (done at exit otherwise).
    """

    def __init__(
        self,
        max_requests_per_minute: int | None = DEFAULT_MAX_REQUESTS_PER_MINUTE,
        max_tokens_per_minute: int | None = DEFAULT_MAX_TOKENS_PER_MINUTE,
        max_workers: int | None = None,
        max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS,
        *,
        processes: int | None = None,
        max_cost: float | None = None,
        input_tokens_per_minute: int | None = None,
        output_tokens_per_minute: int | None = None,
        burst_seconds: float = DEFAULT_BURST_SECONDS,
        keep_history: bool = True,
        completion: Callable[..., Any] | None = None,
        transport: str = "auto",
        cache: str | os.PathLike[str] | ResponseCache | None = None,
        cache_mode: str = "use",
    ) -> None:
        _check_settings(
            max_requests_per_minute=max_requests_per_minute,
            max_tokens_per_minute=max_tokens_per_minute,
            input_tokens_per_minute=input_tokens_per_minute,
            output_tokens_per_minute=output_tokens_per_minute,
            max_workers=max_workers,
            max_delay_seconds=max_delay_seconds,
            burst_seconds=burst_seconds,
            max_cost=max_cost,
            processes=processes,
        )
        if completion is not None and not callable(completion):
            kind = type(completion).__name__
            raise ConfigurationError(f"completion must be callable or None, not {kind}")
        self.max_requests_per_minute = max_requests_per_minute
        self.max_tokens_per_minute = max_tokens_per_minute
        self.max_delay_seconds = max_delay_seconds
        self.max_cost = max_cost
        self.processes = processes
        self.keep_history = keep_history
        self.limits = Limits(
            requests_per_minute=max_requests_per_minute,
            tokens_per_minute=max_tokens_per_minute,
            input_tokens_per_minute=input_tokens_per_minute,
            output_tokens_per_minute=output_tokens_per_minute,
            burst_seconds=burst_seconds,
        )
        self._max_workers = max_workers
        chosen = make_transport(transport) if completion is None else FunctionTransport(completion)
        self._execution = ExecutionConfig(max_delay=max_delay_seconds, transport=chosen)
        self._tracker = APIUsageTracker()
        self._history: list[dict[str, Any]] = []
        self._resources = _Resources()
        self._finalizer = weakref.finalize(self, self._resources.close)
        self._busy = threading.Lock()
        self._generation = 0
        self.last_errors: dict[int, LLMAPIClientError] = {}
        self.cache = open_cache(cache, cache_mode)  # the response cache (``cache``), or None
        self._keys = KeyGuard()  # stops sending with a key the provider keeps refusing

    # -- the seed's surface ---------------------------------------------------------------
    @property
    def tracker(self) -> APIUsageTracker:
        """Usage, cost and latency of every call this client made."""
        return self._tracker

    @property
    def history(self) -> list[dict[str, Any]]:
        """Requests (credentials redacted) and responses of ``make_requests`` calls."""
        return self._history

    @property
    def details(self) -> dict[str, Any]:
        """The client's limits and the tracker's ``details``, in one JSON-ready dict.

        ``max_workers`` is an int, as in 0.1.8: the one given, else the most threads a batch of
        this client may run (the per-process cap times the processes a large batch gets).
        """
        max_workers = self._max_workers
        if max_workers is None:
            processes = self.processes
            if processes is None:
                processes = default_processes(self.max_requests_per_minute, None)
            max_workers = MAX_THREADS_PER_PROCESS * max(1, processes)
        return {
            "max_requests_per_minute": self.max_requests_per_minute,
            "max_tokens_per_minute": self.max_tokens_per_minute,
            "max_workers": max_workers,
            **self._tracker.details,
        }

    def make_requests(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        max_workers: int | None = None,
        sanitize: bool = True,
        timeout: float | None = None,
    ) -> list[Any]:
        """Send every request once; responses in input order, ``None`` where one failed.

        ``timeout`` bounds the whole batch: when it runs out the unfinished get ``None`` and
        are cancelled. Why a request that was tried failed is in ``last_errors[index]``;
        requests never dispatched (the timeout or the spend cap stopped the batch first) are
        ``None`` with no entry there.
        """
        return self._make_list(requests, 0, max_workers, sanitize, timeout)

    def make_requests_with_retries(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        max_workers: int | None = None,
        max_retries: int = 2,
        sanitize: bool = True,
        timeout: float | None = None,
    ) -> list[Any]:
        """Like ``make_requests``, retrying each failure that can succeed up to ``max_retries``.

        Retried: 408, 409, 429, 5xx, timeouts and connection errors, waiting as the provider
        says (``retry-after``) or with jittered exponential backoff; never other 4xx.
        """
        return self._make_list(requests, max_retries, max_workers, sanitize, timeout)

    # -- streaming ------------------------------------------------------------------------
    def stream(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        max_retries: int = 0,
        sanitize: bool = True,
        timeout: float | None = None,
        ordered: bool = False,
        max_workers: int | None = None,
    ) -> BatchStream:
        """Results as they finish (``ordered=True``: in input order), for any iterable.

        Requests are read lazily, a window at a time, so a generator of millions of requests
        runs in bounded memory. Each ``Result`` has the input ``index``, the ``response`` or a
        typed ``error``, ``attempts`` and ``usage``. Example::

            for result in client.stream(requests_from_file(), max_retries=2):
                save(result.index, result.response if result.ok else result.error)
        """
        _check_settings(max_retries=max_retries, max_workers=max_workers, timeout=timeout)
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this client is already running a batch; use another client")
        try:
            size = len(requests) if isinstance(requests, Sized) else None
            backend, window = self._backend_for(size, max_workers)
        except BaseException:
            self._busy.release()
            raise
        self._generation += 1
        self._keys.new_batch()
        options = BatchOptions(max_retries, sanitize, timeout, ordered, window)
        budget = None if self.max_cost is None else Budget(self.max_cost, self._spent)
        return BatchStream(
            requests,
            backend,
            options,
            generation=self._generation,
            on_outcome=self._merge,
            on_finish=self._batch_finished,
            budget=budget,
            cache=self.cache,
            keys=self._keys,
        )

    def map(
        self,
        build_request: Callable[[Any], Mapping[str, Any]],
        items: Iterable[Any],
        **options: Any,
    ) -> Iterator[Result]:
        """``stream`` over ``build_request(item)`` for each item, results in input order.

        For data jobs: ``for item, result in zip(rows, client.map(to_request, rows))``.
        """
        with self.stream((build_request(item) for item in items), ordered=True, **options) as s:
            yield from s

    # -- the seed's request helpers, kept for code that called them ------------------------
    def sanitize_completion_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Drop unsupported parameters and fit the messages to the context window (a copy)."""
        return fit_to_context(sanitize_request(request))

    def remove_unsupported_params(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``request`` without the parameters its model does not support."""
        return sanitize_request(request)

    def truncate_to_max_context_tokens(
        self, messages: list[dict[str, Any]], model: str
    ) -> list[dict[str, Any]]:
        """``messages`` cut to fit ``model``'s input window (oldest turns first)."""
        fitted = fit_to_context({"model": model, "messages": messages})
        return list(fitted["messages"])

    def get_max_context_tokens(self, model: str) -> int:
        """The model's input window in tokens (environment overrides honoured)."""
        return context_window(model).max_input_tokens

    def count_messages_tokens(
        self, messages: list[dict[str, Any]], *, model: str, timeout: float = 10
    ) -> int:
        """Prompt tokens of ``messages`` for ``model`` (tiktoken; ``timeout`` is unused)."""
        return count_message_tokens(messages, model)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker processes and free the shared memory; the client can be reused."""
        self._resources.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<APIClient rpm={self.max_requests_per_minute} tpm={self.max_tokens_per_minute} "
            f"processes={self.processes} backend={self._resources.backend!r}>"
        )

    # -- internals ------------------------------------------------------------------------
    def _make_list(
        self,
        requests: Iterable[Mapping[str, Any]],
        max_retries: int,
        max_workers: int | None,
        sanitize: bool,
        timeout: float | None,
    ) -> list[Any]:
        # Checked before the requests are read: a bad argument must not consume a generator.
        _check_settings(max_retries=max_retries, max_workers=max_workers, timeout=timeout)
        requests = list(requests)
        responses: list[Any] = [None] * len(requests)
        self.last_errors = {}
        if not requests:
            return responses
        stream = self.stream(
            requests,
            max_retries=max_retries,
            sanitize=sanitize,
            timeout=timeout,
            max_workers=max_workers,
        )
        with stream:
            for result in stream:
                responses[result.index] = result.response
                if result.error is not None:
                    self.last_errors[result.index] = result.error
        self._log_failures(len(requests))
        if self.keep_history:
            self._history.extend(map(_history_entry, requests, responses))
        return responses

    def _log_failures(self, total: int) -> None:
        if not self.last_errors:
            return
        kinds: dict[str, int] = {}
        for error in self.last_errors.values():
            kinds[type(error).__name__] = kinds.get(type(error).__name__, 0) + 1
        logger.warning("%d of %d requests failed: %s", len(self.last_errors), total, kinds)

    def _merge(self, outcome: Outcome) -> None:
        self._tracker.add(outcome.record)
        if outcome.error is not None:
            logger.debug("request %d failed: %r", outcome.index, outcome.error)

    def _spent(self) -> float:
        return float(self._tracker.total_cost)

    def _batch_finished(self, backend_usable: bool) -> None:
        if not backend_usable:
            self._resources.close_backend()
        self._busy.release()

    def _backend_for(self, size: int | None, max_workers: int | None) -> tuple[Backend, Window]:
        processes = self.processes
        if processes is None:
            processes = default_processes(self.max_requests_per_minute, size)
        slack = 4 * max(1, processes)  # room for results waiting to be yielded in order
        threads = max_workers or self._max_workers
        window: Window
        if threads is None:  # threads start lazily: a high cap costs nothing until used
            per_process = MAX_THREADS_PER_PROCESS
            cap = per_process * max(1, processes)
            limits = (self.max_requests_per_minute, self.max_tokens_per_minute)
            window = LatencyWindow(*limits, cap=cap, slack=slack)
        else:
            per_process = split_threads(threads, processes)
            window = FixedWindow(threads + slack)
        key = (processes, per_process)
        if self._resources.backend is None or self._resources.backend_key != key:
            self._resources.close_backend()
            self._resources.backend = self._start_backend(*key)
            self._resources.backend_key = key
        return self._resources.backend, window

    def _start_backend(self, processes: int, threads: int) -> Backend:
        """Threads get the client's in-process limiter; worker processes a shared-memory one."""
        if processes == 0:
            from llm_api_client.engine.threads import ThreadBackend

            if self._resources.limiter is None:
                self._resources.limiter = self._make_limiter()
            late_usage = self._tracker.add_calls  # the tracker, not the client: no cycle
            return ThreadBackend(
                self._resources.limiter, self._execution, threads, late_usage=late_usage
            )
        from llm_api_client.engine.processes import ProcessBackend

        return ProcessBackend(self._make_shared_limiter(), self._execution, processes, threads)

    def _make_limiter(self) -> RateLimiter:
        from llm_api_client.engine import cancellation
        from llm_api_client.ratelimit.memory import InProcessRateLimiter

        # cancellation.sleep: a request waiting for its turn is not sent once abandoned.
        return InProcessRateLimiter(
            self.limits, probe_seconds=DEFAULT_PROBE_SECONDS, sleep=cancellation.sleep
        )

    def _make_shared_limiter(self) -> SharedMemoryRateLimiter:
        from llm_api_client.ratelimit.shared import SharedMemoryRateLimiter

        return SharedMemoryRateLimiter(self.limits, probe_seconds=DEFAULT_PROBE_SECONDS)


# What each setting and per-call argument may be (see ``_settings``).
_SETTING_RULES = {
    "max_requests_per_minute": _settings.PER_MINUTE,
    "max_tokens_per_minute": _settings.PER_MINUTE,
    "input_tokens_per_minute": _settings.PER_MINUTE,
    "output_tokens_per_minute": _settings.PER_MINUTE,
    "max_workers": _settings.WORKERS,
    "max_delay_seconds": _settings.MAX_DELAY,
    "burst_seconds": _settings.POSITIVE_SECONDS,
    "max_cost": _settings.MAX_COST,
    "processes": _settings.PROCESSES,
    "max_retries": _settings.RETRIES,
    "timeout": _settings.BATCH_TIMEOUT,
}


def _check_settings(**settings: object) -> None:
    """Raise ``ConfigurationError`` for the first setting its rule refuses."""
    for name, value in settings.items():
        problem = _SETTING_RULES[name].problem(value)
        if problem is not None:
            raise ConfigurationError(f"{name} must be {problem}, not {value!r}")


def _history_entry(request: Any, response: Any) -> dict[str, Any]:
    return {
        "request": redact_request(request) if isinstance(request, Mapping) else request,
        "response": response.model_dump() if response is not None else None,
        "content": _content(response),
        "created_at": _created_at(response),
    }


def _content(response: Any) -> str | None:
    try:
        return response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None


def _created_at(response: Any) -> str | None:
    created = getattr(response, "created", None)
    if created is None:
        return None
    return datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")
