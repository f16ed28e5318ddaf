"""How many worker processes and threads a batch gets when the user does not say."""

from __future__ import annotations

import math
import os

from llm_api_client._constants import (
    ASSUMED_LATENCY_SECONDS,
    CALLS_PER_SECOND_PER_PROCESS,
    MAX_THREADS_PER_PROCESS,
    MIN_REQUESTS_FOR_PROCESSES,
    MIN_THREADS,
)


def default_concurrency(requests_per_minute: float | None, processes: int) -> int:
    """Threads in all: enough to reach the request rate at the assumed latency, capped.

    Little's law: requests in flight = rate x latency. An unlimited rate gets the cap.
    """
    cap = MAX_THREADS_PER_PROCESS * max(1, processes)
    if not requests_per_minute:
        return cap
    wanted = math.ceil(requests_per_minute / 60.0 * ASSUMED_LATENCY_SECONDS)
    return max(MIN_THREADS, min(cap, wanted))


def default_processes(requests_per_minute: float | None, batch_size: int | None) -> int:
    """Worker processes for a batch; 0 runs it on threads of the calling process.

    One process sustains about ``CALLS_PER_SECOND_PER_PROCESS`` litellm calls per second, so a
    limit above that wants more processes, up to one per core. Small batches stay in-process:
    starting workers costs more than they would save.
    """
    if batch_size is not None and batch_size < MIN_REQUESTS_FOR_PROCESSES:
        return 0
    rate = (requests_per_minute or math.inf) / 60.0
    needed = math.ceil(rate / CALLS_PER_SECOND_PER_PROCESS) if math.isfinite(rate) else math.inf
    if needed <= 1:
        return 0
    return int(min(needed, os.cpu_count() or 1))


def split_threads(total: int, processes: int) -> int:
    """Threads per worker process so that ``processes`` of them hold ``total`` in all."""
    return max(1, math.ceil(total / max(1, processes)))
