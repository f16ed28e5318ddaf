"""``APIClient`` end to end: litellm over loopback to the simulator, in threads and processes."""

from __future__ import annotations

import pytest

from llm_api_client import APIClient
from llm_api_client.simulator import Simulator

pytestmark = pytest.mark.slow


def request(sim, i: int, **extra):
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": f"request number {i}"}],
        "api_base": sim.base_url,
        "api_key": "sk-test-not-a-real-key",
        "max_tokens": 8,
        **extra,
    }


@pytest.fixture(scope="module")
def sim():
    with Simulator() as sim:
        yield sim


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_every_answer_belongs_to_its_request_and_totals_match(sim, processes):
    sim.reset()
    with APIClient(processes=processes, max_workers=16) as client:
        responses = client.make_requests([request(sim, i) for i in range(120)])

    for i, response in enumerate(responses):
        assert response.choices[0].message.content.startswith(f"echo: request number {i}")
    stats = sim.stats()
    assert client.tracker.num_api_calls == stats["admitted"] == 120
    assert client.tracker.total_prompt_tokens == stats["prompt_tokens"]
    assert client.tracker.total_completion_tokens == stats["completion_tokens"]


def test_per_request_routing_parameters_reach_the_provider(sim):
    sim.reset()
    with APIClient(processes=0) as client:
        [response] = client.make_requests([request(sim, 1, timeout=5)])

    assert response is not None  # api_base and api_key were kept, or it could not have arrived


def test_unsupported_parameter_is_dropped_and_the_request_succeeds(sim):
    with APIClient(processes=0) as client:
        [response] = client.make_requests([request(sim, 2, reasoning_effort="high")])

    assert response is not None


def test_rate_limited_batch_draws_no_429(sim):
    with Simulator(rpm=1_200) as limited, APIClient(1_200, None, processes=0) as client:
        responses = client.make_requests([request(limited, i) for i in range(40)])
        stats = limited.stats()

    assert all(r is not None for r in responses)
    assert stats["rejected_429"] == 0


def test_litellm_calls_go_through_a_pool_that_keeps_its_connections(sim):
    import litellm

    with APIClient(processes=0, max_workers=4) as client:
        assert client.make_requests([request(sim, 3)])[0] is not None

    pool = litellm.client_session._transport._pool
    assert pool._max_keepalive_connections == pool._max_connections  # httpx's default keeps 20
