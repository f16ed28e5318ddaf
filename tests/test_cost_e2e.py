"""``tracker.total_cost`` end to end equals litellm's prices times the tokens the provider counted.

The expected figure is computed here from ``litellm.model_cost`` and each answer's own ``usage``
(the simulator's token counts), not through the library's pricing code.
"""

from __future__ import annotations

import pytest

from llm_api_client import APIClient
from llm_api_client.simulator import Simulator
from tests.fakes import litellm

pytestmark = pytest.mark.slow

MODELS = ("gpt-4o-mini", "gpt-4o")  # priced differently, so a mix-up of models shows


def request(sim: Simulator, i: int) -> dict[str, object]:
    return {
        "model": f"openai/{MODELS[i % 2]}",
        "messages": [{"role": "user", "content": "word " * (5 + 7 * i)}],
        "api_base": sim.base_url,
        "api_key": "sk-test-not-a-real-key",
        "max_tokens": 20 + 13 * i,
    }


def priced(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    prices = litellm.model_cost[model]
    return (
        prompt_tokens * prices["input_cost_per_token"]
        + completion_tokens * prices["output_cost_per_token"]
    )


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_total_cost_is_the_price_map_times_the_providers_token_counts(processes):
    with Simulator(completion_tokens=100) as sim:
        with APIClient(processes=processes, max_workers=8) as client:
            responses = client.make_requests([request(sim, i) for i in range(24)])
        stats = sim.stats()

    expected = sum(
        priced(MODELS[i % 2], r.usage.prompt_tokens, r.usage.completion_tokens)
        for i, r in enumerate(responses)
    )
    assert sum(r.usage.completion_tokens for r in responses) == stats["completion_tokens"]
    assert sum(r.usage.prompt_tokens for r in responses) == stats["prompt_tokens"]
    assert expected > 0
    assert client.tracker.total_cost == pytest.approx(expected, rel=1e-9)
