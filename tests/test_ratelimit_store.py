"""The ``QuotaStore`` conformance suite: every store, the same atomic operations, the same answers.

Written once against the protocol and run over every store in ``STORES`` (as ``limits`` runs one
suite over its storages); a new store (Redis, ...) is one more line there. Each store reads a
``FakeClock`` that only moves when a test moves it, set far from zero so that an answer that
leaked a time instead of a duration would show.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_api_client._constants import RATE_DECREASE_ON_REPEATED_429, REPEATED_429_SECONDS
from llm_api_client.errors import RateLimitDelayExceeded, RequestTooLargeError
from llm_api_client.ratelimit import (
    Cost,
    Limits,
    LocalStore,
    ProviderLimits,
    QuotaStore,
    SharedMemoryStore,
    Turn,
)
from llm_api_client.ratelimit.store import LockedStore
from tests.redis_server import fresh_key, shared_server

START = 1_000_000.0


class FakeClock:
    """A clock that only moves when someone sleeps; ``on_sleep`` runs before each move."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep is not None:
            hook, self.on_sleep = self.on_sleep, None
            hook(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeStore = Callable[..., QuotaStore]

# name -> factory(limits, clock, **options): every store this suite (and test_ratelimit) runs on.
STORES: dict[str, MakeStore] = {
    "local": lambda limits, clock, **options: LocalStore(limits, clock=clock, **options),
    "shared_memory": lambda limits, clock, **options: SharedMemoryStore(
        limits, clock=clock, **options
    ),
    "redis": lambda limits, clock, **options: _redis_store(limits, clock, **options),
}


def _redis_store(limits: Limits, clock: Callable[[], float], **options: Any) -> QuotaStore:
    from llm_api_client.ratelimit.redis_store import RedisStore

    return RedisStore(limits, shared_server().url, fresh_key(), clock=clock, **options)


@pytest.fixture(params=list(STORES))
def store_factory(request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """A factory of the parametrized store (on a ``FakeClock`` unless given one); closes them."""
    made: list[QuotaStore] = []

    def make(limits: Limits, clock: FakeClock | None = None, **options: Any) -> QuotaStore:
        store = STORES[request.param](limits, clock or FakeClock(), **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def store_with_clock(
    store_factory: MakeStore, limits: Limits, **options: Any
) -> tuple[QuotaStore, FakeClock]:
    clock = FakeClock()
    return store_factory(limits, clock, **options), clock


# --- reserve ------------------------------------------------------------------------------------


def test_reserve_answers_durations_not_times(store_factory: MakeStore) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=600))  # 10/s, 5
    turns = [store.reserve(Cost(), None) for _ in range(7)]
    assert [turn.wait for turn in turns] == pytest.approx([0, 0, 0, 0, 0, 0.1, 0.2])
    assert {(turn.shift, turn.episode, turn.held) for turn in turns} == {(0.0, 0, False)}
    clock.advance(0.2)  # the two turns taken ahead have come; the bucket is empty again
    assert store.reserve(Cost(), None).wait == pytest.approx(0.1)


def test_reserve_refuses_a_cost_above_a_per_minute_limit_and_takes_nothing(
    store_factory: MakeStore,
) -> None:
    store = store_factory(Limits(requests_per_minute=600, tokens_per_minute=1_000))
    with pytest.raises(RequestTooLargeError) as caught:
        store.reserve(Cost(input_tokens=1_001), None)
    assert caught.value.bucket == "tokens"  # type: ignore[attr-defined]
    snap = store.snapshot()
    assert (snap.admitted, snap.levels["requests"]) == (0, pytest.approx(5))


def test_reserve_refuses_a_turn_later_than_max_delay_and_takes_nothing(
    store_factory: MakeStore,
) -> None:
    store = store_factory(Limits(requests_per_minute=60))  # 1/s, capacity 1
    store.reserve(Cost(), None)
    before = store.snapshot()
    with pytest.raises(RateLimitDelayExceeded) as caught:
        store.reserve(Cost(), 0.5)
    assert caught.value.delay == pytest.approx(1.0)  # type: ignore[attr-defined]
    assert store.snapshot() == before
    assert store.reserve(Cost(), 1.0).wait == pytest.approx(1.0)


@pytest.fixture
def fast_thread_switches() -> Iterator[None]:
    """Threads switch every microsecond instead of every 5 ms, so that races show."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def admitted_by_threads(attempt: Callable[[], object], attempts: int = 1_000) -> int:
    """How many of 8 threads x ``attempts`` immediate ``attempt``s, started together, got in."""
    admitted = [0] * 8
    start = threading.Barrier(8)

    def run(slot: int) -> None:
        start.wait()
        for _ in range(attempts):
            try:
                attempt()
                admitted[slot] += 1
            except RateLimitDelayExceeded:
                pass

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(admitted)


@pytest.mark.usefixtures("fast_thread_switches")
def test_threads_reserving_at_once_get_exactly_the_capacity(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=1, burst_seconds=60.0 * 3_000))  # 3,000
    assert admitted_by_threads(lambda: store.reserve(Cost(), 0)) == 3_000
    assert store.snapshot().admitted == 3_000


class WritesTogether:
    """A state array whose first write in each of two threads waits for the other's (0.2 s at most).

    Without the store's atomicity both threads read the last place as free, then both write,
    as if one had been preempted between reading and writing; with it, the second thread reads
    only after the first has written.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self.together = threading.Barrier(2, timeout=0.2)
        self.wrote = threading.local()

    def __getitem__(self, slot: int) -> float:
        return float(self.state[slot])

    def __setitem__(self, slot: int, value: float) -> None:
        if not getattr(self.wrote, "once", False):
            self.wrote.once = True
            with contextlib.suppress(threading.BrokenBarrierError):  # alone: the lock works
                self.together.wait()
        self.state[slot] = value

    def __len__(self) -> int:
        return len(self.state)


@pytest.mark.parametrize("kind", ["local", "shared_memory"])
def test_a_locked_store_runs_each_operation_whole(kind: str) -> None:
    store = STORES[kind](Limits(requests_per_minute=60), FakeClock())  # one place
    assert isinstance(store, LockedStore)
    store._state = WritesTogether(store._state)
    try:
        outcomes: list[str] = []

        def take_the_place() -> None:
            try:
                store.reserve(Cost(), 0)
                outcomes.append("admitted")
            except RateLimitDelayExceeded:
                outcomes.append("refused")

        threads = [threading.Thread(target=take_the_place) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["admitted", "refused"]
    finally:
        store.close()


# --- waiters: claim and cancel ------------------------------------------------------------------


def test_a_waiter_is_counted_until_it_claims_its_turn(store_factory: MakeStore) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=60))
    store.reserve(Cost(), None)
    turn = store.reserve(Cost(), None)
    assert (turn.wait, store.snapshot().waiters) == (pytest.approx(1.0), 1)
    clock.advance(turn.wait)
    assert store.claim_turn(turn.shift) == turn.shift  # unmoved: admitted
    assert store.snapshot().waiters == 0


