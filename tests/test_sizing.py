"""How many requests a batch keeps in flight, and how many worker processes it gets."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_api_client import APIClient
from llm_api_client._constants import (
    ASSUMED_LATENCY_SECONDS,
    CALLS_PER_SECOND_PER_PROCESS,
    LEAN_CALLS_PER_SECOND_PER_PROCESS,
    MIN_THREADS,
)
from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.runtime import Runtime
from llm_api_client.engine.sizing import FixedWindow, LatencyWindow, calls_per_second_per_process
from llm_api_client.providers import http_transport
from llm_api_client.providers.http_transport import AutoTransport, HTTPTransport
from llm_api_client.providers.litellm_transport import FunctionTransport, LiteLLMTransport
from llm_api_client.ratelimit.base import Cost, Limits
from llm_api_client.records import UsageRecord
from tests.fakes import FakeCompletion, chat


def answered(seconds: float) -> UsageRecord:
    return UsageRecord(index=0, model="gpt-4o-mini", response_time=seconds, attempts=1)


def window_after(rpm, tpm, latency, tokens=None, cap=256) -> LatencyWindow:
    window = LatencyWindow(rpm, tpm, cap=cap)
    if tokens is not None:
        window.dispatched(Cost(input_tokens=tokens))
    window.latency = latency
    return window


@pytest.mark.parametrize(
    ("rpm", "tpm", "latency", "tokens", "size"),
    [
        (None, None, 0.05, None, 256),  # no limit: the cap
        (6_000, None, 2.0, None, 256),  # 100/s x 2 s x 2 = 400, capped
        (6_000, None, 0.05, None, 10),  # 100/s x 50 ms x 2
        (60, None, 0.1, None, MIN_THREADS),  # 1/s: the floor
        (600, None, 5.0, None, 100),  # a slow model: 10/s x 5 s x 2
        (60_000, 60_000, 2.0, 500, 8),  # token-bound: 1,000 tok/s / 500 = 2/s x 2 s x 2
        (60_000, 60_000, 2.0, None, 256),  # tokens per request unknown yet: the request limit
    ],
    ids=["unlimited", "capped", "fast", "floor", "slow", "token-bound", "tokens-unknown"],
)
def test_size_is_rate_times_latency_with_headroom(rpm, tpm, latency, tokens, size):
    assert window_after(rpm, tpm, latency, tokens).size == size


def test_slack_is_added_on_top():
    assert LatencyWindow(None, None, cap=10, slack=4).size == 14


def test_latency_starts_assumed_and_follows_answers():
    window = LatencyWindow(6_000, None, cap=256)
    assert window.latency == ASSUMED_LATENCY_SECONDS
    for _ in range(200):
        window.finished(answered(0.1))
    assert window.latency == pytest.approx(0.1, rel=0.01)
    assert window.size in (20, 21)  # 100/s x 0.1 s x 2, rounded up


def test_unsent_requests_teach_nothing():
    window = LatencyWindow(6_000, None, cap=256)
    window.finished(UsageRecord(index=0, model="m", attempts=0, error="BudgetExceededError"))
    assert window.latency == ASSUMED_LATENCY_SECONDS


@given(
    rpm=st.one_of(st.none(), st.floats(1, 1e7)),
    tpm=st.one_of(st.none(), st.floats(1, 1e10)),
    tokens=st.integers(1, 200_000),
    latencies=st.lists(st.floats(1e-4, 600), min_size=1, max_size=30),
    cap=st.integers(MIN_THREADS, 2_048),
)
def test_size_stays_between_the_floor_and_the_cap(rpm, tpm, tokens, latencies, cap):
    window = LatencyWindow(rpm, tpm, cap=cap)
    window.dispatched(Cost(input_tokens=tokens))
    for seconds in latencies:
        window.finished(answered(seconds))
        assert MIN_THREADS <= window.size <= cap


@given(st.floats(1e-3, 60), st.floats(1e-3, 60))
def test_a_slower_provider_never_gets_fewer_in_flight(a, b):
    fast, slow = sorted((a, b))
    assert window_after(600, None, fast).size <= window_after(600, None, slow).size


def test_the_default_window_shrinks_to_the_observed_latency():
    completion = FakeCompletion()
    with APIClient(6_000, None, processes=0, completion=completion) as client:
        stream = client.stream(chat(f"q{i} #sleep=0.05") for i in range(150))
        assert stream.window == 256  # 100/s at the assumed 2 s, capped, before any answer
        results = list(stream)

    assert all(r.ok for r in results)
    assert stream.window <= 40  # about 100/s x 50 ms x 2, plus room for ordering


def test_max_workers_fixes_the_window():
    with APIClient(6_000, None, processes=0, max_workers=7, completion=FakeCompletion()) as client:
        stream = client.stream(chat(f"q{i} #sleep=0.05") for i in range(20))
        list(stream)

    assert stream.window == 7  # the 7 threads, whatever the latency


def test_fixed_window_ignores_what_it_is_told():
    window = FixedWindow(5)
    window.dispatched(Cost(input_tokens=10_000))
    window.finished(answered(30.0))
    assert window.size == 5


# -- processes=None: the rule depends on what one process serves on the transport -------------


@pytest.mark.parametrize(
    ("rpm", "batch", "litellm_processes", "lean_processes"),
    [
        (60_000, 499, 0, 0),  # a small batch stays in-process on either
        (9_000, 500, 0, 0),  # 150/s: one process serves it either way
        (18_000, 500, 2, 0),  # 300/s: two processes for litellm, one for the lean path
        (36_000, 500, 4, 2),  # 600/s
        (60_000, 500, 4, 4),  # 1,000/s: capped at the cores
        (None, 500, 4, 4),  # no limit: one per core
    ],
)
def test_default_processes_per_transport(
    monkeypatch: pytest.MonkeyPatch,
    rpm: float | None,
    batch: int,
    litellm_processes: int,
    lean_processes: int,
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    found = [
        Runtime(Limits(rpm), ExecutionConfig(transport=transport)).processes_for(batch)
        for transport in (LiteLLMTransport(), AutoTransport())
    ]
    assert found == [litellm_processes, lean_processes]


def test_what_one_process_serves_on_each_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    lean, litellm_rate = LEAN_CALLS_PER_SECOND_PER_PROCESS, CALLS_PER_SECOND_PER_PROCESS
    assert lean > litellm_rate
    assert calls_per_second_per_process(LiteLLMTransport()) == litellm_rate
    assert calls_per_second_per_process(FunctionTransport(lambda **kw: None)) == litellm_rate
    assert calls_per_second_per_process(HTTPTransport()) == lean
    assert calls_per_second_per_process(AutoTransport()) == lean
    # A user's litellm callback, cache or patch sends everything through litellm.
    monkeypatch.setattr(http_transport, "litellm_is_customised", lambda: True)
    assert calls_per_second_per_process(AutoTransport()) == litellm_rate
