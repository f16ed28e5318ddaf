"""The asyncio API: ``amake_requests(_with_retries)``, ``astream`` and ``async with``.

The same engine as the sync API runs the batch; only its waiting moves off the event loop::

    event loop (caller's task)                 driver thread (one per batch)
    ─────────────────────────                  ─────────────────────────────
    async iterable of requests ◀── pulled ──── BatchStream reads its source
       (run_coroutine_threadsafe, one at a       (only while the window has room:
        time, so the engine's backpressure        the same backpressure as for a
        reaches the async iterable)               sync iterable)
    astream yields Result ◀──── handed over ── for result in BatchStream
       (loop.call_soon_threadsafe; at most       (blocks while HANDOFF_RESULTS
        HANDOFF_RESULTS not yet taken)            are unread by the loop)

The driver thread opens the batch (starting worker processes is blocking work too), iterates it
and hands each result over. Nothing here calls ``asyncio.run``: it works in whatever loop is
running, a notebook's included. Cancelling the awaiting task (or closing ``astream`` early)
cancels the batch as Ctrl-C does: dispatch stops at once, requests waiting for the rate limiter
or a backoff are never sent, worker processes are killed, and the driver thread is joined
before the cancellation completes. Results already handed over stay with the caller; the
tracker counts every call made.

Example::

    async with APIClient(max_requests_per_minute=3_000) as client:
        responses = await client.amake_requests_with_retries(requests)
        async for result in client.astream(requests_from_a_queue()):
            print(result.index, result.ok)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

from llm_api_client import _settings
from llm_api_client._constants import HANDOFF_RESULTS
from llm_api_client._seed_compat import history_entry, log_failures
from llm_api_client.engine.coordinator import POLL_SECONDS, BatchStream
from llm_api_client.records import Result

if TYPE_CHECKING:
    from llm_api_client.client import APIClient

__all__ = ["AsyncClientMixin"]

T = TypeVar("T")
Requests: TypeAlias = Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]]


class _Cancelled(Exception):
    """The batch was cancelled while the driver waited on the event loop."""


class _End:
    """The driver's last message: the batch ended, with ``error`` if it raised one."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Batch:
    """One batch driven from its own thread, its results handed to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cancelled = threading.Event()
        self._results: asyncio.Queue[Result | _End] = asyncio.Queue()
        self._room = threading.Semaphore(HANDOFF_RESULTS)
        self._stream: BatchStream | None = None
        self._thread: threading.Thread | None = None

    def start(self, open_stream: Callable[[], BatchStream]) -> None:
        self._thread = threading.Thread(
            target=self._drive, args=(open_stream,), name="llm-api-client-async", daemon=True
        )
        self._thread.start()

    async def next(self) -> Result | _End:
        item = await self._results.get()
        self._room.release()
        return item

    def cancel(self) -> None:
        """Abandon the batch (from the loop); the driver notices within ``POLL_SECONDS``."""
        self.cancelled.set()
        if self._stream is not None:
            self._stream.cancel()

    async def join(self) -> None:
        """Wait, off the loop, until the driver thread has ended (and the batch with it)."""
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- the driver thread ----------------------------------------------------------------
    def _drive(self, open_stream: Callable[[], BatchStream]) -> None:
        try:
            self._stream = stream = open_stream()
            if self.cancelled.is_set():  # cancelled while the batch was being opened
                stream.cancel()
            with stream:
                for result in stream:
                    if not self._hand_over(result):
                        return
        except _Cancelled:
            return
        except BaseException as exc:
            self._hand_over(_End(exc))
            return
        self._hand_over(_End())

    def _hand_over(self, item: Result | _End) -> bool:
        """Queue ``item`` for the loop once there is room; False if cancelled meanwhile."""
        while not self._room.acquire(timeout=POLL_SECONDS):
            if self.cancelled.is_set():
                return False
        try:
            self.loop.call_soon_threadsafe(self._results.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is left to take results
            self.cancelled.set()
            return False
        return not self.cancelled.is_set()

    def wait_on_loop(self, awaitable: Any) -> Any:
        """Run ``awaitable`` on the loop from the driver thread and wait for its value."""
        future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), self.loop)
        while True:
            try:
                return future.result(timeout=POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                if self.cancelled.is_set():
                    future.cancel()
                    raise _Cancelled from None


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _pulled(requests: AsyncIterable[T], batch: _Batch) -> Iterator[T]:
    """The async iterable as a sync one for the driver: each item pulled on the event loop."""
    items = aiter(requests)
    while True:
        try:
            yield batch.wait_on_loop(anext(items))
        except StopAsyncIteration:
            return


class AsyncClientMixin:
    """``APIClient``'s asyncio methods (see the module docstring for how they run)."""

    async def amake_requests(
        self,
        requests: Requests,
        *,
        max_workers: int | None = None,
        sanitize: bool = True,
        timeout: float | None = None,
    ) -> list[Any]:
        """``make_requests`` for asyncio: awaits the responses without blocking the loop.

        ``requests`` may also be an async iterable (read to the end first, as a list is).
        """
        return await _make_list(_client(self), requests, 0, max_workers, sanitize, timeout)

    async def amake_requests_with_retries(
        self,
        requests: Requests,
        *,
        max_workers: int | None = None,
        max_retries: int = 2,
        sanitize: bool = True,
        timeout: float | None = None,
    ) -> list[Any]:
        """``make_requests_with_retries`` for asyncio."""
        return await _make_list(
            _client(self), requests, max_retries, max_workers, sanitize, timeout
        )

    async def astream(self, requests: Requests, **options: Any) -> AsyncIterator[Result]:
        """``stream`` for asyncio: ``async for result in client.astream(requests)``.

        ``requests`` is a sync or an async iterable; an async one is pulled on the loop, only
        as fast as the engine takes requests. Options as for ``stream``. Leaving the loop early
        cancels the batch once the generator is closed (``contextlib.aclosing`` closes it at
        once; otherwise it is closed when collected).
        """
        loop = asyncio.get_running_loop()
        batch = _Batch(loop)
        source = _pulled(requests, batch) if isinstance(requests, AsyncIterable) else requests
        client = _client(self)
        batch.start(lambda: client.stream(source, **options))
        try:
            while not isinstance(item := await batch.next(), _End):
                yield item
            if item.error is not None:
                raise item.error
        finally:
            batch.cancel()  # a no-op for a batch that ended: its stream is done
            await batch.join()

    async def __aenter__(self) -> APIClient:
        return _client(self)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(_client(self).close)  # joining worker processes blocks


def _client(mixin: AsyncClientMixin) -> APIClient:
    return cast("APIClient", mixin)  # the mixin's only class


async def _make_list(
    client: APIClient,
    requests: Requests,
    max_retries: int,
    max_workers: int | None,
    sanitize: bool,
    timeout: float | None,
) -> list[Any]:
    """The async twin of ``APIClient._make_list``: the same list, errors and history."""
    _settings.check(max_retries=max_retries, max_workers=max_workers, timeout=timeout)
    if isinstance(requests, AsyncIterable):
        requests = [request async for request in requests]
    requests = list(requests)
    responses: list[Any] = [None] * len(requests)
    client.last_errors = {}
    if not requests:
        return responses
    options = {"max_retries": max_retries, "sanitize": sanitize, "timeout": timeout}
    async for result in client.astream(requests, max_workers=max_workers, **options):
        responses[result.index] = result.response
        if result.error is not None:
            client.last_errors[result.index] = result.error
    log_failures(client.last_errors, len(requests))
    if client.keep_history:  # dumping every response is CPU work: off the loop too
        entries = await asyncio.to_thread(list, map(history_entry, requests, responses))
        client._history.extend(entries)
    return responses
