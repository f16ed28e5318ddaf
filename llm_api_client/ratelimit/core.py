"""The acquire / refund / pause / observe protocol over a state array and a lock.

Both backends are this class with different storage: ``memory.InProcessRateLimiter`` keeps the
state in a ``list`` behind a ``threading.Lock``; ``shared.SharedMemoryRateLimiter`` keeps it in a
shared-memory ``memoryview`` behind a ``multiprocess.Lock``. The arithmetic is ``bucket``'s; this
module only decides when to hold the lock and when to sleep (never while holding it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llm_api_client._constants import PROBE_POLL_SECONDS
from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import (
    Clock,
    Cost,
    LimiterSnapshot,
    Limits,
    RateLimiter,
    Sleep,
)
from llm_api_client.ratelimit.headers import parse_rate_limit_headers


class LockedStateRateLimiter(RateLimiter):
    """A limiter whose state is ``bucket``'s float array, guarded by one lock.

    Subclasses call ``__init__`` for the settings and set ``_state`` and ``_lock`` (the storage).
    """

    _state: bucket.State
    _lock: Any  # threading.Lock or multiprocess.Lock: both are context managers

    def __init__(self, limits: Limits, clock: Clock, sleep: Sleep) -> None:
        self.limits = limits
        self._configured = bucket.configured_limits(limits)
        self._clock = clock
        self._sleep = sleep

    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        costs = bucket.costs_of(cost)
        start, at, shift = self._reserve(costs, max_delay)
        if shift is None:
            return at - start
        return self._wait_turn(costs, at, shift, start, max_delay) - start

    def _reserve(
        self, costs: bucket.Costs, max_delay: float | None
    ) -> tuple[float, float, float | None]:
        """Take ``costs`` for their turn: (start, turn, pause shift if the caller must wait)."""
        state = self._state
        start = None
        while True:
            with self._lock:
                now = self._clock()
                start = now if start is None else start
                hold = bucket.probe_hold(state, now) if state[bucket.PROBE_UNTIL] else 0.0
                if not hold:
                    left = None if max_delay is None else max_delay - (now - start)
                    at = bucket.reserve(state, costs, now, left)
                    if state[bucket.PROBE_UNTIL]:
                        bucket.start_probe(state, at)
                    if at <= now:
                        return start, now, None
                    state[bucket.WAITERS] += 1
                    return start, at, state[bucket.SHIFT]
            self._hold_for_probe(hold, now - start, max_delay)

    def _wait_turn(
        self, costs: bucket.Costs, at: float, shift: float, start: float, max_delay: float | None
    ) -> float:
        """Sleep until the reserved turn as a counted waiter; return the turn."""
        try:
            return self._sleep_until(at, shift, start, max_delay)
        except BaseException:
            # Not admitted after all (max_delay passed during a pause, or the injected sleep
            # raised to cancel): the request will not be sent, so its reservation comes back.
            self.refund_costs(costs)
            raise
        finally:
            with self._lock:
                self._state[bucket.WAITERS] -= 1

    def _hold_for_probe(self, hold: float, waited: float, max_delay: float | None) -> None:
        """Wait a little while the first request's answer is awaited (slow start)."""
        if max_delay is not None and waited + min(hold, PROBE_POLL_SECONDS) > max_delay:
            raise bucket.delay_exceeded(waited + hold, max_delay)
        self._sleep(min(hold, PROBE_POLL_SECONDS))

    def _sleep_until(self, at: float, shift: float, start: float, max_delay: float | None) -> float:
        """Sleep until ``at``, moved back by any pause that a 429 started meanwhile."""
        while True:
            moved = self._state[bucket.SHIFT] - shift
            if moved > 0:
                shift += moved
                at += moved
                if max_delay is not None and at - start > max_delay:
                    raise bucket.delay_exceeded(at - start, max_delay)
            delay = at - self._clock()
            if delay <= 0 and self._state[bucket.SHIFT] == shift:
                return at
            if delay > 0:
                self._sleep(delay)

    def refund(self, cost: Cost) -> None:
        self.refund_costs(bucket.costs_of(cost))

    def refund_costs(self, costs: bucket.Costs) -> None:
        with self._lock:
            bucket.give_back(self._state, costs, self._clock())

    def pause(self, seconds: float) -> None:
        with self._lock:
            bucket.pause(self._state, seconds, self._clock())
            bucket.heard(self._state)

    def observe(self, headers: Mapping[str, str]) -> None:
        info = parse_rate_limit_headers(headers)
        if not (info.limits or info.remaining or self._state[bucket.PROBE_UNTIL]):
            return  # nothing to learn, no slow start to end: spare the lock
        with self._lock:
            if info.limits or info.remaining:
                self._learn(info.limits, info.remaining, self._clock())
            # Only now, with the provider's limits in place, may slow start's waiters go on.
            bucket.heard(self._state)

    def _learn(
        self, limits: Mapping[str, float], remaining: Mapping[str, float], now: float
    ) -> None:
        for name, per_minute in limits.items():
            index = bucket.BUCKETS.index(name)
            configured = self._configured[index]
            burst = self.limits.burst_seconds
            bucket.learn_limit(self._state, index, per_minute, configured, burst, now)
        for name, left in remaining.items():
            bucket.lower_level(self._state, bucket.BUCKETS.index(name), left, now)

    def snapshot(self) -> LimiterSnapshot:
        with self._lock:
            now = self._clock()
            state = list(self._state)
        return snapshot_of(state, now)

    def __repr__(self) -> str:
        snap = self.snapshot()
        buckets = ", ".join(
            f"{name}={snap.levels[name]:.6g}/{snap.capacities[name]:.6g}"
            f" at {snap.rates_per_minute[name]:.6g}/min"
            for name in snap.levels
        )
        paused = f", paused_until={snap.paused_until:.3f}" if snap.paused_until else ""
        return (
            f"{type(self).__name__}({buckets or 'unlimited'}, waiters={snap.waiters},"
            f" pauses={snap.pauses}{paused}, admitted={snap.admitted})"
        )


def snapshot_of(state: bucket.State, now: float) -> LimiterSnapshot:
    """A ``LimiterSnapshot`` of a copy of the state taken at ``now``."""
    levels: dict[str, float] = {}
    rates: dict[str, float] = {}
    capacities: dict[str, float] = {}
    learned: dict[str, float] = {}
    for index, name in enumerate(bucket.BUCKETS):
        base = bucket.HEADER_SLOTS + bucket.FIELDS * index
        if state[base + bucket.RATE] > 0:
            levels[name] = bucket.level(state, index, now)
            rates[name] = state[base + bucket.RATE] * 60.0
            capacities[name] = state[base + bucket.CAPACITY]
        if state[base + bucket.LEARNED] > 0:
            learned[name] = state[base + bucket.LEARNED]
    paused_until = state[bucket.PAUSED_UNTIL]
    return LimiterSnapshot(
        levels=levels,
        rates_per_minute=rates,
        waiters=round(state[bucket.WAITERS]),
        paused_until=paused_until if paused_until > now else 0.0,
        pauses=round(state[bucket.PAUSES]),
        learned=learned,
        capacities=capacities,
        admitted=round(state[bucket.ADMITTED]),
    )
