"""The in-process backend: daemon threads of the calling process.

Used for small batches and limits one process can serve (about 150-250 calls/s), where starting
worker processes would cost more than it saves. Threads start as items arrive, up to ``threads``.

``abandon`` (a timeout, a ``break``, Ctrl-C, an error in the caller's requests) sends nothing
more: items no thread has started are dropped, and an item waiting for the rate limiter or in a
retry's backoff stops waiting, unsent (``cancellation``). A call already on the wire cannot be
cut: it finishes in the background, and what it cost goes to ``late_usage`` (the tracker), not
to the batch, which has ended. The threads are daemons and ``close`` does not wait for such
calls, so a call hung on the wire keeps neither ``close`` nor the interpreter's exit waiting.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from llm_api_client.engine import cancellation
from llm_api_client.engine.execution import ExecutionConfig, run_item
from llm_api_client.engine.messages import CallItem, Outcome
from llm_api_client.ratelimit.base import RateLimiter
from llm_api_client.records import UsageRecord

T = TypeVar("T")


class ThreadBackend:
    """Up to ``threads`` daemon threads sharing one rate limiter."""

    def __init__(
        self,
        limiter: RateLimiter,
        config: ExecutionConfig,
        threads: int,
        *,
        late_usage: Callable[[UsageRecord], None] = lambda record: None,
    ) -> None:
        config.transport.setup()
        self._limiter = limiter
        self._config = config
        self._threads = threads
        self._late_usage = late_usage
        self._tasks: queue.SimpleQueue[CallItem | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # released by a thread each time it has finished one
        self._workers: list[threading.Thread] = []
        self._abandoned = threading.Event()
        # Held while an outcome is handed over: it goes to the batch or to late_usage, never both.
        self._handover = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._threads

    def submit(self, item: CallItem) -> None:
        self._tasks.put(item)
        if not self._idle.acquire(blocking=False) and len(self._workers) < self._threads:
            self._start_worker()

    def _start_worker(self) -> None:
        name = f"llm-api-client-{len(self._workers)}"
        worker = threading.Thread(target=self._work, name=name, daemon=True)
        worker.start()
        self._workers.append(worker)

    def _work(self) -> None:
        while (item := self._tasks.get()) is not None:
            if not self._abandoned.is_set():
                self._run(item)
            self._idle.release()

    def _run(self, item: CallItem) -> None:
        with cancellation.cancelled_by(self._abandoned):
            outcome = run_item(item, self._limiter, self._config)
        with self._handover:
            if not self._abandoned.is_set():
                self._done.put(outcome)
                return
        self._late_usage(outcome.record)

    def poll(self, timeout: float) -> list[Outcome]:
        try:
            first = self._done.get(timeout=timeout)
        except queue.Empty:
            return []
        return [first, *_drain(self._done)]

    def lost(self) -> list[CallItem]:
        return []

    def abandon(self) -> None:
        with self._handover:
            self._abandoned.set()
            unread = _drain(self._done)  # finished, but the batch will not read them now
        for outcome in unread:
            self._late_usage(outcome.record)

    def close(self) -> None:
        """Stop the threads; wait for them unless abandoned (then they may be on the wire)."""
        for _ in self._workers:
            self._tasks.put(None)
        if not self._abandoned.is_set():
            for worker in self._workers:
                worker.join()

    def forget(self) -> None:
        """In a forked child: nothing to release, the threads did not come along."""

    def __repr__(self) -> str:
        return (
            f"<ThreadBackend threads={len(self._workers)}/{self._threads} "
            f"abandoned={self._abandoned.is_set()}>"
        )


def _drain(items: queue.SimpleQueue[T]) -> list[T]:
    drained: list[T] = []
    while True:
        try:
            drained.append(items.get_nowait())
        except queue.Empty:
            return drained
