"""The engine behind ``APIClient``: order, streaming, backpressure, timeouts, crashes, budget.

The provider is ``FakeCompletion`` (no HTTP); end-to-end runs against the simulator live in
``test_client_e2e.py``.
"""

from __future__ import annotations

import itertools
import os
import time

import pytest

from llm_api_client import APIClient
from llm_api_client.errors import (
    BadRequestError,
    BatchTimeoutError,
    BudgetExceededError,
    InvalidRequestError,
)
from tests.fakes import FakeCompletion, chat

BACKENDS = [
    pytest.param(0, id="threads"),
    pytest.param(2, id="processes", marks=pytest.mark.processes),
]


@pytest.fixture(params=BACKENDS)
def client(request):
    with APIClient(
        max_requests_per_minute=None,
        max_tokens_per_minute=None,
        processes=request.param,
        max_workers=8,
        completion=FakeCompletion(),
    ) as client:
        yield client


def test_make_requests_returns_responses_in_input_order(client):
    requests = [chat(f"question {i}") for i in range(60)]

    responses = client.make_requests(requests)

    contents = [r.choices[0].message.content for r in responses]
    assert contents == [f"echo: question {i}" for i in range(60)]
    assert client.tracker.num_api_calls == 60


def test_failures_are_none_and_their_errors_are_typed(client):
    requests = [chat("fine"), chat("bad #fail=400"), 42, chat("fine too")]

    responses = client.make_requests(requests)

    assert [r is not None for r in responses] == [True, False, False, True]
    assert isinstance(client.last_errors[1], BadRequestError)
    assert isinstance(client.last_errors[2], InvalidRequestError)
    assert client.last_errors[2].index == 2


def test_stream_yields_every_index_once_with_usage(client):
    results = list(client.stream(chat(f"q{i}") for i in range(40)))

    assert sorted(r.index for r in results) == list(range(40))
    assert all(r.ok and r.attempts == 1 and r.usage.completion_tokens == 5 for r in results)


def test_ordered_stream_follows_input_order(client):
    requests = [chat(f"q{i} #sleep=0.02") if i % 3 == 0 else chat(f"q{i}") for i in range(30)]

    indices = [r.index for r in client.stream(requests, ordered=True)]

    assert indices == list(range(30))


def test_stream_reads_its_input_lazily(client):
    pulled = itertools.count()
    requests = (chat(f"q{next(pulled)}") for _ in range(10_000))

    stream = client.stream(requests, max_workers=4)
    first = next(stream)
    stream.close()

    assert first.ok
    assert next(pulled) < 200  # a window, not the whole generator


def test_stop_ends_dispatch_and_the_requests_in_flight_still_finish(client):
    stream = client.stream(chat(f"q{i} #sleep=0.3") for i in range(10_000))
    results = [next(stream)]
    stream.stop()
    in_flight = stream.in_flight
    results.extend(stream)

    assert in_flight > 0  # so the assertions below are about requests cut or finished
    assert all(r.ok for r in results)
    assert sorted(r.index for r in results) == list(range(stream.submitted))
    assert stream.stop_reason == "stopped"


def test_map_consumed_through_zip_leaves_the_client_free(client):
    rows = [f"row {i}" for i in range(5)]
    results = client.map(chat, rows)  # kept in a variable: zip never asks it for a sixth

    pairs = list(zip(rows, results, strict=False))

    assert [result.index for _, result in pairs] == list(range(5))
    assert client.make_requests([chat("next batch")])[0] is not None


def test_an_error_in_the_requests_comes_after_the_results_before_it():
    def requests():
        yield chat("q0")
        yield chat("q1")
        raise ValueError("row 2 is unreadable")

    results = []
    client = APIClient(None, None, processes=0, completion=FakeCompletion())
    # One at a time: the error is met while reading ahead to learn whether q1 was the last.
    with client, pytest.raises(ValueError, match="row 2"):
        for result in client.stream(requests(), max_workers=1):
            results.append(result)

    assert [r.index for r in results] == [0, 1]


def test_retries_apply_to_retryable_errors_only(client):
    requests = [chat("always #fail=500"), chat("never #fail=400")]

    results = {r.index: r for r in client.stream(requests, max_retries=2)}

    assert results[0].attempts == 3  # 5xx: the first try and two retries
    assert results[1].attempts == 1  # 400: sending it again would fail again


def test_global_timeout_returns_on_time_with_none_for_the_unfinished(client):
    client.make_requests([chat("first")])  # ends the limiter's slow start (one request alone)
    requests = [chat("quick"), chat("slow #sleep=30")]

    started = time.monotonic()
    responses = client.make_requests(requests, timeout=1.0)
    elapsed = time.monotonic() - started

    assert responses[0] is not None and responses[1] is None
    assert isinstance(client.last_errors[1], BatchTimeoutError)
    assert elapsed < 1.0 + 3.0  # the timeout, plus generous room for a loaded machine


def test_the_client_runs_again_after_a_timeout(client):
    client.make_requests([chat("first")])  # ends the limiter's slow start
    client.make_requests([chat("slow #sleep=30")], timeout=0.5)

    assert client.make_requests([chat("again")])[0] is not None


def test_spend_cap_stops_dispatch():
    with APIClient(processes=0, max_cost=0.0005, completion=FakeCompletion()) as client:
        results = list(client.stream(chat(f"q{i}", max_tokens=1000) for i in range(100)))

    errors = [r.error for r in results if r.error is not None]
    assert len(errors) == 1 and isinstance(errors[0], BudgetExceededError)
    assert client.tracker.total_cost <= 0.0005
    assert len(results) < 100


@pytest.mark.processes
def test_a_killed_worker_does_not_lose_its_requests(tmp_path):
    fake = FakeCompletion(crash_flag=str(tmp_path / "crashed"))
    requests = [chat(f"q{i} #sleep=0.05") for i in range(20)] + [chat("boom #crash")]
    with APIClient(None, None, processes=2, max_workers=8, completion=fake) as client:
        responses = client.make_requests(requests)

    assert (tmp_path / "crashed").exists()
    assert all(r is not None for r in responses[:20])
    assert responses[20] is not None  # sent again to a live worker, which did not crash


@pytest.mark.processes
def test_close_releases_workers_and_shared_memory():
    client = APIClient(None, None, processes=2, completion=FakeCompletion())
    client.make_requests([chat("hello")])
    segment = client._runtime.backend._limiter.name.lstrip("/")
    pids = [w.process.pid for w in client._runtime.backend._workers]
    assert os.path.exists(f"/dev/shm/{segment}")

    client.close()

    assert not os.path.exists(f"/dev/shm/{segment}")
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] == "Z"
