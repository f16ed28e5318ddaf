"""``engine.messages``: what crosses a worker's pipes is small, picklable and keeps no secret."""

from __future__ import annotations

import pickle

from llm_api_client.engine.messages import CallItem, Outcome, decode, encode
from llm_api_client.errors import RateLimitError
from llm_api_client.ratelimit.base import Cost
from llm_api_client.records import Result, UsageRecord

SECRET = "sk-do-not-show-0123456789"


def item() -> CallItem:
    request = {"model": "gpt-4o-mini", "messages": [], "api_key": SECRET}
    return CallItem(3, request, Cost(input_tokens=5), model="gpt-4o-mini", provider="openai")


def test_call_item_repr_hides_the_request() -> None:
    shown = repr(item())
    assert SECRET not in shown
    assert "model='gpt-4o-mini'" in shown and "provider='openai'" in shown


def test_messages_round_trip_through_the_pipe_encoding() -> None:
    error = RateLimitError("slow down", index=3, status_code=429, retry_after=2.0)
    outcome = Outcome(3, None, error, UsageRecord.of(3, "gpt-4o-mini", error=error))
    assert decode(encode(item())) == item()
    twin = decode(encode(outcome))
    assert twin.record == outcome.record and twin.record.error == "RateLimitError"
    assert isinstance(twin.error, RateLimitError) and twin.error.retry_after == 2.0
    assert pickle.loads(pickle.dumps(item())).request["api_key"] == SECRET  # kept, only hidden


def test_a_result_is_made_from_an_outcome() -> None:
    record = UsageRecord.of(4, "m", attempts=2, response_time=0.5)
    result = Result.from_outcome(Outcome(4, "answer", None, record))
    assert (result.index, result.response, result.error) == (4, "answer", None)
    assert (result.attempts, result.usage) == (2, record)
    assert result.ok