def test_a_pause_moves_a_waiters_turn_back_by_its_extension(store_factory: MakeStore) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=60))
    store.reserve(Cost(), None)
    turn = store.reserve(Cost(), None)  # in 1 s
    clock.advance(0.5)
    store.pause(3.0, None)  # until +3.5: 3 s more than the schedule had
    clock.advance(0.5)
    shift = store.claim_turn(turn.shift)
    assert shift - turn.shift == pytest.approx(3.0)
    assert store.snapshot().waiters == 1  # still waiting, now for 3 s more
    clock.advance(3.0)
    assert store.claim_turn(shift) == shift
    assert store.snapshot().waiters == 0


def test_cancelling_a_turn_gives_its_cost_back(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=60))
    store.reserve(Cost(), None)
    store.reserve(Cost(), None)
    assert store.snapshot().levels["requests"] == pytest.approx(-1)  # one reserved ahead
    store.cancel_turn(Cost())
    snap = store.snapshot()
    assert (snap.waiters, snap.levels["requests"]) == (0, pytest.approx(0))


# --- give back ----------------------------------------------------------------------------------


def test_give_back_returns_tokens_never_above_capacity(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=600, tokens_per_minute=6_000))  # 5, 50
    store.reserve(Cost(input_tokens=10, output_tokens=40), None)
    store.give_back(Cost(output_tokens=30, requests=0))
    assert store.snapshot().levels == pytest.approx({"requests": 4, "tokens": 30})
    store.give_back(Cost(output_tokens=10_000, requests=3))
    assert store.snapshot().levels == pytest.approx({"requests": 5, "tokens": 50})


