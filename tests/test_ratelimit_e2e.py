"""An ``APIClient`` configured 50 times above the provider's real limit learns it and keeps to it.

The engine's wiring is what is under test: the first answer's ``x-ratelimit-*`` headers reach the
shared limiter (``observe``), which holds the other requests until then (slow start) and paces
them at the provider's 120 RPM instead of the configured 6,000. Without that wiring the held
requests go out together when slow start gives up, and most of them draw a 429.
"""

from __future__ import annotations

import pytest

from llm_api_client import APIClient
from llm_api_client.simulator import Simulator
from tests.test_reliability import sim_request

pytestmark = pytest.mark.slow

PROVIDER_RPM = 120  # 2 requests per 1-s window
CONFIGURED_RPM = 6_000
REQUESTS = 6


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "processes"])
def test_a_client_far_above_the_providers_limit_draws_almost_no_429(processes):
    with Simulator(rpm=PROVIDER_RPM) as sim:
        with APIClient(CONFIGURED_RPM, None, processes=processes) as client:
            responses = client.make_requests_with_retries(
                [sim_request(sim, i, timeout=None) for i in range(REQUESTS)]
            )
        stats = sim.stats()

    assert all(response is not None for response in responses), client.last_errors
    assert stats["admitted"] == REQUESTS
    # Learned from the first answer: none expected. Unwired, 5 or more of the 6.
    assert stats["rejected_429"] <= 1, stats
    assert client.tracker.num_rate_limited == stats["rejected_429"]


LOW_PROVIDER_RPM = 60  # one request per 1-s window: no arrival closer than 1 s to the one before
LOW_REQUESTS = 10


def test_a_learned_limit_of_one_request_a_second_draws_almost_no_429():
    # Paced exactly at 60/min, the send's jitter brings about every other request a little
    # early (4 of these 10 drew a 429 in a run without it); the margin under a low learned
    # limit absorbs it.
    with Simulator(rpm=LOW_PROVIDER_RPM, latency_ms=50) as sim:
        with APIClient(CONFIGURED_RPM, None, processes=0) as client:
            responses = client.make_requests_with_retries(
                [sim_request(sim, i, timeout=None) for i in range(LOW_REQUESTS)]
            )
        stats = sim.stats()

    assert all(response is not None for response in responses), client.last_errors
    assert stats["rejected_429"] <= 1, stats
