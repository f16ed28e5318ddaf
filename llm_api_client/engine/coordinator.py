"""The coordinator's loop: read requests, prepare them, dispatch, collect, merge, yield.

It runs in the caller's thread as a generator (``BatchStream``), so a batch needs no thread of
its own in the parent and stops the moment the caller stops iterating. Memory stays bounded:
requests are pulled from the source only while fewer than the window's size are in flight or
waiting to be yielded in order (the window follows the observed latency unless the user fixed
``max_workers``; see ``sizing``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_api_client.engine.backend import Backend
from llm_api_client.engine.execution import failed_outcome
from llm_api_client.engine.messages import CallItem, Outcome
from llm_api_client.engine.sizing import FixedWindow, Window
from llm_api_client.errors import (
    BatchTimeoutError,
    BudgetExceededError,
    RequestError,
    WorkerCrashedError,
)
from llm_api_client.prepare.request import PreparedRequest, prepare_request
from llm_api_client.providers.models import provider_of
from llm_api_client.providers.pricing import estimate_cost
from llm_api_client.ratelimit.base import Cost
from llm_api_client.records import Result

if TYPE_CHECKING:
    from llm_api_client.cache import ResponseCache
    from llm_api_client.engine.keyguard import KeyGuard
    from llm_api_client.tracker import APIUsageTracker

logger = logging.getLogger("llm_api_client")

# How long one wait for outcomes may last: bounds how late a stop or timeout is noticed.
POLL_SECONDS = 0.1
# A request whose worker died is sent again at most this many times.
MAX_REDISPATCHES = 1


@dataclass(frozen=True)
class BatchOptions:
    """How one batch runs (the per-call arguments of ``make_requests``/``stream``)."""

    max_retries: int = 0
    sanitize: bool = True
    timeout: float | None = None
    ordered: bool = False
    window: Window | None = None  # None: the backend's capacity


class Budget:
    """The spend cap: refuses a request whose projected cost would pass ``max_cost``.

    What is spent is the ``tracker``'s total (every batch of the client counts) plus what the
    requests in flight are projected to cost.
    """

    def __init__(self, max_cost: float, tracker: APIUsageTracker) -> None:
        self.max_cost = max_cost
        self._tracker = tracker
        self._reserved: dict[int, float] = {}
        self._reserved_total = 0.0

    @property
    def spent(self) -> float:
        return float(self._tracker.total_cost)

    def admit(self, index: int, model: str, cost: Cost) -> bool:
        projected = estimate_cost(model, cost)
        if self.spent + self._reserved_total + projected > self.max_cost:
            return False
        self._reserved[index] = projected
        self._reserved_total += projected
        return True

    def release(self, index: int) -> None:
        self._reserved_total -= self._reserved.pop(index, 0.0)


class _Source:
    """The caller's iterable, numbered and read lazily, with one item of look-ahead.

    Looking ahead tells whether a result is the batch's last. An error the iterable raises while
    looked ahead is raised by the next ``take``, so the result at hand is handed out first.
    """

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._items = enumerate(iterable)
        self._ahead: list[tuple[int, Any]] = []
        self._error: Exception | None = None
        self.exhausted = False

    def take(self) -> tuple[int, Any] | None:
        """The next (index, item); None once the iterable is exhausted."""
        if self._ahead:
            return self._ahead.pop()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        try:
            return next(self._items)
        except StopIteration:
            self.exhausted = True
            return None

    def put_back(self, taken: tuple[int, Any]) -> None:
        """Give back what ``take`` gave: the next ``take`` returns it again."""
        self._ahead.append(taken)

    def at_end(self) -> bool:
        """Whether ``take`` has nothing more to give (reads one item ahead to find out)."""
        if self.exhausted or self._ahead or self._error is not None:
            return self.exhausted
        try:
            self._ahead.append(next(self._items))
        except StopIteration:
            self.exhausted = True
        except Exception as exc:
            self._error = exc
        return self.exhausted


class BatchStream(Iterator[Result]):
    """Results of one batch as they finish; iterate it, ``stop()`` it, or ``close()`` it.

    ``stop()`` may be called from a signal handler: it only sets a flag. Dispatch then stops,
    the requests in flight finish and are yielded, and iteration ends. ``close()`` (or leaving
    a ``with`` block, or breaking out of a loop and dropping the stream) abandons the requests
    in flight at once.

    Every outcome's usage goes to ``tracker``; ``budget`` is the spend cap; ``on_finish`` hands
    the backend back once (to the ``Runtime``), saying whether it can run another batch.
    """

    def __init__(
        self,
        source: Iterable[Any],
        backend: Backend,
        options: BatchOptions,
        *,
        tracker: APIUsageTracker | None = None,
        budget: Budget | None = None,
        on_finish: Callable[[bool], None] = lambda backend_usable: None,
        clock: Callable[[], float] = time.monotonic,
        cache: ResponseCache | None = None,
        keys: KeyGuard | None = None,
    ) -> None:
        self._source = _Source(source)
        self._backend = backend
        self._options = options
        self._tracker = tracker
        self._on_finish = on_finish
        self._budget = budget
        self._clock = clock
        self._cache = cache
        self._keys = keys
        self._window = options.window or FixedWindow(backend.capacity)
        self._in_flight: dict[int, CallItem] = {}
        self._ready: deque[Result] = deque()
        self._reorder: dict[int, Result] = {}
        self._next_index = 0  # the next index to yield in ordered mode
        self._stopping = False
        self._abandoned = False
        self._cancelled = False  # set from another thread: see cancel()
        self._ended = False
        self.submitted = 0
        self.completed = 0
        self.stop_reason: str | None = None
        self._results = self._run()

    # -- public surface -------------------------------------------------------------------
    def __next__(self) -> Result:
        return next(self._results)

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def stop(self) -> None:
        """Stop dispatching; what is in flight still finishes and is yielded."""
        self._stopping = True
        if self.stop_reason is None:
            self.stop_reason = "stopped"

    def close(self) -> None:
        """Abandon the batch now (requests in flight are cut off)."""
        self._results.close()

    def cancel(self) -> None:
        """``close()`` from any thread: the thread iterating abandons within ``POLL_SECONDS``.

        For a driver that iterates in another thread (the asyncio API), where ``close()``
        would find the generator running. Iteration then ends without another result.
        """
        self._cancelled = True

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def window(self) -> int:
        """How many requests may be in flight or waiting to be yielded now."""
        return min(self._window.size, self._backend.capacity)

    def __repr__(self) -> str:
        return (
            f"<BatchStream submitted={self.submitted} completed={self.completed} "
            f"in_flight={len(self._in_flight)} stopping={self._stopping}>"
        )

    # -- the loop -------------------------------------------------------------------------
    def _run(self) -> Generator[Result, None, None]:
        deadline = None if self._options.timeout is None else self._clock() + self._options.timeout
        try:
            while not self._finished():
                if self._cancelled:
                    return
                if deadline is not None and self._clock() >= deadline:
                    yield from self._expire()
                    return
                self._fill()
                yield from self._take_ready()
                wait = (
                    POLL_SECONDS
                    if deadline is None
                    else min(POLL_SECONDS, deadline - self._clock())
                )
                self._collect(max(0.0, wait))
                yield from self._take_ready()
            yield from self._take_ready(final=True)
        finally:
            self._end()

    def _end(self) -> None:
        """Hand the backend back, once; what is still in flight then is abandoned."""
        if self._ended:
            return
        self._ended = True
        if self._in_flight:
            self._abandon()
        self._on_finish(not self._abandoned)

    def _abandon(self) -> None:
        self._abandoned = True
        self._backend.abandon()

    def _finished(self) -> bool:
        no_more = self._source.exhausted or self._stopping
        return no_more and not self._in_flight and not self._ready and not self._reorder

    def _fill(self) -> None:
        while not (self._source.exhausted or self._stopping) and self._has_room():
            taken = self._source.take()
            if taken is None:
                return
            if self._keys is not None and self._keys.must_wait(taken[1]):
                self._source.put_back(taken)  # key guard hook: its key is on probation
                return
            self._dispatch(*taken)

    def _has_room(self) -> bool:
        return len(self._in_flight) + len(self._reorder) + len(self._ready) < self.window

    def _dispatch(self, index: int, raw: object) -> None:
        try:
            prepared = prepare_request(raw, index=index, sanitize=self._options.sanitize)
        except RequestError as error:
            self._finish(failed_outcome(index, raw, error))
            return
        # cache hook: a hit is answered here, never sent, never waits, never budgeted
        if self._cache is not None and (hit := self._cache.lookup(index, prepared.request)):
            self._finish(hit)
            return
        # key guard hook: a key the provider keeps refusing is not used again
        if self._keys is not None and (refusal := self._keys.refusal(index, prepared.request)):
            self._finish(failed_outcome(index, prepared.request, refusal))
            return
        if self._budget is not None and not self._budget.admit(
            index, prepared.model, prepared.cost
        ):
            self._refuse_over_budget(index, prepared)
            return
        self._window.dispatched(prepared.cost)
        item = CallItem(
            index=index,
            request=prepared.request,
            cost=prepared.cost,
            model=prepared.model,
            provider=provider_of(prepared.model, prepared.request),
            max_retries=self._options.max_retries,
        )
        self._send(item)

    def _send(self, item: CallItem) -> None:
        try:
            self._backend.submit(item)
        except Exception as exc:
            error = RequestError(f"the request could not be sent to a worker: {exc!r}")
            self._finish(failed_outcome(item.index, item.request, error))
            return
        self._in_flight[item.index] = item
        self.submitted += 1
        if self._keys is not None:
            self._keys.sent(item.index, item.request)

    def _refuse_over_budget(self, index: int, prepared: PreparedRequest) -> None:
        assert self._budget is not None
        spent = self._budget.spent
        error = BudgetExceededError(
            f"dispatch stopped: spent ${spent:.4f} of the ${self._budget.max_cost:.4f} cap, and "
            "this request could pass it",
            index=index,
        )
        self._finish(failed_outcome(index, prepared.request, error))
        self._stopping = True
        self.stop_reason = "budget"

    def _collect(self, timeout: float) -> None:
        for outcome in self._backend.poll(timeout):
            if outcome.index in self._in_flight:
                item = self._in_flight.pop(outcome.index)
                if self._cache is not None:  # cache hook: keep the answer (not an error)
                    self._cache.remember(item.request, outcome)
                self._window.finished(outcome.record)
                self._finish(outcome)
        for item in self._backend.lost():
            self._redispatch_or_fail(item)

    def _redispatch_or_fail(self, item: CallItem) -> None:
        del self._in_flight[item.index]
        if item.redispatches < MAX_REDISPATCHES:
            self._send(dataclasses.replace(item, redispatches=item.redispatches + 1))
            return
        error = WorkerCrashedError("the worker process died while the request was in flight")
        self._finish(failed_outcome(item.index, item.request, error))

    def _finish(self, outcome: Outcome) -> None:
        if self._budget is not None:
            self._budget.release(outcome.index)
        if self._keys is not None:
            self._keys.settled(outcome)
        if self._tracker is not None:
            self._tracker.add(outcome.record)
        if outcome.error is not None:
            logger.debug("request %d failed: %r", outcome.index, outcome.error)
        self.completed += 1
        result = Result.from_outcome(outcome)
        if self._options.ordered:
            self._reorder[result.index] = result
        else:
            self._ready.append(result)

    def _take_ready(self, final: bool = False) -> Iterator[Result]:
        while (result := self._pop_ready(final)) is not None:
            if self._nothing_after():
                # Free the client now: a caller that stops at the last result (``zip``) never
                # asks for the StopIteration that would otherwise end the batch.
                self._end()
            yield result

    def _pop_ready(self, final: bool) -> Result | None:
        if self._ready:
            return self._ready.popleft()
        if self._next_index in self._reorder:
            self._next_index += 1
            return self._reorder.pop(self._next_index - 1)
        if final and self._reorder:  # gaps: requests never dispatched after a stop
            return self._reorder.pop(min(self._reorder))
        return None

    def _nothing_after(self) -> bool:
        if self._in_flight or self._ready or self._reorder:
            return False
        return self._stopping or self._source.at_end()

    def _expire(self) -> Iterator[Result]:
        """The global timeout ran out: cut off what is in flight and report it."""
        self._stopping = True
        self.stop_reason = "timeout"
        if self._in_flight:
            self._abandon()
        in_flight, self._in_flight = self._in_flight, {}
        for item in in_flight.values():
            error = BatchTimeoutError(f"the batch timeout of {self._options.timeout} s ran out")
            self._finish(failed_outcome(item.index, item.request, error))
        yield from self._take_ready(final=True)
