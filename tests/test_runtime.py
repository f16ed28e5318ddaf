"""``engine.runtime``: one plan picks the backend and its limiter's store, and owns their life."""

from __future__ import annotations

from typing import Any

import pytest

from llm_api_client.engine import runtime as runtime_module
from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.processes import ProcessBackend
from llm_api_client.engine.runtime import BACKENDS, STORES, BackendKind, Plan, Runtime, limiter_for
from llm_api_client.engine.sizing import FixedWindow, LatencyWindow
from llm_api_client.engine.threads import ThreadBackend
from llm_api_client.errors import ConfigurationError
from llm_api_client.providers.litellm_transport import FunctionTransport
from llm_api_client.ratelimit import Limits, LocalStore, RateLimiter, SharedMemoryStore
from llm_api_client.ratelimit.memory import InProcessRateLimiter
from tests.fakes import make_response

LIMITS = Limits(requests_per_minute=60_000)  # a rate that wants several processes


def make_runtime(**settings: Any) -> Runtime:
    config = ExecutionConfig(transport=FunctionTransport(lambda **r: make_response(r["model"])))
    return Runtime(LIMITS, config, **settings)


def run_batch(runtime: Runtime, size: int | None, max_workers: int | None = None) -> Any:
    backend, _ = runtime.start_batch(size, max_workers)
    runtime.batch_finished(True)
    return backend


def test_a_small_batch_runs_on_threads_over_a_local_store() -> None:
    runtime = make_runtime()
    backend = run_batch(runtime, 10)
    assert isinstance(backend, ThreadBackend)
    assert isinstance(backend._limiter.store, LocalStore)
    runtime.close()


def test_a_large_batch_runs_on_processes_over_shared_memory() -> None:
    runtime = make_runtime()
    try:
        backend = run_batch(runtime, 10_000, max_workers=4)
        assert isinstance(backend, ProcessBackend)
        assert isinstance(backend._limiter.store, SharedMemoryStore)
        assert runtime.plan(10_000, 4) == Plan("processes", runtime.processes_for(10_000), 2)
    finally:
        runtime.close()
    assert backend._limiter.store.closed


def test_the_processes_setting_decides_both_for_every_batch_size() -> None:
    runtime = make_runtime(processes=0)
    assert runtime.plan(None).backend == runtime.plan(10**6).backend == "threads"
    assert runtime.most_threads() == runtime.plan(None).threads


def test_the_thread_limiter_is_kept_across_batches_and_backends() -> None:
    runtime = make_runtime(processes=0)
    first = run_batch(runtime, 5, max_workers=2)
    assert run_batch(runtime, 5, max_workers=2) is first  # same shape: reused
    second = run_batch(runtime, 5, max_workers=3)  # new shape: a new backend, the same quota
    assert second is not first and second._limiter is first._limiter
    runtime.close()


def test_an_abandoned_backend_is_replaced_and_one_batch_runs_at_a_time() -> None:
    runtime = make_runtime(processes=0)
    backend, _ = runtime.start_batch(5, None)
    with pytest.raises(RuntimeError, match="already running a batch"):
        runtime.start_batch(5, None)
    runtime.batch_finished(False)
    assert runtime.backend is None
    assert run_batch(runtime, 5) is not backend
    runtime.close()


def test_the_window_follows_latency_unless_max_workers_is_given() -> None:
    runtime = make_runtime(processes=0)
    assert isinstance(runtime.window(runtime.plan(5)), LatencyWindow)
    fixed = runtime.window(runtime.plan(5, 8), 8)
    assert isinstance(fixed, FixedWindow) and fixed.size == 8 + 4


def test_a_store_plugs_in_by_url_scheme(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def remote(url: str, limits: Limits) -> RateLimiter:
        seen.append(url)
        return InProcessRateLimiter(limits)

    monkeypatch.setitem(STORES, "remote", remote)
    assert isinstance(limiter_for("remote://host:1/0", LIMITS), InProcessRateLimiter)
    assert seen == ["remote://host:1/0"]
    with pytest.raises(ConfigurationError, match="no rate-limit store 'nowhere'"):
        limiter_for("nowhere://x", LIMITS)


def test_a_backend_plugs_in_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[Plan, RateLimiter]] = []

    def start(runtime: Runtime, plan: Plan, limiter: RateLimiter) -> Any:
        started.append((plan, limiter))
        return ThreadBackend(limiter, runtime.execution, plan.threads)

    monkeypatch.setitem(BACKENDS, "elsewhere", BackendKind(start, store="local"))
    runtime = make_runtime(backend="elsewhere", processes=0)
    run_batch(runtime, 3, max_workers=2)
    assert [plan for plan, _ in started] == [Plan("elsewhere", 0, 2)]
    assert isinstance(started[0][1].store, LocalStore)
    runtime.close()
    with pytest.raises(ConfigurationError, match="no backend 'nope'"):
        make_runtime(backend="nope")


def test_a_forked_child_forgets_the_parents_backend() -> None:
    runtime = make_runtime(processes=0)
    run_batch(runtime, 5)
    assert runtime in runtime_module._ALL_RUNTIMES  # so the at-fork hook reaches it
    runtime.forget()  # what that hook runs in the child (not called here for every runtime)
    assert runtime.backend is None and runtime._kept == {}
