"""Settlement: which providers give back unused output tokens, and how much."""

from __future__ import annotations

import pytest

from llm_api_client.errors import ConfigurationError
from llm_api_client.providers.settlement import refund_for, settles_on_actual_usage
from llm_api_client.ratelimit import Cost, InProcessRateLimiter, Limits


@pytest.mark.parametrize(
    ("model", "provider", "actual"),
    [
        ("gpt-4o-mini", None, False),
        ("openai/sim-model", None, False),
        ("azure/gpt-4o", None, False),
        ("anthropic/claude-3-haiku-20240307", None, True),
        ("claude-3-haiku-20240307", None, True),
        ("claude-3-5-sonnet-20241022", None, True),  # a Claude name litellm's map may not know
        ("bedrock/anthropic.claude-3-sonnet-20240229-v1:0", None, True),
        ("vertex_ai/claude-3-5-sonnet@20240620", None, True),
        ("claude-3-opus", "bedrock", True),
        ("bedrock/amazon.titan-text-express-v1", None, False),
        ("vertex_ai/gemini-1.5-pro", None, False),
        ("no-such-model-anywhere", None, False),
    ],
)
def test_settlement_by_provider(model: str, provider: str | None, actual: bool) -> None:
    assert settles_on_actual_usage(model, provider) is actual


@pytest.mark.parametrize(
    ("model", "override", "actual"),
    [
        ("gpt-4o-mini", "actual", True),
        ("anthropic/claude-3-haiku-20240307", "admission", False),
    ],
)
def test_settlement_override(model: str, override: str, actual: bool) -> None:
    assert settles_on_actual_usage(model, override=override) is actual


def test_an_unknown_settlement_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="settlement"):
        settles_on_actual_usage("gpt-4o-mini", override="sometimes")


@pytest.mark.parametrize(
    ("charged", "prompt", "completion", "refund"),
    [
        (Cost(input_tokens=100, output_tokens=400), 100, 150, Cost(0, 250, requests=0)),
        (Cost(input_tokens=100, output_tokens=400), 120, 400, Cost(0, 0, requests=0)),
        (Cost(input_tokens=100, output_tokens=400), 100, 900, Cost(0, 0, requests=0)),  # never <0
        (Cost(input_tokens=100, output_tokens=400), 100, 0, Cost(0, 400, requests=0)),
        (Cost(input_tokens=100, output_tokens=400), 100, -3, Cost(0, 400, requests=0)),
        (Cost(input_tokens=100), 100, 10, Cost(0, 0, requests=0)),
    ],
)
def test_refund_for_is_the_unused_output(
    charged: Cost, prompt: int, completion: int, refund: Cost
) -> None:
    assert refund_for(charged, prompt, completion) == refund


def test_settling_on_actual_usage_frees_the_unused_output_for_the_next_request() -> None:
    clock = [0.0]
    limiter = InProcessRateLimiter(
        Limits(tokens_per_minute=60_000), clock=lambda: clock[0], sleep=lambda _: None
    )  # 1,000 tokens/s, capacity 500
    charged = Cost(input_tokens=100, output_tokens=400)
    limiter.acquire(charged)
    limiter.refund(refund_for(charged, prompt_tokens=100, completion_tokens=50))
    assert limiter.snapshot().levels["tokens"] == pytest.approx(350)
