"""What our per-request bookkeeping costs: the tracker, pricing, and ``execute`` around a call.

Every request of a million-request batch goes through ``execute`` in a worker thread, is priced
with ``cost_of`` and is added to the tracker in the parent, so each must cost microseconds next
to the 3.6-4.4 ms of CPU litellm itself spends on a call.

    pytest benchmarks/test_tracker_bench.py --benchmark-columns=min,mean,ops

End to end (CPU per request of a thread pool calling bare ``litellm.completion`` versus one
calling ``execute``, against the simulator in its own process)::

    python benchmarks/test_tracker_bench.py [requests] [threads]
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llm_api_client import _offline
from llm_api_client.call.execute import execute
from llm_api_client.call.retry import RetryPolicy
from llm_api_client.providers.litellm_transport import FunctionTransport, LiteLLMTransport
from llm_api_client.providers.logging_switch import unheard_logging_skipped
from llm_api_client.providers.pricing import cost_of
from llm_api_client.ratelimit.base import (
    Admission,
    Cost,
    LimiterSnapshot,
    Limits,
    ProviderLimits,
    RateLimiter,
)
from llm_api_client.records import UsageRecord
from llm_api_client.tracker import APIUsageTracker

litellm = _offline.litellm()

N = 10_000


def records(n: int = N) -> list[UsageRecord]:
    return [
        UsageRecord(
            index=i,
            model=("openai/gpt-4o-mini", "openai/gpt-4o")[i % 2],
            provider="openai",
            prompt_tokens=100 + i % 50,
            completion_tokens=20 + i % 7,
            cached_tokens=i % 3,
            cost=1e-5,
            response_time=0.05 + (i % 100) / 1000,
            attempts=1 + i % 2,
            rate_limited=i % 2,
            error=None if i % 10 else "RateLimitError",
            finished_at=1_700_000_000.0 + i / 100,
        )
        for i in range(n)
    ]


def per_call_us(benchmark: Any, calls: int) -> None:
    if benchmark.stats is None:  # --benchmark-disable: ran once, nothing measured
        return
    stats = benchmark.stats.stats
    benchmark.extra_info["us_per_call_best"] = round(stats.min / calls * 1e6, 3)
    benchmark.extra_info["us_per_call_mean"] = round(stats.mean / calls * 1e6, 3)


def test_tracker_add(benchmark: Any) -> None:
    batch = records()

    def add_all() -> None:
        tracker = APIUsageTracker()
        for record in batch:
            tracker.add(record)

    benchmark.pedantic(add_all, rounds=5)
    per_call_us(benchmark, len(batch))


def test_tracker_add_many(benchmark: Any) -> None:
    batch = records()
    benchmark.pedantic(lambda: APIUsageTracker().add_many(batch), rounds=5)
    per_call_us(benchmark, len(batch))


def test_tracker_details_after_100k(benchmark: Any) -> None:
    tracker = APIUsageTracker()
    tracker.add_many(records(100_000))

    def details() -> None:
        tracker._sorted_times = None  # measure the sort, not the cached order
        assert tracker.details["num_requests"] == 100_000

    benchmark.pedantic(details, rounds=5)


def test_cost_of(benchmark: Any) -> None:
    def price_all() -> None:
        for i in range(N):
            cost_of("openai/gpt-4o-mini", 100 + i, 20, 10)

    benchmark.pedantic(price_all, rounds=5)
    per_call_us(benchmark, N)


def test_litellm_completion_cost_for_comparison(benchmark: Any) -> None:
    response = litellm.ModelResponse(
        model="gpt-4o-mini",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        usage={"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    )
    calls = 200

    def price_all() -> None:
        for _ in range(calls):
            litellm.completion_cost(completion_response=response, model="openai/gpt-4o-mini")

    benchmark.pedantic(price_all, rounds=3)
    per_call_us(benchmark, calls)


class NullLimiter(RateLimiter):
    """Admits everything at once: measures execute's own cost, not a limiter's."""

    limits = Limits()

    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        return 0.0

    def refund(self, cost: Cost) -> None:
        pass

    def pause(self, seconds: float, admission: Admission | None = None) -> None:
        pass

    def observe(self, limits: ProviderLimits) -> None:
        pass

    def snapshot(self) -> LimiterSnapshot:
        return LimiterSnapshot(levels={}, rates_per_minute={}, waiters=0, paused_for=0, pauses=0)


def canned_response() -> Any:
    response = litellm.ModelResponse(
        model="gpt-4o-mini",
        choices=[{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        usage={
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    )
    # What a provider with room to spare says (a limiter learns from these: no low numbers).
    headers = {f"x-ratelimit-{k}": "100000000" for k in ("limit-requests", "remaining-requests")}
    headers |= {f"llm_provider-{k}": v for k, v in headers.items()}
    headers |= {f"llm_provider-h{i}": "v" for i in range(8)}
    response._hidden_params = {"custom_llm_provider": "openai", "additional_headers": headers}
    return response


REQUEST = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi"}],
    "api_base": "http://127.0.0.1:1/v1",
    "api_key": "sk-not-a-secret",
}


@pytest.mark.parametrize("limiter_kind", ["null", "in-process"])
def test_execute_overhead(benchmark: Any, limiter_kind: str) -> None:
    """CPU of execute around a completion that costs nothing: all of it is our overhead."""
    from llm_api_client.ratelimit.memory import InProcessRateLimiter

    response = canned_response()
    limiter: RateLimiter = (
        NullLimiter()
        if limiter_kind == "null"
        else InProcessRateLimiter(Limits(requests_per_minute=1e8, tokens_per_minute=1e11))
    )
    policy, cost, calls = RetryPolicy(max_retries=2), Cost(100, 200), 2000

    def run() -> None:
        for i in range(calls):
            execute(
                REQUEST,
                index=i,
                cost=cost,
                limiter=limiter,
                policy=policy,
                transport=FunctionTransport(lambda **kwargs: response),
            )

    benchmark.pedantic(run, rounds=5)
    per_call_us(benchmark, calls)


# End to end against the simulator: python benchmarks/test_tracker_bench.py [requests] [threads]


def _cpu_per_request(fn: Any, n: int, threads: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per request of ``fn(i)`` run by a pool of ``threads``."""
    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fn, range(n)))
    return (time.process_time() - cpu) / n, (time.perf_counter() - wall) / n


