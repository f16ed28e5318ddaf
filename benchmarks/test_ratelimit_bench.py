"""How fast the limiter admits: one thread, threads of one process, and several processes.

The engine calls ``acquire`` for every request, so an uncontended acquisition must stay at a few
microseconds. Limits here are far above what the loop can reach, so nothing ever waits and what is
measured is the cost of the bookkeeping (lock, clock, arithmetic) under contention.

    pytest benchmarks/test_ratelimit_bench.py --benchmark-columns=mean,ops
"""

from __future__ import annotations

import threading
import time
from typing import Any

import multiprocess
import pytest

from llm_api_client.ratelimit import Cost, InProcessRateLimiter, Limits, SharedMemoryRateLimiter

FORK = multiprocess.get_context("fork")
UNREACHABLE = Limits(
    requests_per_minute=1e12,
    tokens_per_minute=1e15,
    input_tokens_per_minute=1e15,
    output_tokens_per_minute=1e15,
)
COST = Cost(input_tokens=120, output_tokens=400)
PER_WORKER = 50_000


@pytest.mark.parametrize("backend", [InProcessRateLimiter, SharedMemoryRateLimiter])
def test_uncontended_acquire(benchmark: Any, backend: Any) -> None:
    limiter = backend(UNREACHABLE)
    try:
        benchmark(limiter.acquire, COST)
        benchmark.extra_info["acquisitions_per_second"] = 1.0 / benchmark.stats.stats.mean
    finally:
        limiter.close()


def hammer(limiter: Any, count: int) -> None:
    for _ in range(count):
        limiter.acquire(COST)


def run_threads(limiter: Any, threads: int) -> float:
    pool = [threading.Thread(target=hammer, args=(limiter, PER_WORKER)) for _ in range(threads)]
    start = time.perf_counter()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return threads * PER_WORKER / (time.perf_counter() - start)


def run_processes(limiter: Any, processes: int) -> float:
    workers = [FORK.Process(target=hammer, args=(limiter, PER_WORKER)) for _ in range(processes)]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * processes
    return processes * PER_WORKER / (time.perf_counter() - start)


@pytest.mark.parametrize("threads", [4])
def test_threads_of_one_process(benchmark: Any, threads: int) -> None:
    with SharedMemoryRateLimiter(UNREACHABLE, context=FORK) as limiter:
        rate = benchmark.pedantic(run_threads, args=(limiter, threads), rounds=3, iterations=1)
        benchmark.extra_info["acquisitions_per_second"] = rate
        assert limiter.snapshot().admitted == 3 * threads * PER_WORKER


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_processes(benchmark: Any, processes: int) -> None:
    with SharedMemoryRateLimiter(UNREACHABLE, context=FORK) as limiter:
        rate = benchmark.pedantic(run_processes, args=(limiter, processes), rounds=3, iterations=1)
        benchmark.extra_info["acquisitions_per_second"] = rate
        assert limiter.snapshot().admitted == 3 * processes * PER_WORKER