# --- pause --------------------------------------------------------------------------------------


def test_a_pause_is_a_duration_that_extends_never_shortens(store_factory: MakeStore) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=600))
    store.pause(5.0, None)
    store.pause(1.0, None)
    for useless in (0.0, -3.0, math.nan):
        store.pause(useless, None)
    assert store.snapshot().paused_for == pytest.approx(5.0)
    assert store.snapshot().pauses == 5
    assert store.reserve(Cost(), None).wait == pytest.approx(5.0)
    clock.advance(5.0)
    assert store.snapshot().paused_for == 0.0


def test_a_429_of_a_request_sent_after_the_latest_episode_starts_a_new_one(
    store_factory: MakeStore,
) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=600))
    before = [store.reserve(Cost(), None) for _ in range(3)]  # in flight together
    for turn in before:
        store.pause(1.0, turn.episode)  # the first 429 begins episode 1; the others are in it
    assert store.snapshot().episodes == 1
    clock.advance(1.0)
    after = store.reserve(Cost(), None)
    assert after.episode == 1
    store.pause(1.0, None)  # a 429 nobody can place starts nothing
    assert store.snapshot().episodes == 1
    store.pause(1.0, after.episode)
    assert store.snapshot().episodes == 2


def test_repeated_429s_lower_the_pace_of_every_limited_bucket(store_factory: MakeStore) -> None:
    limits = Limits(requests_per_minute=600, tokens_per_minute=60_000)
    store, clock = store_with_clock(store_factory, limits)
    store.pause(1.0, store.reserve(Cost(), None).episode)  # a first 429: only a pause
    assert store.snapshot().rates_per_minute == pytest.approx({"requests": 600, "tokens": 60_000})
    clock.advance(1.0)
    store.pause(1.0, store.reserve(Cost(), None).episode)  # again, just after resuming
    snap = store.snapshot()
    lowered = {"requests": 600 * RATE_DECREASE_ON_REPEATED_429,
               "tokens": 60_000 * RATE_DECREASE_ON_REPEATED_429}  # fmt: skip
    assert snap.rates_per_minute == pytest.approx(lowered)
    assert snap.learned == pytest.approx(lowered)
    assert snap.capacities["requests"] == pytest.approx(5 * RATE_DECREASE_ON_REPEATED_429)
    # The limits stand: a request within the configured limit is still admissible.
    store.reserve(Cost(input_tokens=59_000), None)


def test_a_first_429_only_pauses_even_on_a_clock_near_zero(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=600), FakeClock(now=5.0))  # just booted
    store.pause(1.0, store.reserve(Cost(), None).episode)
    assert store.snapshot().rates_per_minute == pytest.approx({"requests": 600})


def test_429s_far_apart_lower_nothing(store_factory: MakeStore) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=600))
    store.pause(1.0, store.reserve(Cost(), None).episode)
    clock.advance(1.0 + REPEATED_429_SECONDS + 1)
    store.pause(1.0, store.reserve(Cost(), None).episode)
    assert store.snapshot().episodes == 2
    assert store.snapshot().rates_per_minute == pytest.approx({"requests": 600})


# --- learn --------------------------------------------------------------------------------------


def test_learn_adopts_a_lower_limit_never_a_higher_one(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=6_000, tokens_per_minute=10**6))
    store.learn(ProviderLimits(limits={"requests": 600, "tokens": 2_000_000}))
    snap = store.snapshot()
    assert snap.rates_per_minute == pytest.approx({"requests": 600, "tokens": 10**6})
    assert snap.capacities["requests"] == pytest.approx(5)
    assert snap.learned == {"requests": 600}
    store.learn(ProviderLimits(limits={"requests": 60_000}))  # back up, but only to 6,000
    assert store.snapshot().rates_per_minute == pytest.approx({"requests": 6_000, "tokens": 10**6})
    assert store.snapshot().learned == {}


