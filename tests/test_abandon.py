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
# After the stop has settled, the server must stay silent this long; the client's pace (4/s)
# would have sent about 5 more requests meanwhile (12 threads: most wait in the limiter).
QUIET_SECONDS = 1.2


@pytest.fixture
def sim():
    # One per test: a request of the previous test still in transit cannot count in this one.
    with Simulator(latency_ms=100) as sim:
        yield sim


@pytest.fixture(params=BACKENDS)
def client(request, sim):
    with APIClient(240, None, processes=request.param, max_workers=12) as client:
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
    responses = client.make_requests(requests(sim), timeout=1.0)

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
    def failing_at_row_12():
        for i, request in enumerate(requests(sim)):
            if i == 12:
                raise ValueError("row 12 is unreadable")
            yield request

    with pytest.raises(ValueError, match="row 12"):
        for _ in client.stream(failing_at_row_12()):
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
    settled = _after_calls_on_the_wire_end(sim)
    time.sleep(QUIET_SECONDS)
    later = sim.stats()
    assert later["received"] == settled["received"], (settled, later)
    if client.processes == 0:
        # Threads: a call on the wire at the stop finishes, and its attempt is counted.
        assert _eventually(lambda: client.tracker.total_attempts == later["received"])
        assert client.tracker.total_prompt_tokens == later["prompt_tokens"]
    else:
        # Processes: the stop kills the workers, cutting their calls on the wire uncounted.
        assert client.tracker.total_attempts <= later["received"]


def _after_calls_on_the_wire_end(sim) -> dict[str, Any]:
    """The server's stats once nothing is in flight, twice in a row (nothing in transit)."""
    deadline = time.monotonic() + HANG_TIMEOUT_SECONDS + 10
    previous = None
    while time.monotonic() < deadline:
        stats = sim.stats()
        if stats["in_flight"] == 0 and previous is not None and _same(previous, stats):
            return stats
        previous = stats
        time.sleep(0.1)
    pytest.fail(f"calls still on the wire: {previous}")


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return before["in_flight"] == 0 and before["received"] == after["received"]


def _eventually(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())