def main(n: int = 2000, threads: int = 32) -> None:
    from llm_api_client.simulator import Simulator

    with Simulator(process=True, latency_ms=20) as sim:
        request = {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": "Say hi."}],
            "api_base": sim.base_url,
            "api_key": "sk-not-a-secret",
            "max_tokens": 20,
        }

        def bare(i: int) -> Any:
            return litellm.completion(**request, max_retries=0, timeout=120.0)

        limiter, policy, cost = NullLimiter(), RetryPolicy(max_retries=2), Cost(20, 20)
        transport = LiteLLMTransport()

        def ours(i: int) -> Any:
            outcome = execute(
                request, index=i, cost=cost, limiter=limiter, policy=policy, transport=transport
            )
            assert outcome.ok, outcome.error
            return outcome

        inner = [0.0]  # thread CPU inside litellm.completion, summed over threads
        outer = [0.0]  # thread CPU of the whole execute
        lock = threading.Lock()

        def timed_completion(**kwargs: Any) -> Any:  # LiteLLMTransport's call, timed
            start = time.thread_time()
            try:
                with unheard_logging_skipped(litellm):
                    return litellm.completion(**kwargs)
            finally:
                with lock:
                    inner[0] += time.thread_time() - start

        def ours_timed(i: int) -> Any:
            start = time.thread_time()
            outcome = execute(
                request,
                index=i,
                cost=cost,
                limiter=limiter,
                policy=policy,
                transport=FunctionTransport(timed_completion),
            )
            with lock:
                outer[0] += time.thread_time() - start
            return outcome

        _cpu_per_request(bare, 200, threads)  # warm up connections and litellm's caches
        _cpu_per_request(ours, 200, threads)
        results: dict[str, list[float]] = {"bare": [], "execute": []}
        for _ in range(3):  # interleaved, so drift on a shared machine hits both alike
            results["bare"].append(_cpu_per_request(bare, n, threads)[0])
            results["execute"].append(_cpu_per_request(ours, n, threads)[0])
        _cpu_per_request(ours_timed, n, threads)
    best = {name: min(values) for name, values in results.items()}
    print(f"requests={n} threads={threads} (best of 3 rounds, CPU ms per request)")
    for name, values in results.items():
        print(f"  {name:8s} " + "  ".join(f"{v * 1e3:.3f}" for v in values))
    extra = (best["execute"] - best["bare"]) * 1e6
    print(f"execute adds {extra:.0f} us CPU per request ({best['execute'] / best['bare']:.3f}x)")
    own = (outer[0] - inner[0]) / n * 1e6
    print(
        f"per-thread CPU: execute {outer[0] / n * 1e3:.3f} ms, of which outside "
        f"litellm.completion {own:.0f} us per request"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
