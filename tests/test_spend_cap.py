"""The spend cap counts what was spent and what is in flight, so a cap of 3.5 requests buys 3.

Every answer here uses all of its ``max_tokens``, the case the cap is designed for: the projection
(prompt plus maximum output) is then what a request really costs, and only a Budget that adds the
money already spent and reserved to each new projection stops at exactly three.
"""

from __future__ import annotations

from typing import Any

import pytest

from llm_api_client import APIClient
from llm_api_client.errors import BudgetExceededError
from tests.fakes import chat, last_user_text, litellm, make_response

MODEL = "gpt-4o-mini"
MAX_TOKENS = 1_000
PROMPT_TOKENS = 10  # what the fake reports; the engine's own count of "q<i>" is about as much


class FullLengthCompletion:
    """Answers every request with all of its ``max_tokens`` (picklable, for worker processes)."""

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        text = last_user_text(messages)
        return make_response(model, f"echo: {text}", PROMPT_TOKENS, kwargs["max_tokens"])


def price_of_one_request() -> float:
    """One full-length request, priced from litellm's map, not by the library's pricing code."""
    prices = litellm.model_cost[MODEL]
    return (
        PROMPT_TOKENS * prices["input_cost_per_token"]
        + MAX_TOKENS * prices["output_cost_per_token"]
    )


@pytest.mark.parametrize(
    ("processes", "in_flight"),
    [
        # one at a time: the fourth is judged after three were paid (money spent must count)
        pytest.param(0, 1, id="threads-one-in-flight"),
        # all dispatched before any answer (money reserved must count)
        pytest.param(0, 8, id="threads-eight-in-flight"),
        pytest.param(2, 1, id="processes"),
    ],
)
def test_a_cap_of_three_and_a_half_requests_buys_exactly_three(processes, in_flight):
    one = price_of_one_request()
    cap = 3.5 * one
    requests = [chat(f"q{i}", model=MODEL, max_tokens=MAX_TOKENS) for i in range(10)]
    with APIClient(
        None,
        None,
        max_workers=in_flight,
        processes=processes,
        max_cost=cap,
        completion=FullLengthCompletion(),
    ) as client:
        stream = client.stream(requests)
        results = list(stream)

    answered = [r for r in results if r.ok]
    refused = [r for r in results if not r.ok]
    assert len(answered) == 3
    assert [type(r.error) for r in refused] == [BudgetExceededError]
    assert stream.stop_reason == "budget"
    assert len(results) == 4  # the other six were never read from the input
    assert client.tracker.total_attempts == 3
    assert client.tracker.total_cost == pytest.approx(3 * one)
    assert client.tracker.total_cost <= cap


def test_make_requests_leaves_the_unsent_as_none_without_an_error():
    one = price_of_one_request()
    requests = [chat(f"q{i}", model=MODEL, max_tokens=MAX_TOKENS) for i in range(6)]
    with APIClient(
        None,
        None,
        max_workers=1,
        processes=0,
        max_cost=3.5 * one,
        completion=FullLengthCompletion(),
    ) as client:
        responses = client.make_requests(requests)

    assert [r is not None for r in responses] == [True, True, True, False, False, False]
    assert list(client.last_errors) == [3]
    assert isinstance(client.last_errors[3], BudgetExceededError)
