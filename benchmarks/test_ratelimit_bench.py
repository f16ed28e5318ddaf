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


# --- end to end: two worker processes against the simulator's per-second windows ----------------

E2E_CASES = {
    # name: (simulator and client limits, requests, max_tokens)
    "rpm_bound": ({"rpm": 3_000, "tpm": 10**9}, 1_000, 16),
    "tpm_bound": ({"rpm": 10**6, "tpm": 600_000}, 400, 400),
}


def run_batch(limits: dict[str, int], count: int, max_tokens: int) -> dict[str, float]:
    from llm_api_client.client import APIClient
    from llm_api_client.simulator import Simulator

    with Simulator(process=True, latency_ms=50, rpm=limits["rpm"], tpm=limits["tpm"]) as sim:
        requests = [
            {
                "model": "openai/gpt-4o-mini",
                "api_base": sim.base_url,
                "api_key": "sk-simulated",
                "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": f"Summarise document {i} in one line."}],
            }
            for i in range(count + 10)
        ]
        client = APIClient(
            max_requests_per_minute=limits["rpm"],
            max_tokens_per_minute=limits["tpm"],
            processes=2,
            keep_history=False,
        )
        with client:
            client.make_requests(requests[:10])  # start the workers outside the measurement
            sim.reset()
            start = time.perf_counter()
            answers = client.make_requests(requests[10:])
            seconds = time.perf_counter() - start
            stats = sim.stats()
    per_second = {"rpm": count / seconds * 60, "tpm": stats["tokens_charged"] / seconds * 60}
    bound = "rpm" if limits["rpm"] < 10**6 else "tpm"
    return {
        "answered": sum(answer is not None for answer in answers),
        "rejected_429": stats["rejected_429"],
        "share_429": stats["rejected_429"] / count,
        "seconds": seconds,
        "throughput_of_limit": per_second[bound] / limits[bound],
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", list(E2E_CASES))
def test_end_to_end_at_the_simulators_limit(benchmark: Any, case: str) -> None:
    limits, count, max_tokens = E2E_CASES[case]
    figures = benchmark.pedantic(run_batch, args=(limits, count, max_tokens), rounds=1)
    benchmark.extra_info.update(figures)
    assert figures["answered"] == count
    assert figures["share_429"] <= 0.005
    assert figures["throughput_of_limit"] >= 0.94
