"""The multi-process backend: worker processes, each a thread pool, one pair of pipes each.

The coordinator sends each item to the least-loaded live worker down that worker's task pipe,
so it always knows which requests a worker holds: when a worker dies its in-flight items are
handed back through ``lost()`` to be re-dispatched, and a replacement worker is started.

Each worker answers on a result pipe of its own, never a shared queue: a worker killed while
writing (``kill -9``, the OOM killer) would otherwise die holding the shared queue's write lock
and silence every other worker (why CPython's process pool declares itself broken). Here the
coordinator holds no copy of a result pipe's write end, so a dead worker's pipe ends in EOF
after its last whole message, and nothing else is affected.

Workers start the way ``start_method`` says. Forked (Linux's default), they inherit the
shared-memory rate limiter, its locks and the warmed-up litellm, and start in milliseconds.
Spawned (macOS, Windows, or asked for), each starts from a clean interpreter: the limiter
reaches it pickled, by the shared memory's name and the locks, and it warms litellm up itself
(about 4 s; the workers do it in parallel, and items wait in their task pipes meanwhile). The
backend owns that limiter: ``close`` unlinks it after the workers. If the coordinator dies first
(SIGTERM, SIGKILL), a forked worker unlinks it on its way out; a spawned one cannot (it did not
create it), and the resource tracker that the coordinator started does once the last of them
has exited. Either way the segment never outlives them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import multiprocess
from multiprocess.connection import wait

from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.messages import STOP, CallItem, Outcome, WorkerExited, decode, encode
from llm_api_client.engine.worker import worker_main
from llm_api_client.ratelimit.base import RateLimiter

# Items queued to a worker beyond its threads, so a thread that finishes finds work at once.
PREFETCH_PER_WORKER = 4
# A clean shutdown waits this long for workers to finish what they hold.
SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass
class _Worker:
    worker_id: int
    process: Any
    tasks: Any  # the coordinator's (write) end of the task pipe
    results: Any  # the coordinator's (read) end of the result pipe
    in_flight: dict[int, CallItem] = field(default_factory=dict)
    exited: bool = False  # said goodbye, or its result pipe ended

    @property
    def usable(self) -> bool:
        return not self.exited and self.process.is_alive()


class ProcessBackend:
    """``processes`` workers x ``threads`` threads, one shared rate limiter it owns.

    ``limiter`` must have been made with ``context=`` the ``start_method``'s context (its locks
    are then ones that context can hand to a worker).
    """

    def __init__(
        self,
        limiter: RateLimiter,  # over shared memory (per model too: ratelimit.per_model)
        config: ExecutionConfig,
        processes: int,
        threads: int,
        *,
        start_method: str = "fork",
    ) -> None:
        # Before starting workers: responses arriving pickled can be read here, and forked
        # workers inherit the warm-up (spawned ones do their own).
        config.transport.setup()
        self._ctx = multiprocess.get_context(start_method)
        self._limiter = limiter
        self._config = config
        self._threads = threads
        self._owner_of: dict[int, _Worker] = {}
        self._lost: list[CallItem] = []
        # Outcomes read from a dead worker's pipe, handed out by the next poll.
        self._drained: list[Outcome] = []
        self._next_id = 0
        # A crash loop must not fork forever: allow as many replacements as workers.
        self._respawns_left = processes
        self._workers = [self._start_worker() for _ in range(processes)]

    @property
    def capacity(self) -> int:
        return len(self._workers) * (self._threads + PREFETCH_PER_WORKER)

    def _start_worker(self) -> _Worker:
        task_reader, task_writer = self._ctx.Pipe(duplex=False)
        result_reader, result_writer = self._ctx.Pipe(duplex=False)
        worker_id, self._next_id = self._next_id, self._next_id + 1
        process = self._ctx.Process(
            target=worker_main,
            args=(worker_id, task_reader, result_writer, self._limiter, self._config),
            kwargs={"threads": self._threads, "parent_pid": os.getpid()},
            name=f"llm-api-client-worker-{worker_id}",
            daemon=True,
        )
        process.start()
        # Only the worker keeps these ends, so its death closes them (EOF, not a hang).
        task_reader.close()
        result_writer.close()
        return _Worker(worker_id, process, task_writer, result_reader)

    def submit(self, item: CallItem) -> None:
        worker = min(self._live_workers(), key=lambda w: len(w.in_flight))
        worker.tasks.send_bytes(encode(item))
        worker.in_flight[item.index] = item
        self._owner_of[item.index] = worker

    def _live_workers(self) -> list[_Worker]:
        live = [w for w in self._workers if w.usable]
        if not live:
            self._reap_dead_workers()
            live = [w for w in self._workers if w.usable]
        if not live:
            raise RuntimeError("no live worker process")
        return live

    def poll(self, timeout: float) -> list[Outcome]:
        # A worker whose pipe ended while it held requests stays watched until its sentinel
        # fires: the pipe's EOF can come first, and an unwatched dead worker is never reaped
        # (its requests never reported lost: the batch would wait forever).
        watched = [w for w in self._workers if not w.exited or w.in_flight]
        handles = [w.results for w in watched] + [w.process.sentinel for w in watched]
        ready = set(wait(handles, timeout)) if handles else set()
        outcomes, self._drained = self._drained, []
        for worker in watched:
            if worker.results in ready:
                outcomes.extend(self._drain(worker))
        if any(w.process.sentinel in ready for w in watched):
            self._reap_dead_workers()
            outcomes, self._drained = outcomes + self._drained, []
        return outcomes

    def _drain(self, worker: _Worker) -> list[Outcome]:
        """Every whole message the worker has sent; at EOF the worker is gone."""
        outcomes: list[Outcome] = []
        try:
            while worker.results.poll():
                message = decode(worker.results.recv_bytes())
                if isinstance(message, WorkerExited):
                    worker.exited = True
                    break
                self._owner_of.pop(message.index, None)
                worker.in_flight.pop(message.index, None)
                outcomes.append(message)
        except (EOFError, OSError):  # it died, possibly in the middle of a message
            worker.exited = True
        return outcomes

    def _reap_dead_workers(self) -> None:
        for worker in list(self._workers):
            if worker.process.is_alive():
                continue
            self._drained.extend(self._drain(worker))  # what it sent before dying is kept
            self._lost.extend(worker.in_flight.values())
            for index in worker.in_flight:
                self._owner_of.pop(index, None)
            self._retire(worker)
            if self._respawns_left > 0 or not self._workers:
                self._respawns_left -= 1
                self._workers.append(self._start_worker())

    def _retire(self, worker: _Worker) -> None:
        worker.process.join(timeout=1)
        worker.tasks.close()
        worker.results.close()
        self._workers.remove(worker)

    def lost(self) -> list[CallItem]:
        lost, self._lost = self._lost, []
        return lost

    def abandon(self) -> None:
        """Kill every worker now: calls on the wire are cut, nothing more is sent."""
        for worker in self._workers:
            worker.process.kill()
        for worker in list(self._workers):
            self._retire(worker)
        self._owner_of.clear()

    def close(self) -> None:
        """Let workers finish what they hold, then join them."""
        for worker in self._workers:
            if worker.usable:
                worker.tasks.send_bytes(STOP)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while any(w.usable for w in self._workers) and time.monotonic() < deadline:
            self.poll(min(0.2, max(0.0, deadline - time.monotonic())))
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
        for worker in list(self._workers):
            self._retire(worker)
        self._limiter.close()

    def forget(self) -> None:
        """In a forked child: let go of the parent's workers without touching them.

        The child closes only its copies of their pipes, and takes them off multiprocess's list
        of this process's children, which would otherwise terminate them when the child exits.
        The limiter is left mapped: a worker forked from here may be using it.
        """
        for worker in self._workers:
            worker.tasks.close()
            worker.results.close()
            multiprocess.process._children.discard(worker.process)
        self._workers = []
        self._owner_of.clear()

    def __repr__(self) -> str:
        alive = sum(w.process.is_alive() for w in self._workers)
        in_flight = len(self._owner_of)
        method = self._ctx.get_start_method()
        return (
            f"<ProcessBackend workers={alive} threads={self._threads} in_flight={in_flight} "
            f"start_method={method}>"
        )
