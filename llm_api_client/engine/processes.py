"""The multi-process backend: worker processes, each a thread pool, fed by per-worker queues.

The coordinator keeps a queue per worker and sends each item to the least-loaded live worker,
so it always knows which requests a worker holds: when a worker dies its in-flight items are
handed back through ``lost()`` to be re-dispatched, and a replacement worker is started. All
workers answer on one result queue. Workers are forked: they inherit the shared-memory rate
limiter and its lock, and start in milliseconds (spawning would re-import litellm, ~4 s).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import multiprocess
from multiprocess.connection import wait

from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.messages import CallItem, WorkerExited, decode, encode
from llm_api_client.engine.warmup import build_response_types, warm_litellm
from llm_api_client.engine.worker import worker_main
from llm_api_client.pipeline.call import Outcome
from llm_api_client.ratelimit.base import RateLimiter

# Items queued to a worker beyond its threads, so a thread that finishes finds work at once.
PREFETCH_PER_WORKER = 4
# A clean shutdown waits this long for workers to finish what they hold.
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass
class _Worker:
    worker_id: int
    process: Any
    tasks: Any
    in_flight: dict[int, CallItem] = field(default_factory=dict)
    exited: bool = False


class ProcessBackend:
    """``processes`` forked workers x ``threads`` threads, one shared rate limiter."""

    def __init__(
        self, limiter: RateLimiter, config: ExecutionConfig, processes: int, threads: int
    ) -> None:
        if config.completion is None:
            warm_litellm()  # before forking: paid once, inherited by every worker
        else:
            build_response_types()  # responses arrive pickled; they must dump here too
        self._ctx = multiprocess.get_context("fork")
        self._limiter = limiter
        self._config = config
        self._threads = threads
        self._results = self._ctx.Queue()
        self._owner_of: dict[int, _Worker] = {}
        self._lost: list[CallItem] = []
        self._next_id = 0
        # A crash loop must not fork forever: allow as many replacements as workers.
        self._respawns_left = processes
        self._workers = [self._start_worker() for _ in range(processes)]

    @property
    def capacity(self) -> int:
        return len(self._workers) * (self._threads + PREFETCH_PER_WORKER)

    @property
    def alive(self) -> bool:
        return any(w.process.is_alive() for w in self._workers)

    def _start_worker(self) -> _Worker:
        tasks = self._ctx.Queue()
        args = (self._next_id, tasks, self._results, self._limiter, self._config, self._threads)
        process = self._ctx.Process(
            target=worker_main,
            args=(*args, os.getpid()),
            name=f"llm-api-client-worker-{self._next_id}",
            daemon=True,
        )
        process.start()
        self._next_id += 1
        return _Worker(self._next_id - 1, process, tasks)

    def submit(self, item: CallItem) -> None:
        worker = min(self._live_workers(), key=lambda w: len(w.in_flight))
        worker.tasks.put(encode(item))
        worker.in_flight[item.index] = item
        self._owner_of[item.index] = worker

    def _live_workers(self) -> list[_Worker]:
        live = [w for w in self._workers if not w.exited and w.process.is_alive()]
        if not live:
            raise RuntimeError("no live worker process")
        return live

    def poll(self, timeout: float) -> list[Outcome]:
        reader = self._results._reader
        sentinels = [w.process.sentinel for w in self._workers if not w.exited]
        ready = wait([reader, *sentinels], timeout)
        outcomes = self._drain() if reader in ready else []
        if len(ready) > (reader in ready):
            self._reap_dead_workers()
        return outcomes

    def _drain(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while self._results._reader.poll():
            message = decode(self._results.get())
            if isinstance(message, WorkerExited):
                self._mark_exited(message.worker_id)
                continue
            owner = self._owner_of.pop(message.index, None)
            if owner is not None:
                owner.in_flight.pop(message.index, None)
            outcomes.append(message)
        return outcomes

    def _mark_exited(self, worker_id: int) -> None:
        for worker in self._workers:
            if worker.worker_id == worker_id:
                worker.exited = True

    def _reap_dead_workers(self) -> None:
        for worker in list(self._workers):
            if worker.exited or worker.process.is_alive():
                continue
            self._drain()  # outcomes it sent before dying are not lost
            self._lost.extend(worker.in_flight.values())
            for index in worker.in_flight:
                self._owner_of.pop(index, None)
            worker.tasks.cancel_join_thread()
            self._workers.remove(worker)
            if self._respawns_left > 0 or not self._workers:
                self._respawns_left -= 1
                self._workers.append(self._start_worker())

    def lost(self) -> list[CallItem]:
        lost, self._lost = self._lost, []
        return lost

    def abandon(self) -> None:
        """Kill every worker now: calls on the wire are cut, nothing more is sent."""
        for worker in self._workers:
            worker.process.kill()
        for worker in self._workers:
            worker.process.join(timeout=5)
            worker.tasks.cancel_join_thread()
            worker.exited = True
        self._results.cancel_join_thread()
        self._owner_of.clear()

    def close(self) -> None:
        """Let workers finish what they hold, then join them (their queues drained first)."""
        live = [w for w in self._workers if not w.exited and w.process.is_alive()]
        for worker in live:
            worker.tasks.put(None)
        self._await_exits(live)
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(timeout=5)
            worker.tasks.cancel_join_thread()
        self._results.cancel_join_thread()

    def _await_exits(self, live: list[_Worker]) -> None:
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while any(not w.exited and w.process.is_alive() for w in live):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.poll(min(remaining, 0.2))

    def __repr__(self) -> str:
        alive = sum(w.process.is_alive() for w in self._workers)
        in_flight = len(self._owner_of)
        return f"<ProcessBackend workers={alive} threads={self._threads} in_flight={in_flight}>"
