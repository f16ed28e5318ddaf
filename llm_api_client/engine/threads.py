"""The in-process backend: a thread pool in the calling process.

Used for small batches and limits one process can serve (about 150-250 calls/s), where starting
worker processes would cost more than it saves. Threads cannot be killed: ``abandon`` makes
queued items return at once and lets calls already on the wire finish (bounded by their
per-request timeout) while their outcomes are dropped.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from llm_api_client.call.execute import Outcome
from llm_api_client.engine.execution import ExecutionConfig, run_item
from llm_api_client.engine.messages import CallItem
from llm_api_client.ratelimit.base import RateLimiter


class ThreadBackend:
    """``threads`` worker threads sharing one rate limiter."""

    def __init__(self, limiter: RateLimiter, config: ExecutionConfig, threads: int) -> None:
        config.transport.setup()
        self._limiter = limiter
        self._config = config
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="llm-api-client")
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._abandoned = threading.Event()

    @property
    def capacity(self) -> int:
        return self._threads

    def submit(self, item: CallItem) -> None:
        self._pool.submit(self._run, item)

    def _run(self, item: CallItem) -> None:
        if self._abandoned.is_set():
            return
        outcome = run_item(item, self._limiter, self._config)
        if not self._abandoned.is_set():
            self._done.put(outcome)

    def poll(self, timeout: float) -> list[Outcome]:
        try:
            outcomes = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                outcomes.append(self._done.get_nowait())
            except queue.Empty:
                return outcomes

    def lost(self) -> list[CallItem]:
        return []

    def abandon(self) -> None:
        self._abandoned.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        # Abandoned calls may still be on the wire; waiting for them would undo the abandon.
        self._pool.shutdown(wait=not self._abandoned.is_set())

    def __repr__(self) -> str:
        return f"<ThreadBackend threads={self._threads} abandoned={self._abandoned.is_set()}>"
