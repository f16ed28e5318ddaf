"""The acquire / refund / pause / observe protocol over a state array and a lock.

Both backends are this class with different storage: ``memory.InProcessRateLimiter`` keeps the
state in a ``list`` behind a ``threading.Lock``; ``shared.SharedMemoryRateLimiter`` keeps it in a
shared-memory ``memoryview`` behind a ``multiprocess.Lock``. The arithmetic is ``bucket``'s; this
module only decides when to hold the lock and when to sleep (never while holding it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

    Subclasses set ``limits``, ``_configured``, ``_state``, ``_lock``, ``_clock`` and ``_sleep``.
    """

    limits: Limits
    _configured: tuple[float | None, ...]
    _state: bucket.State
    _lock: Any  # threading.Lock or multiprocess.Lock: both are context managers
    _clock: Clock
    _sleep: Sleep

    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        costs = bucket.costs_of(cost)
        state = self._state
        with self._lock:
            now = self._clock()
            at = bucket.reserve(state, costs, now, max_delay)
            if at <= now:
                return 0.0
            shift = state[bucket.SHIFT]
            state[bucket.WAITERS] += 1
        try:
            at = self._sleep_until(at, shift, now, max_delay)
        except BaseException:
            # Not admitted after all (max_delay passed during a pause, or the injected sleep
            # raised to cancel): the request will not be sent, so its reservation comes back.
            self.refund_costs(costs)
            raise
        finally:
            with self._lock:
                state[bucket.WAITERS] -= 1
        return at - now

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

    def observe(self, headers: Mapping[str, str]) -> None:
        info = parse_rate_limit_headers(headers)
        if not (info.limits or info.remaining):
            return
        with self._lock:
            now = self._clock()
            for name, per_minute in info.limits.items():
                index = bucket.BUCKETS.index(name)
                bucket.learn_limit(
                    self._state,
                    index,
                    per_minute,
                    self._configured[index],
                    self.limits.burst_seconds,
                    now,
                )
            for name, remaining in info.remaining.items():
                bucket.lower_level(self._state, bucket.BUCKETS.index(name), remaining, now)

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