def test_learn_keeps_what_was_spent(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=6_000))  # capacity 50
    for _ in range(3):
        store.reserve(Cost(), None)
    store.learn(ProviderLimits(limits={"requests": 600}))  # capacity 5, of which 3 spent
    assert store.snapshot().levels["requests"] == pytest.approx(2)


def test_learn_turns_on_an_unlimited_bucket(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=600))
    store.learn(ProviderLimits(limits={"output_tokens": 6_000}))
    snap = store.snapshot()
    assert snap.rates_per_minute["output_tokens"] == pytest.approx(6_000)
    assert snap.levels["output_tokens"] == pytest.approx(50)  # starts full
    assert snap.learned == {"output_tokens": 6_000}


def test_learn_lowers_a_level_to_what_remains_never_raises_it(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=600))  # capacity 5
    store.learn(ProviderLimits(remaining={"requests": 2}))
    assert store.snapshot().levels["requests"] == pytest.approx(2)
    store.learn(ProviderLimits(remaining={"requests": 4}))
    assert store.snapshot().levels["requests"] == pytest.approx(2)


def test_learn_ignores_values_that_make_no_sense(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=600))
    before = store.snapshot()
    nonsense = {"requests": math.nan, "tokens": -1.0}
    store.learn(ProviderLimits(limits={**nonsense, "input_tokens": math.inf}, remaining=nonsense))
    assert store.snapshot() == before


def test_a_provider_repeating_its_limit_keeps_a_pace_429s_lowered(store_factory: MakeStore) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=6_000))
    store.learn(ProviderLimits(limits={"requests": 600}))
    store.pause(1.0, store.reserve(Cost(), None).episode)
    clock.advance(1.0)
    store.pause(1.0, store.reserve(Cost(), None).episode)
    store.learn(ProviderLimits(limits={"requests": 600}))  # nothing new: the pace stays lower
    lowered = 600 * RATE_DECREASE_ON_REPEATED_429
    assert store.snapshot().rates_per_minute == pytest.approx({"requests": lowered})
    store.learn(ProviderLimits(limits={"requests": 300}))  # news: the provider's word
    assert store.snapshot().rates_per_minute == pytest.approx({"requests": 300})


# --- slow start ---------------------------------------------------------------------------------


def test_slow_start_holds_reservations_until_an_answer(store_factory: MakeStore) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=600), probe_seconds=2)
    assert store.reserve(Cost(), None).wait == 0.0  # the probe goes alone
    clock.advance(0.5)
    held = store.reserve(Cost(), None)
    assert held == Turn(pytest.approx(1.5), 0.0, 0, held=True)
    assert store.snapshot().admitted == 1  # a held caller took nothing
    store.learn(ProviderLimits())  # an answer, even without limits, ends slow start
    assert store.reserve(Cost(), None) == Turn(0.0, 0.0, 0)


@pytest.mark.parametrize("answer", ["pause", "time"])
def test_slow_start_ends_with_a_429_or_after_probe_seconds(
    store_factory: MakeStore, answer: str
) -> None:
    store, clock = store_with_clock(store_factory, Limits(requests_per_minute=600), probe_seconds=2)
    store.reserve(Cost(), None)
    if answer == "pause":
        store.pause(0.5, None)
    else:
        clock.advance(3.0)
    assert not store.reserve(Cost(), None).held


# --- snapshot -----------------------------------------------------------------------------------


def test_snapshot_shows_levels_rates_and_counts(store_factory: MakeStore) -> None:
    store = store_factory(Limits(requests_per_minute=600, tokens_per_minute=60_000))
    store.reserve(Cost(input_tokens=100), None)
    store.pause(2.0, None)
    snap = store.snapshot()
    assert snap.levels == pytest.approx({"requests": 4, "tokens": 400})
    assert snap.capacities == pytest.approx({"requests": 5, "tokens": 500})
    assert snap.rates_per_minute == pytest.approx({"requests": 600, "tokens": 60_000})
    assert (snap.waiters, snap.pauses, snap.admitted, snap.episodes) == (0, 1, 1, 0)
    assert snap.paused_for == pytest.approx(2.0)
    assert snap.learned == {}
