"""Per-model limits against two simulators: each model paced at its own provider's limit.

Issue 18's measure: one client with ``model_limits`` for two models on two simulators (600 and
3,000 RPM, each enforced per 1-s window), 100 and 500 requests interleaved: all answered
correctly, at most 1 and 3 429s, done within 10 s x 1.06 + 3 s. A client whose one overall
limit let both models share its buckets would either starve the fast model or flood the slow
one's provider.
"""

from __future__ import annotations

import time

import pytest

from llm_api_client import APIClient
from llm_api_client.simulator import Simulator
from tests.test_reliability import sim_request

pytestmark = pytest.mark.slow

SLOW, FAST = "openai/gpt-4o-mini", "openai/gpt-4o"


def interleaved(slow_sim, fast_sim, slow: int, fast: int) -> list[dict]:
    """``fast`` requests for FAST with one for SLOW after every fast // slow of them."""
    every = fast // slow
    requests = []
    for i in range(slow + fast):
        model, sim = (SLOW, slow_sim) if i % (every + 1) == every else (FAST, fast_sim)
        requests.append(sim_request(sim, i, model=model, timeout=None))
    return requests


def run_two_models(processes: int, slow_rpm: int, fast_rpm: int, slow: int, fast: int):
    """Answers, the two simulators' stats and the seconds taken."""
    limits = {
        SLOW: {"max_requests_per_minute": slow_rpm},
        FAST: {"max_requests_per_minute": fast_rpm},
    }
    with Simulator(rpm=slow_rpm, window_seconds=1.0) as slow_sim, \
            Simulator(rpm=fast_rpm, window_seconds=1.0) as fast_sim:  # fmt: skip
        requests = interleaved(slow_sim, fast_sim, slow, fast)
        with APIClient(None, None, processes=processes, model_limits=limits) as client:
            if processes:  # workers start (spawned ones warm litellm up) before the clock
                client.make_requests(requests[-2:])
                slow_sim.reset()
                fast_sim.reset()
            start = time.monotonic()
            responses = client.make_requests_with_retries(requests, max_retries=5)
            seconds = time.monotonic() - start
        stats = slow_sim.stats(), fast_sim.stats()
    for i, response in enumerate(responses):
        assert response is not None, client.last_errors.get(i)
        assert response.choices[0].message.content.startswith(f"echo: item {i}")
    return stats, seconds


def test_two_models_on_threads_each_at_its_providers_limit():
    (slow, fast), seconds = run_two_models(0, 600, 3_000, 100, 500)
    assert slow["admitted"] == 100 and fast["admitted"] == 500
    assert slow["rejected_429"] <= 1 and fast["rejected_429"] <= 3, (slow, fast)
    assert seconds <= 10 * 1.06 + 3, seconds


@pytest.mark.processes
def test_two_models_on_processes_each_at_its_providers_limit():
    (slow, fast), seconds = run_two_models(2, 300, 1_200, 20, 80)
    assert slow["admitted"] == 20 and fast["admitted"] == 80
    assert slow["rejected_429"] <= 1 and fast["rejected_429"] <= 3, (slow, fast)
    assert seconds <= 4 * 1.06 + 3, seconds
