"""The rate limiter's behaviour, written once and run over every ``QuotaStore`` with a fake clock.

Nothing here sleeps for real: ``FakeClock.sleep`` moves the clock, so every wait is exact. The
limiter and its store share the clock, as they share the host's monotonic clock in production.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api_client._constants import (
    LOW_LIMIT_PACE,
    PROBE_POLL_SECONDS,
    RATE_DECREASE_ON_REPEATED_429,
)
from llm_api_client.errors import ConfigurationError, RateLimitDelayExceeded, RequestTooLargeError
from llm_api_client.ratelimit import (
    Cost,
    InProcessRateLimiter,
    Limits,
    LocalStore,
    ProviderLimits,
    QuotaLimiter,
    SharedMemoryRateLimiter,
    SharedMemoryStore,
    bucket,
    parse_rate_limit_headers,
)
from tests.test_ratelimit_store import (
    STORES,
    FakeClock,
    MakeStore,
    admitted_by_threads,
    fast_thread_switches,
    store_factory,
)

__all__ = ["fast_thread_switches", "store_factory"]  # fixtures, imported for the tests below

MakeLimiter = Callable[..., QuotaLimiter]


@pytest.fixture
def make_limiter(store_factory: MakeStore) -> Iterator[MakeLimiter]:
    """Build a limiter over a store of the parametrized kind, both on one fresh ``FakeClock``."""

    def make(limits: Limits, clock: FakeClock | None = None, **options: Any) -> QuotaLimiter:
        clock = clock or FakeClock()
        return QuotaLimiter(store_factory(limits, clock, **options), clock=clock, sleep=clock.sleep)

    yield make


def clock_of(limiter: QuotaLimiter) -> FakeClock:
    clock = getattr(limiter, "_clock", None)
    assert isinstance(clock, FakeClock)
    return clock


# --- pacing -------------------------------------------------------------------------------------


def test_a_full_bucket_admits_at_once(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600))
    assert limiter.acquire(Cost()) == 0.0
    assert clock_of(limiter).sleeps == []


def test_after_the_burst_requests_are_paced_at_the_rate(make_limiter: MakeLimiter) -> None:
    # 600/min = 10/s; 0.5 s of burst = 5 requests at once, then one every 0.1 s.
    limiter = make_limiter(Limits(requests_per_minute=600, burst_seconds=0.5))
    waits = [limiter.acquire(Cost()) for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1, 0.1, 0.1])


def test_the_burst_refills_while_idle(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600, burst_seconds=0.5))
    for _ in range(5):
        limiter.acquire(Cost())
    clock_of(limiter).advance(0.3)  # refills 3 requests
    assert [limiter.acquire(Cost()) for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


def test_the_slowest_bucket_sets_the_pace(make_limiter: MakeLimiter) -> None:
    # Tokens: 6,000/min = 100/s, burst 50; each request costs 50 tokens -> one per 0.5 s.
    limiter = make_limiter(Limits(requests_per_minute=6_000, tokens_per_minute=6_000))
    waits = [limiter.acquire(Cost(input_tokens=10, output_tokens=40)) for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.5, 0.5])


def test_a_request_larger_than_the_burst_gets_its_turn_and_its_debt_is_repaid(
    make_limiter: MakeLimiter,
) -> None:
    # 100 tokens/s, burst 50: a 500-token request waits for a full bucket, then leaves 450 of
    # debt that the next request (50 tokens, needs the bucket at 50) waits out: 5 s.
    limiter = make_limiter(Limits(tokens_per_minute=6_000))
    assert limiter.acquire(Cost(input_tokens=20)) == 0.0
    assert limiter.acquire(Cost(input_tokens=500)) == pytest.approx(0.2)
    assert limiter.acquire(Cost(input_tokens=50)) == pytest.approx(5.0)


def test_unlimited_buckets_admit_everything(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits())
    assert all(limiter.acquire(Cost(input_tokens=10**9)) == 0.0 for _ in range(100))


def test_separate_input_and_output_limits(make_limiter: MakeLimiter) -> None:
    # Output 600/min = 10/s, burst 5; input unconstrained in practice.
    limiter = make_limiter(Limits(input_tokens_per_minute=10**6, output_tokens_per_minute=600))
    assert limiter.acquire(Cost(input_tokens=1_000, output_tokens=5)) == 0.0
    assert limiter.acquire(Cost(input_tokens=1_000, output_tokens=5)) == pytest.approx(0.5)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, -0.5, math.nan, math.inf])
@pytest.mark.parametrize(
    "field",
    ["requests_per_minute", "tokens_per_minute", "input_tokens_per_minute",
     "output_tokens_per_minute", "burst_seconds"],
)  # fmt: skip
def test_impossible_limits_are_configuration_errors(
    make_limiter: MakeLimiter, field: str, value: float
) -> None:
    with pytest.raises(ConfigurationError, match=field):
        make_limiter(Limits(**{field: value}))


@pytest.mark.parametrize(
    ("limits", "cost", "bucket_name"),
    [
        (Limits(requests_per_minute=10), Cost(requests=11), "requests"),
        (Limits(tokens_per_minute=1_000), Cost(input_tokens=600, output_tokens=401), "tokens"),
        (Limits(input_tokens_per_minute=100), Cost(input_tokens=101), "input_tokens"),
        (Limits(output_tokens_per_minute=100), Cost(output_tokens=101), "output_tokens"),
    ],
)
def test_a_cost_above_a_per_minute_limit_fails_at_once(
    make_limiter: MakeLimiter, limits: Limits, cost: Cost, bucket_name: str
) -> None:
    limiter = make_limiter(limits)
    with pytest.raises(RequestTooLargeError) as caught:
        limiter.acquire(cost)
    assert caught.value.bucket == bucket_name  # type: ignore[attr-defined]
    assert clock_of(limiter).sleeps == []
    assert limiter.snapshot().admitted == 0


def test_a_cost_equal_to_the_per_minute_limit_is_admitted(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(tokens_per_minute=1_000))
    assert limiter.acquire(Cost(input_tokens=1_000)) == pytest.approx(0.0)


def test_max_delay_exceeded_takes_nothing(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=60))  # 1/s, capacity 1
    limiter.acquire(Cost())
    before = limiter.snapshot()
    with pytest.raises(RateLimitDelayExceeded) as caught:
        limiter.acquire(Cost(), max_delay=0.5)
    assert caught.value.delay == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert limiter.snapshot().levels == before.levels
    assert limiter.snapshot().admitted == 1
    assert limiter.acquire(Cost(), max_delay=1.0) == pytest.approx(1.0)


def test_max_delay_zero_admits_only_what_is_available_now(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600))  # capacity 5
    admitted = 0
    for _ in range(20):
        try:
            limiter.acquire(Cost(), max_delay=0)
            admitted += 1
        except RateLimitDelayExceeded:
            pass
    assert admitted == 5


@pytest.mark.usefixtures("fast_thread_switches")
def test_threads_contending_admit_exactly_capacity(make_limiter: MakeLimiter) -> None:
    # A bucket of 3,000 requests refilled at one per minute; 8 threads x 1,000 immediate attempts.
    limiter = make_limiter(Limits(requests_per_minute=1, burst_seconds=60.0 * 3_000))
    assert admitted_by_threads(lambda: limiter.acquire(Cost(), max_delay=0)) == 3_000
    assert limiter.snapshot().admitted == 3_000


# --- refunds ------------------------------------------------------------------------------------


def test_refund_gives_tokens_back(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(tokens_per_minute=6_000))  # 100/s, capacity 50
    limiter.acquire(Cost(input_tokens=10, output_tokens=40))
    assert limiter.snapshot().levels["tokens"] == pytest.approx(0)
    limiter.refund(Cost(output_tokens=30, requests=0))
    assert limiter.snapshot().levels["tokens"] == pytest.approx(30)


def test_refund_never_fills_above_capacity(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600, tokens_per_minute=6_000))
    limiter.refund(Cost(output_tokens=10_000, requests=3))
    assert limiter.snapshot().levels == pytest.approx({"requests": 5, "tokens": 50})


# --- pauses -------------------------------------------------------------------------------------


def test_a_pause_holds_every_admission_until_it_ends(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600))
    limiter.pause(2.0)
    assert limiter.snapshot().paused_for == pytest.approx(2.0)
    assert limiter.acquire(Cost()) == pytest.approx(2.0)
    assert limiter.snapshot().paused_for == 0.0  # over
    assert limiter.snapshot().pauses == 1


def test_a_pause_extends_but_never_shortens(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600))
    limiter.pause(5.0)
    limiter.pause(1.0)
    assert limiter.snapshot().paused_for == pytest.approx(5.0)
    assert limiter.snapshot().pauses == 2
    for useless in (0.0, -3.0, math.nan):
        limiter.pause(useless)
    assert limiter.snapshot().paused_for == pytest.approx(5.0)


def test_a_pause_that_arrives_while_waiting_delays_the_waiter(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=60))  # 1/s
    limiter.acquire(Cost())
    clock = clock_of(limiter)
    clock.on_sleep = lambda _: limiter.pause(3.0)  # a 429 elsewhere, at the start of our sleep
    assert limiter.acquire(Cost()) == pytest.approx(4.0)  # its 1 s turn, moved back by 3 s


def test_after_a_pause_waiters_resume_paced_not_all_at_once(make_limiter: MakeLimiter) -> None:
    # The pause freezes the schedule: a bucket that was empty is still empty when it ends.
    limiter = make_limiter(Limits(requests_per_minute=600))  # 10/s, capacity 5
    for _ in range(5):
        limiter.acquire(Cost())
    limiter.pause(2.0)
    assert [limiter.acquire(Cost()) for _ in range(3)] == pytest.approx([2.1, 0.1, 0.1])


def test_a_pause_that_outlasts_max_delay_gives_the_reservation_back(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(Limits(requests_per_minute=60))
    limiter.acquire(Cost())
    clock = clock_of(limiter)
    clock.on_sleep = lambda _: limiter.pause(30.0)
    with pytest.raises(RateLimitDelayExceeded):
        limiter.acquire(Cost(), max_delay=10.0)
    snap = limiter.snapshot()
    assert snap.waiters == 0
    assert snap.levels["requests"] == pytest.approx(0.0)  # the waiter's request came back


class Cancelled(Exception):
    pass


def test_a_sleep_that_raises_cancels_and_gives_the_reservation_back(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(Limits(requests_per_minute=60))
    limiter.acquire(Cost())

    def cancel(_: float) -> None:
        raise Cancelled

    clock_of(limiter).on_sleep = cancel
    with pytest.raises(Cancelled):
        limiter.acquire(Cost())
    snap = limiter.snapshot()
    assert (snap.waiters, snap.levels["requests"]) == (0, pytest.approx(0.0))


# --- learning from what the provider says -------------------------------------------------------


def test_observe_hands_the_providers_parsed_limits_to_the_store(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=6_000, tokens_per_minute=10**6))
    headers = {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-limit-tokens": "2000000",
        "llm_provider-x-ratelimit-remaining-requests": "2",
        "anthropic-ratelimit-output-tokens-limit": "6000",
    }
    limiter.observe(parse_rate_limit_headers(headers))
    snap = limiter.snapshot()
    assert snap.rates_per_minute == pytest.approx(
        {"requests": 600, "tokens": 10**6, "output_tokens": 6_000}
    )
    assert snap.learned == {"requests": 600, "output_tokens": 6_000}
    assert snap.levels["requests"] == pytest.approx(2)
    assert [limiter.acquire(Cost()) for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_irrelevant_headers_change_nothing(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600))
    before = limiter.snapshot()
    headers = {"content-type": "application/json", "x-ratelimit-limit-requests": "lots"}
    limiter.observe(parse_rate_limit_headers(headers))
    assert limiter.snapshot() == before


class CountingStore:
    """A store that counts the ``learn`` calls it passes on."""

    def __init__(self, store: Any) -> None:
        self.store, self.learned = store, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def learn(self, limits: ProviderLimits) -> None:
        self.learned += 1
        self.store.learn(limits)


def test_answers_without_limits_reach_the_store_only_until_slow_start_ends(
    store_factory: MakeStore,
) -> None:
    clock = FakeClock()
    store = CountingStore(store_factory(Limits(requests_per_minute=600), clock, probe_seconds=2))
    limiter = QuotaLimiter(store, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    limiter.acquire(Cost())
    for _ in range(3):
        limiter.observe(ProviderLimits())  # the first ends slow start; the others say nothing
    limiter.observe(ProviderLimits(remaining={"requests": 1}))
    assert store.learned == 2
    assert limiter.acquire(Cost()) == 0.0  # slow start is over


class FakeProvider:
    """A provider allowing ``per_minute`` requests, enforced per second, with OpenAI headers.

    ``headers=False``: a provider that says nothing but ``retry-after`` on a 429.
    """

    def __init__(self, clock: FakeClock, per_minute: float, headers: bool = True) -> None:
        self.clock, self.per_minute, self.headers = clock, per_minute, headers
        self.rate = per_minute / 60.0
        self.level, self.updated = 1.0, clock()  # holds one second's worth: 1 request at 60 RPM
        self.answered = self.rejected = 0

    def call(self) -> tuple[int, dict[str, str]]:
        now = self.clock()
        self.level = min(1.0, self.level + (now - self.updated) * self.rate)
        self.updated = now
        ok = self.level >= 1.0 - 1e-9
        if ok:
            self.level -= 1.0
            self.answered += 1
        else:
            self.rejected += 1
        headers = {
            "x-ratelimit-limit-requests": f"{self.per_minute:g}",
            "x-ratelimit-remaining-requests": f"{max(0, math.floor(self.level + 1e-9))}",
            "x-ratelimit-reset-requests": f"{(1.0 - self.level) / self.rate:.3f}s",
        }
        if not self.headers:
            headers = {}
        if not ok:
            headers["retry-after"] = "1"
        return (200 if ok else 429), headers


def test_a_limit_far_above_the_providers_converges_after_few_429s(
    make_limiter: MakeLimiter,
) -> None:
    clock = FakeClock()
    limiter = make_limiter(Limits(requests_per_minute=100_000), clock)
    provider = FakeProvider(clock, per_minute=60)
    start = clock()
    while provider.answered < 120:
        limiter.acquire(Cost())
        status, headers = provider.call()
        limiter.observe(parse_rate_limit_headers(headers))
        if status == 429:
            limiter.pause(1.0)
    assert provider.rejected <= 3
    assert clock() - start == pytest.approx(120, rel=0.05)  # the provider's pace, not slower


# --- 429s with nothing to learn from --------------------------------------------------------------


def test_repeated_429s_without_headers_lower_the_pace_until_they_stop(
    make_limiter: MakeLimiter,
) -> None:
    # Configured at twice a provider that says only retry-after: pausing alone would resume at
    # the same pace and draw a 429 every other request for ever.
    clock = FakeClock()
    limiter = make_limiter(Limits(requests_per_minute=120), clock)
    provider = FakeProvider(clock, per_minute=60, headers=False)
    statuses = []
    while provider.answered < 100:
        admission = limiter.admit(Cost())
        status, headers = provider.call()
        limiter.observe(parse_rate_limit_headers(headers))
        if status == 429:
            limiter.pause(1.0, admission)
        statuses.append(status)
    learned = limiter.snapshot().learned["requests"]
    assert 60 * RATE_DECREASE_ON_REPEATED_429 <= learned <= 60
    assert 429 not in statuses[-80:]
    assert provider.rejected <= 5


def test_admit_tells_the_429_episode_a_request_goes_out_in(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600))
    first = limiter.admit(Cost())
    assert first == (0.0, 0)
    limiter.pause(1.0, first)  # its 429 begins episode 1
    assert limiter.admit(Cost()) == (pytest.approx(1.0), 1)  # after the pause
    assert limiter.admit(Cost()) == (0.0, 1)  # at once, in the same episode


def test_execute_lowers_the_pace_of_a_provider_that_sends_only_retry_after(
    make_limiter: MakeLimiter,
) -> None:
    from llm_api_client.call.execute import execute
    from llm_api_client.call.retry import RetryPolicy
    from llm_api_client.providers.litellm_transport import FunctionTransport
    from tests.fakes import make_response, status_error  # retry-after-ms, no x-ratelimit-*

    clock = FakeClock()
    limiter = make_limiter(Limits(requests_per_minute=120), clock)
    provider = FakeProvider(clock, per_minute=60, headers=False)

    def completion(**request: Any) -> Any:
        status, _ = provider.call()
        if status == 429:
            raise status_error(429, request["model"])
        return make_response(request["model"], "ok")

    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for index in range(60):
        outcome = execute(request, index=index, cost=Cost(), limiter=limiter,
                          policy=RetryPolicy(max_retries=5),
                          transport=FunctionTransport(completion),
                          sleep=clock.sleep, clock=clock)  # fmt: skip
        assert outcome.ok, outcome.error
    assert limiter.snapshot().learned["requests"] <= 60
    assert limiter.snapshot().episodes >= 3


# --- slow start ---------------------------------------------------------------------------------


def test_slow_start_holds_the_others_until_the_first_answer(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600), probe_seconds=2.0)
    assert limiter.acquire(Cost()) == 0.0  # the probe goes alone
    clock = clock_of(limiter)
    clock.on_sleep = lambda _: limiter.observe(ProviderLimits(limits={"requests": 120}))
    waited = limiter.acquire(Cost())  # held until the answer, then paced at the learned 120/min
    assert clock.sleeps[0] == PROBE_POLL_SECONDS
    assert waited == pytest.approx(0.5)  # half a second after the probe, as 120/min wants
    assert limiter.snapshot().rates_per_minute == pytest.approx({"requests": 120})
    assert limiter.acquire(Cost()) == pytest.approx(0.5)  # no more holding


def test_a_learned_limit_under_two_requests_a_second_is_paced_with_a_margin(
    make_limiter: MakeLimiter,
) -> None:
    # A provider's 1-s window then holds one request: exact pacing would draw a 429 for every
    # arrival the send jitter brings a little early.
    limiter = make_limiter(Limits(requests_per_minute=3_000))
    limiter.observe(ProviderLimits(limits={"requests": 60}))
    assert limiter.snapshot().rates_per_minute == pytest.approx({"requests": 60 * LOW_LIMIT_PACE})
    limiter.acquire(Cost())
    assert limiter.acquire(Cost()) == pytest.approx(1 / LOW_LIMIT_PACE)  # 1.053 s, not 1 s


def test_slow_start_gives_up_waiting_after_probe_seconds(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600), probe_seconds=2.0)
    limiter.acquire(Cost())
    assert limiter.acquire(Cost()) == pytest.approx(2.0)  # no answer: the probe expires
    assert limiter.acquire(Cost()) == 0.0


def test_a_429_ends_slow_start(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600), probe_seconds=2.0)
    limiter.acquire(Cost())
    limiter.pause(0.5)
    assert limiter.acquire(Cost()) == pytest.approx(0.5)


def test_slow_start_counts_against_max_delay(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600), probe_seconds=2.0)
    limiter.acquire(Cost())
    with pytest.raises(RateLimitDelayExceeded):
        limiter.acquire(Cost(), max_delay=0.5)
    assert limiter.snapshot().admitted == 1


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_impossible_probe_seconds(make_limiter: MakeLimiter, value: float) -> None:
    with pytest.raises(ConfigurationError, match="probe_seconds"):
        make_limiter(Limits(), probe_seconds=value)


@pytest.mark.parametrize(
    ("preset", "store_type"),
    [(InProcessRateLimiter, LocalStore), (SharedMemoryRateLimiter, SharedMemoryStore)],
)
def test_the_preset_limiters_are_the_limiter_over_a_new_store(
    preset: type[QuotaLimiter], store_type: type
) -> None:
    clock = FakeClock()
    limits = Limits(requests_per_minute=600)
    with preset(limits, clock=clock, sleep=clock.sleep, probe_seconds=1.0) as limiter:  # type: ignore[call-arg]
        assert isinstance(limiter.store, store_type)
        assert limiter.limits == limits
        # Slow start on the given clock: no answer comes, so the second request waits it out.
        assert [limiter.acquire(Cost()) for _ in range(2)] == [0.0, pytest.approx(1.0)]


# --- observability ------------------------------------------------------------------------------


def test_snapshot_and_repr_show_live_state(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=600, tokens_per_minute=60_000))
    limiter.acquire(Cost(input_tokens=100))
    snap = limiter.snapshot()
    assert snap.levels == pytest.approx({"requests": 4, "tokens": 400})
    assert snap.rates_per_minute == pytest.approx({"requests": 600, "tokens": 60_000})
    assert (snap.waiters, snap.pauses, snap.admitted, snap.paused_for) == (0, 0, 1, 0.0)
    text = repr(limiter)
    assert "requests=4/5 at 600/min" in text
    assert "tokens=400/500 at 60000/min" in text
    assert "waiters=0" in text


def test_a_waiter_is_counted_while_it_sleeps(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limits(requests_per_minute=60))
    limiter.acquire(Cost())
    seen: list[int] = []
    clock_of(limiter).on_sleep = lambda _: seen.append(limiter.snapshot().waiters)
    limiter.acquire(Cost())
    assert seen == [1]
    assert limiter.snapshot().waiters == 0


# --- properties ---------------------------------------------------------------------------------

arrivals = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=2, allow_nan=False),  # idle gap before the request
        st.integers(min_value=0, max_value=900),  # tokens
        st.sampled_from([0.0, 0.0, 0.0, 0.5, 3.0]),  # a 429 pauses for this long first
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(
    arrivals=arrivals,
    tpm=st.integers(min_value=1_000, max_value=100_000),
    burst=st.floats(min_value=0.05, max_value=5),
    store=st.sampled_from(list(STORES)),
)
def test_no_window_admits_more_than_burst_plus_rate_times_window(
    arrivals: list[tuple[float, int, float]],
    tpm: int,
    burst: float,
    store: str,
) -> None:
    clock = FakeClock()
    limits = Limits(requests_per_minute=6 * tpm, tokens_per_minute=tpm, burst_seconds=burst)
    limiter = QuotaLimiter(STORES[store](limits, clock), clock=clock, sleep=clock.sleep)
    try:
        rate, capacity = tpm / 60.0, tpm / 60.0 * burst
        admitted: list[tuple[float, int]] = []
        for gap, tokens, pause in arrivals:
            clock.advance(gap)
            limiter.pause(pause)
            tokens = min(tokens, tpm)
            waited = limiter.acquire(Cost(input_tokens=tokens))
            # Nothing admissible waits forever: the pause, a full bucket and the largest debt.
            assert waited <= pause + (capacity + tpm) / rate + 1e-6
            admitted.append((clock(), tokens))
    finally:
        limiter.close()
    largest = max(tokens for _, tokens in admitted)
    for i, (first, _) in enumerate(admitted):
        total = 0
        for at, tokens in admitted[i:]:
            total += tokens
            assert total <= max(capacity, largest) + rate * (at - first) + 1e-6


@settings(max_examples=100, deadline=None)
@given(
    costs=st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=40),
    now=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_reservations_are_served_first_come_first_served(costs: list[int], now: float) -> None:
    # Many callers reserve at the same instant (then sleep): their turns never go backwards, so
    # a large request is never overtaken by the small ones that came after it.
    state = bucket.initial_state(Limits(tokens_per_minute=30_000), now)
    turns = [
        bucket.reserve(state, bucket.costs_of(Cost(input_tokens=c, requests=0)), now, None)
        for c in costs
    ]
    assert turns == sorted(turns)
    assert turns[-1] - now <= sum(costs) / 500 + 1e-6


def test_a_request_that_skips_the_congested_bucket_is_not_held_behind_it() -> None:
    # The queue is per bucket: a request needing no tokens is admitted before a large token
    # request that waits for its turn, and delays nobody queued before it.
    state = bucket.initial_state(Limits(requests_per_minute=600, tokens_per_minute=30_000), 0.0)
    turns = [
        bucket.reserve(state, bucket.costs_of(Cost(input_tokens=c)), 0.0, None)
        for c in (250, 250, 0)
    ]
    assert turns[:2] == pytest.approx([0.0, 0.5])
    assert turns[2] < turns[1]
