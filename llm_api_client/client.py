"""``APIClient``: the published llm-api-client 0.1.8 API on top of the multi-process engine.

Names, defaults and meaning are the seed's: ``make_requests`` returns litellm ``ModelResponse``
objects in input order with ``None`` for failures, ``make_requests_with_retries`` also retries
what can be retried, ``tracker`` accumulates usage and cost, ``history`` and ``details`` are
kept. New: ``stream`` (results as they finish, any iterable in, bounded memory), ``map``,
``processes``, ``max_cost`` and the optional input/output token limits.

The client is the public face only: ``engine.runtime`` chooses and owns the backend and the rate
limiter, ``engine.coordinator`` runs a batch, ``_seed_compat`` keeps the seed's helpers.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import Any

from llm_api_client import _settings
from llm_api_client._constants import (
    DEFAULT_BURST_SECONDS,
    DEFAULT_MAX_DELAY_SECONDS,
    DEFAULT_MAX_REQUESTS_PER_MINUTE,
    DEFAULT_MAX_TOKENS_PER_MINUTE,
)
from llm_api_client._seed_compat import SeedRequestHelpers, make_list
from llm_api_client.aio import AsyncClientMixin
from llm_api_client.cache import CacheSpec, open_cache
from llm_api_client.embed import Embeddings
from llm_api_client.engine.coordinator import BatchOptions, BatchStream, Budget
from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.runtime import Runtime
from llm_api_client.errors import ConfigurationError, LLMAPIClientError
from llm_api_client.providers.http_transport import make_transport
from llm_api_client.providers.litellm_transport import FunctionTransport
from llm_api_client.ratelimit.base import Limits
from llm_api_client.ratelimit.selection import checked, store_for
from llm_api_client.records import Result
from llm_api_client.tracker import APIUsageTracker


class APIClient(SeedRequestHelpers, AsyncClientMixin, Embeddings):  # aio.py, embed.py
    """Rate-limited, concurrent LLM requests through litellm, from a few to millions.

    Example::

        client = APIClient(max_requests_per_minute=3_000, max_tokens_per_minute=600_000)
        responses = client.make_requests_with_retries(requests)
        print(client.tracker)

    The seed's parameters keep their names, defaults and meaning: ``max_requests_per_minute``
    and ``max_tokens_per_minute`` (``None``: unlimited), ``max_workers`` (requests in flight;
    default: enough for the limit at the latency seen so far) and ``max_delay_seconds`` (a
    request the limiter cannot admit within it fails unsent with ``RateLimitDelayExceeded``).
    The new ones are keyword-only and listed with their defaults in docs/configuration:
    ``processes``, ``max_cost``, ``input_tokens_per_minute``, ``output_tokens_per_minute``,
    ``burst_seconds``, ``keep_history``, ``completion``, ``transport`` (``"auto"``: plain
    OpenAI-compatible calls skip litellm unless the user hooks it), ``cache`` and
    ``cache_mode`` (the response cache), ``rate_limit_store`` and ``rate_limit_key`` (one
    quota across processes and hosts: Redis or a Ray cluster store), ``start_method`` (how
    worker processes start), ``backend="ray"`` and ``ray_actor_options`` (Ray actors),
    ``model_limits`` (some models' own limits, under the client-wide ones).

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
        cache: CacheSpec = None,
        cache_mode: str = "use",
        rate_limit_store: str | None = None,
        rate_limit_key: str = "default",
        start_method: str | None = None,
        backend: str | None = None,
        ray_actor_options: Mapping[str, Any] | None = None,
        model_limits: Mapping[str, Mapping[str, int | None]] | None = None,
    ) -> None:
        _settings.check(**{k: v for k, v in locals().items() if k in _settings.CLIENT_RULES})
        if completion is not None and not callable(completion):
            kind = type(completion).__name__
            raise ConfigurationError(f"completion must be callable or None, not {kind}")
        self.max_requests_per_minute = max_requests_per_minute
        self.max_tokens_per_minute = max_tokens_per_minute
        self.max_delay_seconds = max_delay_seconds
        self.max_cost = max_cost
        self.processes = processes
        self.rate_limit_store, self.rate_limit_key = checked(rate_limit_store, rate_limit_key)
        self.keep_history = keep_history
        per_minute = (max_requests_per_minute, max_tokens_per_minute, input_tokens_per_minute)
        self.limits = Limits(*per_minute, output_tokens_per_minute, burst_seconds)
        chosen = make_transport(transport) if completion is None else FunctionTransport(completion)
        execution = ExecutionConfig(max_delay=max_delay_seconds, transport=chosen)
        self._tracker = APIUsageTracker()
        self._history: list[dict[str, Any]] = []
        late = self._tracker.add_calls  # the tracker, not the client: no cycle
        store = store_for(self.rate_limit_store, self.rate_limit_key)  # None: the client's own
        self._runtime = Runtime(self.limits, execution, processes=processes,
                                max_workers=max_workers, late_usage=late, store=store,
                                start_method=start_method, backend=backend,
                                backend_options=ray_actor_options,
                                model_limits=model_limits)  # fmt: skip
        self._finalizer = weakref.finalize(self, self._runtime.close)
        self.last_errors: dict[int, LLMAPIClientError] = {}
        self.cache = open_cache(cache, cache_mode)  # the response cache (``cache``), or None

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
        return {
            "max_requests_per_minute": self.max_requests_per_minute,
            "max_tokens_per_minute": self.max_tokens_per_minute,
            "max_workers": self._runtime.most_threads(),
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
        options = {"max_workers": max_workers, "sanitize": sanitize, "timeout": timeout}
        return make_list(self, requests, max_retries=0, **options)

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
        options = {"max_workers": max_workers, "sanitize": sanitize, "timeout": timeout}
        return make_list(self, requests, max_retries=max_retries, **options)

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
        _settings.check(max_retries=max_retries, max_workers=max_workers, timeout=timeout)
        size = len(requests) if isinstance(requests, Sized) else None
        backend, window = self._runtime.start_batch(size, max_workers)
        options = BatchOptions(max_retries, sanitize, timeout, ordered, window)
        budget = None if self.max_cost is None else Budget(self.max_cost, self._tracker)
        return BatchStream(
            requests,
            backend,
            options,
            tracker=self._tracker,
            budget=budget,
            cache=self.cache,
            keys=self._runtime.keys,
            on_finish=self._runtime.batch_finished,
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

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker processes and free the shared memory; the client can be reused."""
        self._runtime.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<APIClient rpm={self.max_requests_per_minute} tpm={self.max_tokens_per_minute} "
            f"processes={self.processes} backend={self._runtime.backend!r}>"
        )
