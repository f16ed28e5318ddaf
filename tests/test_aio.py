"""The asyncio API: the sync API's results, an event loop that keeps ticking, clean cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import multiprocess
import pytest

from llm_api_client import APIClient
from llm_api_client._constants import HANDOFF_RESULTS
from llm_api_client.errors import BadRequestError
from llm_api_client.simulator import Simulator
from tests.fakes import FakeCompletion, chat
from tests.test_client_e2e import request as sim_request

BACKENDS = [
    pytest.param(0, id="threads"),
    pytest.param(2, id="processes", marks=pytest.mark.processes),
]
# The loop must never wait longer than this between two ticks 10 ms apart.
MAX_TICK_GAP_SECONDS = 0.25


class Ticker:
    """A coroutine ticking every 10 ms; ``longest`` is the longest wait between two ticks."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@pytest.mark.slow
def test_the_loop_keeps_ticking_while_batches_run():
    async def main(sim: Simulator) -> tuple[list[Any], list[Any], float]:
        async with Ticker() as ticker, APIClient(processes=0, max_workers=16) as client:
            responses = await client.amake_requests([sim_request(sim, i) for i in range(600)])
            streamed = [r async for r in client.astream(sim_request(sim, i) for i in range(200))]
        return responses, streamed, ticker.longest

    with Simulator(process=True) as sim, _process_warmed_up(sim):
        responses, streamed, longest = asyncio.run(main(sim))

    for i, response in enumerate(responses):
        assert response.choices[0].message.content.startswith(f"echo: request number {i}")
    assert sorted(result.index for result in streamed if result.ok) == list(range(200))
    assert longest < MAX_TICK_GAP_SECONDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_async_list_api_returns_what_the_sync_one_does(backend):
    requests = [chat(f"q{i}" + (" #fail=400" if i % 7 == 3 else "")) for i in range(40)]
    with APIClient(None, None, processes=backend, completion=FakeCompletion()) as client:
        expected = client.make_requests_with_retries(requests)
        expected_errors = {i: type(e) for i, e in client.last_errors.items()}
        got = asyncio.run(client.amake_requests_with_retries(requests))
        got_errors = {i: type(e) for i, e in client.last_errors.items()}

    assert [_content(r) for r in got] == [_content(r) for r in expected]
    assert got_errors == expected_errors and set(got_errors.values()) == {BadRequestError}
    assert client.tracker.num_requests == 80
    assert len(client.history) == 80


@contextlib.contextmanager
def _process_warmed_up(sim: Simulator) -> Iterator[None]:
    """Pay this process's one-off pauses first: they stop every thread, not only the loop's.

    tiktoken builds a model's tables in one call holding the GIL (0.5 s idle, 1.5 s loaded),
    and a full collection of the objects litellm imports holds it as long; an application
    warms up before serving and freezes what its imports allocated (``gc.freeze``).
    """
    with APIClient(processes=0) as client:
        client.make_requests([sim_request(sim, -1)])
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _content(response: Any) -> str | None:
    return None if response is None else response.choices[0].message.content


def test_an_async_iterable_is_pulled_only_as_fast_as_the_engine_takes_requests():
    pulled = 0

    async def requests() -> AsyncIterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(1_000):
            pulled += 1
            yield chat(f"q{i}")

    async def main(client: APIClient) -> tuple[int, int]:
        stream = client.astream(requests())
        async with contextlib.aclosing(stream):
            await anext(stream)
            await asyncio.sleep(1.0)  # a slow consumer: the engine must stop pulling
            at_pause = pulled
            rest = [result async for result in stream]
        return at_pause, 1 + len(rest)

    with APIClient(None, None, processes=0, max_workers=4, completion=FakeCompletion()) as c:
        at_pause, received = asyncio.run(main(c))

    assert received == 1_000 == pulled
    window = 4 + 4  # threads plus the slack for in-order results (see APIClient._backend_for)
    assert at_pause <= 1 + window + HANDOFF_RESULTS + 1  # taken, in flight, handed over, ahead


def test_errors_reach_the_awaiting_task_as_their_own_type():
    async def failing() -> AsyncIterator[dict[str, Any]]:
        yield chat("q0")
        raise ValueError("row 1 is unreadable")

    async def main(client: APIClient) -> None:
        async for _ in client.astream(failing()):
            pass

    with APIClient(None, None, processes=0, completion=FakeCompletion()) as client:
        with pytest.raises(ValueError, match="row 1"):
            asyncio.run(main(client))
        # The batch ended with the error: the client is free for the next one.
        assert asyncio.run(client.amake_requests([chat("again")]))[0] is not None


@pytest.mark.processes
def test_async_with_closes_the_workers():
    async def main() -> APIClient:
        async with APIClient(None, None, processes=1, completion=FakeCompletion()) as client:
            await client.amake_requests([chat("q")])
            assert multiprocess.active_children()
        return client

    asyncio.run(main())
    assert not multiprocess.active_children()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelling_ends_a_batch_whose_calls_are_all_still_on_the_wire(backend):
    async def main(client: APIClient) -> float:
        task = asyncio.create_task(client.amake_requests([chat("q #sleep=20")] * 4))
        while client._runtime.backend is None or not client._runtime._busy.locked():
            await asyncio.sleep(0.02)  # the batch has started
        await asyncio.sleep(0.3)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    with APIClient(None, None, processes=backend, completion=FakeCompletion()) as client:
        seconds = asyncio.run(main(client))
        assert not client._runtime._busy.locked()  # the batch ended: the client takes the next one

    assert seconds < 10  # not the 20 s the calls take: no result had to arrive first
    # The driver is gone; a thread of the thread backend on the wire finishes in the background.
    assert "llm-api-client-async" not in [thread.name for thread in _engine_threads()]
    assert not multiprocess.active_children()


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_cancelling_the_task_cancels_the_batch(backend):
    async def main(sim: Simulator, client: APIClient) -> None:
        requests = [sim_request(sim, i) for i in range(40)]
        task = asyncio.create_task(client.amake_requests(requests))
        while sim.stats()["received"] < 3:  # a few sent, most waiting for the limiter (4/s)
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    # Threads an earlier test left on the wire (its calls sleep 20 s) are not this batch's.
    earlier = set(_engine_threads())
    with Simulator(latency_ms=50) as sim, APIClient(240, None, processes=backend) as client:
        asyncio.run(main(sim, client))
        time.sleep(0.5)  # a call sent just before the cancel reaches the server
        at_cancel = sim.stats()["received"]
        time.sleep(1.5)  # at 4/s, about 6 more would have gone
        assert sim.stats()["received"] == at_cancel < 40
        assert client.tracker.total_attempts <= at_cancel
        assert not multiprocess.active_children()
        assert _eventually(lambda: not set(_engine_threads()) - earlier), _engine_threads()


def _engine_threads() -> list[threading.Thread]:
    """The batches' threads (their drivers', the backends'), not the process's HTTP client's."""
    names = ("llm-api-client", "llm-api-client-http")
    return [t for t in threading.enumerate() if t.name.startswith(names[0]) and t.name != names[1]]


def _eventually(condition: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())
