"""A batch that stops early sends nothing more, and the tracker counts every call that was sent.

Against the simulator, which counts what it receives. The client paces 4 requests/s, so when the
batch stops most of its requests are waiting in the rate limiter; one of them hangs on the wire
until its per-request timeout, so the stop also leaves a call in flight that is answered (by a
timeout) afterwards. Each way a batch stops: ``break`` out of the stream, the batch timeout,
Ctrl-C, an exception from the request generator.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llm_api_client import APIClient
from llm_api_client.errors import BatchTimeoutError
from llm_api_client.simulator import Simulator
from tests.fakes import chat, litellm

pytestmark = pytest.mark.slow

BACKENDS = [pytest.param(0, id="threads"), pytest.param(2, id="processes")]
# Requests 1, 6, 11, ... hang until their own timeout: a call still on the wire at the stop.
HANG_EVERY = 5
HANG_TIMEOUT_SECONDS = 1.0
# A call sent just before the stop reaches the server within this (loopback, a loaded machine).
TRANSIT_SECONDS = 0.5
# Then the server must receive nothing for this long; at the client's pace (4/s) the threads
# waiting in the limiter would have sent about 5 more requests meanwhile.
QUIET_SECONDS = 1.2


@pytest.fixture
def sim():
    # One per test: a request of the previous test still in transit cannot count in this one.
    with Simulator(latency_ms=100) as sim:
        yield sim


@pytest.fixture(params=BACKENDS)
def client(request, sim):
    with APIClient(240, None, processes=request.param, max_workers=24) as client:
        yield client


def requests(sim, count: int = 40) -> Iterator[dict[str, Any]]:
    for i in range(count):
        hangs = i % HANG_EVERY == 1
        yield {
            "model": "openai/gpt-4o-mini",
            "messages": [{"role": "user", "content": f"item {i}" + (" #hang" if hangs else "")}],
            "api_base": sim.base_url,
            "api_key": "sk-test-not-a-real-key",
            "max_tokens": 8,
            "timeout": HANG_TIMEOUT_SECONDS if hangs else 30,
        }


def a_call_hangs(sim) -> bool:
    return bool(sim.stats()["errors"].get("hang"))


def test_break_sends_nothing_more(sim, client):
    with client.stream(requests(sim)) as stream:
        for _ in stream:
            if a_call_hangs(sim):
                break

    assert_nothing_sent_after_the_stop_and_every_call_counted(sim, client)


def test_batch_timeout_sends_nothing_more(sim, client):
    responses = client.make_requests(requests(sim), timeout=0.5)

    assert responses.count(None) > len(responses) // 2  # it did stop early
    assert_nothing_sent_after_the_stop_and_every_call_counted(sim, client)


def test_ctrl_c_sends_nothing_more(sim, client):
    interrupt = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt), client.stream(requests(sim)) as stream:
        for _ in stream:
            if not interrupt.is_alive() and a_call_hangs(sim):
                interrupt.start()  # Ctrl-C comes while the stream waits for results

    assert_nothing_sent_after_the_stop_and_every_call_counted(sim, client)


def test_an_error_in_the_request_generator_sends_nothing_more(sim, client):
    def failing_at_row_30():  # read once 6 results have made room in the window of 24
        for i, request in enumerate(requests(sim)):
            if i == 30:
                raise ValueError("row 30 is unreadable")
            yield request

    with pytest.raises(ValueError, match="row 30"):
        for _ in client.stream(failing_at_row_30()):
            pass

    assert_nothing_sent_after_the_stop_and_every_call_counted(sim, client)


class AlwaysUnavailable:
    """A provider that answers every call 500, asking for a retry in ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        self.calls = 0

    def __call__(self, *, model: str, **kwargs: Any) -> Any:
        self.calls += 1
        request = httpx.Request("POST", "http://fake/v1/chat/completions")
        headers = {"retry-after": str(self.retry_after)}
        response = httpx.Response(500, request=request, headers=headers)
        raise litellm.InternalServerError(
            message="unavailable", llm_provider="openai", model=model, response=response
        )


def test_a_request_in_retry_backoff_is_not_sent_again_once_abandoned():
    provider = AlwaysUnavailable(retry_after=2.0)
    with APIClient(None, None, processes=0, completion=provider) as client:
        # Sent at once, answered 500, then waiting 2 s to retry when the timeout abandons it.
        [response] = client.make_requests_with_retries([chat("q")], max_retries=3, timeout=0.5)
        time.sleep(provider.retry_after + 0.5)

        assert response is None and isinstance(client.last_errors[0], BatchTimeoutError)
        assert provider.calls == 1
        assert client.tracker.total_attempts == 1  # the call it did make is counted


def assert_nothing_sent_after_the_stop_and_every_call_counted(sim, client) -> None:
    time.sleep(TRANSIT_SECONDS)
    at_stop = sim.stats()
    time.sleep(QUIET_SECONDS)
    assert sim.stats()["received"] == at_stop["received"], at_stop
    finished = _after_calls_on_the_wire_end(sim)
    assert finished["received"] == at_stop["received"]
    if client.processes == 0:
        # Threads: a call on the wire at the stop finishes, and its attempt is counted.
        assert _eventually(lambda: client.tracker.total_attempts == finished["received"])
        assert client.tracker.total_prompt_tokens == finished["prompt_tokens"]
    else:
        # Processes: the stop kills the workers, cutting their calls on the wire uncounted.
        assert client.tracker.total_attempts <= finished["received"]


def _after_calls_on_the_wire_end(sim) -> dict[str, Any]:
    deadline = time.monotonic() + HANG_TIMEOUT_SECONDS + 10
    while (stats := sim.stats())["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats["in_flight"] == 0
    return stats


def _eventually(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())
