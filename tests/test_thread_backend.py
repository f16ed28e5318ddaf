"""``ThreadBackend.abandon``: what was not started is never sent, what finished is still counted."""

from __future__ import annotations

import threading
import time
from typing import Any

from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.messages import CallItem
from llm_api_client.engine.threads import ThreadBackend
from llm_api_client.providers.litellm_transport import FunctionTransport
from llm_api_client.ratelimit import Cost, InProcessRateLimiter, Limits
from llm_api_client.records import UsageRecord
from tests.fakes import chat, last_user_text, make_response


class GatedCompletion:
    """Answers each call once ``gate`` is open; records what it was called with."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[str] = []

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        self.calls.append(last_user_text(messages))
        self.gate.wait(10)
        return make_response(model, "ok")


def item(index: int) -> CallItem:
    return CallItem(index, chat(f"q{index}"), Cost(), model="gpt-4o-mini")


def backend(completion: Any, threads: int, late: list[UsageRecord]) -> ThreadBackend:
    limiter = InProcessRateLimiter(Limits())
    config = ExecutionConfig(transport=FunctionTransport(completion))
    return ThreadBackend(limiter, config, threads, late_usage=late.append)


def eventually(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


def test_an_item_no_thread_has_started_is_never_sent_once_abandoned():
    completion, late = GatedCompletion(), []
    threads = backend(completion, threads=1, late=late)
    threads.submit(item(0))
    threads.submit(item(1))  # queued behind item 0 on the only thread
    assert eventually(lambda: completion.calls == ["q0"])

    threads.abandon()
    completion.gate.set()  # item 0's call answers; the thread is free for item 1

    assert eventually(lambda: len(late) == 1)
    time.sleep(0.2)
    assert completion.calls == ["q0"]
    assert [record.index for record in late] == [0]  # the call it made is counted
    threads.close()


def test_an_outcome_finished_but_unread_when_abandoned_goes_to_late_usage():
    completion, late = GatedCompletion(), []
    completion.gate.set()
    threads = backend(completion, threads=1, late=late)
    threads.submit(item(0))
    assert eventually(lambda: threads._done.qsize() == 1)

    threads.abandon()

    assert [record.index for record in late] == [0]
    assert threads.poll(0) == []
    threads.close()
