"""Pricing from litellm's price map: agrees with litellm, cached, unknown models are free."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llm_api_client import _offline
from llm_api_client.providers.pricing import (
    UNPRICED,
    clear_cache,
    cost_of,
    estimate_cost,
    is_priced,
    prices_of,
)
from llm_api_client.ratelimit.base import Cost

litellm = _offline.litellm()

TIERED = "anthropic.claude-sonnet-4-20250514-v1:0"  # has *_above_200k_tokens prices


def litellm_cost(model: str, prompt: int, completion: int, cached: int = 0) -> float:
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_input_tokens=cached,
    )
    return float(prompt_cost + completion_cost)


@pytest.mark.parametrize(
    "model", ["gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4o", "o1", "gpt-4.1", TIERED]
)
@pytest.mark.parametrize(
    ("prompt", "completion", "cached"),
    [
        (0, 0, 0),
        (1000, 200, 0),
        (1000, 200, 400),
        (1, 1, 1),
        (250_000, 100, 0),
        (250_000, 9, 10_000),
    ],
)
def test_agrees_with_litellm(model: str, prompt: int, completion: int, cached: int) -> None:
    expected = litellm_cost(model, prompt, completion, cached)
    assert cost_of(model, prompt, completion, cached) == pytest.approx(
        expected, rel=1e-9, abs=1e-15
    )


def test_known_prices_of_gpt_4o_mini() -> None:
    # $0.15 / $0.60 per million input / output tokens; cached input at half price.
    assert cost_of("openai/gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert cost_of("openai/gpt-4o-mini", 0, 1_000_000) == pytest.approx(0.60)
    assert cost_of("openai/gpt-4o-mini", 1_000_000, 0, cached_tokens=1_000_000) == pytest.approx(
        0.075
    )


def test_provider_given_separately() -> None:
    assert cost_of("gpt-4o-mini", 1000, 100, custom_llm_provider="openai") == cost_of(
        "openai/gpt-4o-mini", 1000, 100
    )


@pytest.mark.parametrize("model", ["my-local-model", "openai/not-a-model", "", "hosted_vllm/x"])
def test_unknown_model_costs_nothing_and_says_so(model: str) -> None:
    assert cost_of(model, 1000, 1000) == 0.0
    assert not is_priced(model)
    assert prices_of(model) is UNPRICED


def test_known_model_is_priced() -> None:
    assert is_priced("openai/gpt-4o-mini")
    assert is_priced("gpt-4o")


def test_estimate_cost_prices_the_admission_cost() -> None:
    cost = Cost(input_tokens=1000, output_tokens=500)
    assert estimate_cost("openai/gpt-4o-mini", cost) == cost_of("openai/gpt-4o-mini", 1000, 500)
    assert estimate_cost("unknown-model", cost) == 0.0


def test_cache_is_reused_and_clearable() -> None:
    first = prices_of("gpt-4o-mini")
    assert prices_of("gpt-4o-mini") is first
    clear_cache()
    assert prices_of("gpt-4o-mini") is not first
    assert prices_of("gpt-4o-mini") == first


@given(
    prompt=st.integers(0, 2_000_000),
    completion=st.integers(0, 200_000),
    cached=st.integers(-10, 2_000_000),
)
def test_cost_is_nonnegative_and_cache_never_costs_more(
    prompt: int, completion: int, cached: int
) -> None:
    full = cost_of("gpt-4o", prompt, completion)
    with_cache = cost_of("gpt-4o", prompt, completion, cached)
    assert 0 <= with_cache <= full + 1e-12
