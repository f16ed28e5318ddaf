"""``BatchStream`` on its own: a scripted backend and an injected clock, no threads, no sleeps."""

from __future__ import annotations

from llm_api_client.engine.coordinator import BatchOptions, BatchStream
from llm_api_client.engine.messages import CallItem, Outcome
from llm_api_client.errors import BatchTimeoutError
from llm_api_client.records import UsageRecord
from tests.fakes import chat


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class OneAnswerPerPoll:
    """Answers the oldest request it holds at each poll, which takes ``seconds_per_poll``."""

    def __init__(self, clock: Clock, seconds_per_poll: float, capacity: int) -> None:
        self.clock = clock
        self.seconds_per_poll = seconds_per_poll
        self.capacity = capacity
        self.submitted: list[int] = []
        self.held: list[CallItem] = []
        self.abandoned = False

    def submit(self, item: CallItem) -> None:
        self.submitted.append(item.index)
        self.held.append(item)

    def poll(self, timeout: float) -> list[Outcome]:
        self.clock.now += self.seconds_per_poll
        if not self.held:
            return []
        item = self.held.pop(0)
        record = UsageRecord(index=item.index, model="gpt-4o-mini", attempts=1)
        return [Outcome(item.index, response="answer", error=None, record=record)]

    def lost(self) -> list[CallItem]:
        return []

    def abandon(self) -> None:
        self.abandoned = True

    def close(self) -> None:
        pass

    def forget(self) -> None:
        pass


def test_nothing_is_dispatched_once_the_deadline_has_passed():
    clock = Clock()
    # The first poll answers request 0 and, by then, the batch's one second has run out.
    backend = OneAnswerPerPoll(clock, seconds_per_poll=1.5, capacity=2)
    requests = [chat(f"q{i}") for i in range(10)]

    stream = BatchStream(requests, backend, BatchOptions(timeout=1.0), clock=clock)
    results = {result.index: result for result in stream}

    assert backend.submitted == [0, 1]  # the room request 0 freed is not filled after the deadline
    assert results[0].ok
    assert isinstance(results[1].error, BatchTimeoutError)
    assert backend.abandoned
    assert stream.stop_reason == "timeout"
