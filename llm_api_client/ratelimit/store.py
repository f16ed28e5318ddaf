"""``QuotaStore``: the quota's state behind a short list of atomic operations.

A store owns the buckets' state and its own clock. Each operation is one atomic step that
returns what the limiter needs to decide, never "read the state, then write it", and answers in
durations and counts only, so the limiter and the store need no clock in common (a store on
another machine reads its own time)::

    reserve(cost, max_delay) -> Turn    take the cost for its turn: admitted, or wait this long
    claim_turn(shift) -> shift now      a waiter whose turn came: admitted, or moved back by pauses
    cancel_turn(cost)                   a waiter gives up: its cost comes back
    give_back(cost)                     a provider did not charge all of it (settlement)
    pause(seconds, episode)             a 429: nothing is admitted for a while
    learn(limits)                       a provider's stated limits and remaining levels
    snapshot() -> LimiterSnapshot       levels, rates, waiters, pauses, for people

The arithmetic of every operation is ``bucket``'s. ``LockedStore`` runs it under a lock for the
stores that hold the state in this host's memory: ``memory.LocalStore`` (a list and a
``threading.Lock``) and ``shared.SharedMemoryStore`` (shared memory and a process-shared lock). A
network store implements each operation as one script run by the server (``bucket``'s functions
translated, the server's time inside).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import Clock, Cost, LimiterSnapshot, Limits, ProviderLimits, Turn

__all__ = ["LockedStore", "QuotaStore"]


class QuotaStore(Protocol):
    """Where the quota lives; every operation is atomic (see the module doc)."""

    limits: Limits

    def reserve(self, cost: Cost, max_delay: float | None) -> Turn:
        """Take ``cost`` for its turn; raises, taking nothing, if it is too large or too late."""

    def claim_turn(self, shift: float) -> float:
        """Claim a turn reserved at ``shift``: returns the shift now (equal: admitted)."""

    def cancel_turn(self, cost: Cost) -> None:
        """Give up a turn that was waited for: ``cost`` comes back, the waiter is uncounted."""

    def give_back(self, cost: Cost) -> None:
        """Return ``cost`` to the buckets, never above their capacity."""

    def pause(self, seconds: float, episode: int | None) -> None:
        """Admit nothing for ``seconds``; ``episode`` is the rejected request's ``Turn.episode``."""

    def learn(self, limits: ProviderLimits) -> None:
        """Adopt a provider's lower limits and levels; ends slow start."""

    def snapshot(self) -> LimiterSnapshot:
        """The quota's state now."""

    def close(self) -> None:
        """Release what the store holds (idempotent)."""


class LockedStore:
    """The ``QuotaStore`` operations on ``bucket``'s state array, each under one lock.

    Subclasses set ``_state`` and ``_lock`` (the storage); ``clock`` is the store's time.
    """

    _state: bucket.State
    _lock: AbstractContextManager[object]

    def __init__(self, limits: Limits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock

    def reserve(self, cost: Cost, max_delay: float | None) -> Turn:
        costs = bucket.costs_of(cost)
        with self._lock:
            return bucket.take_turn(self._state, costs, self._clock(), max_delay)

    def claim_turn(self, shift: float) -> float:
        with self._lock:
            return bucket.claim_turn(self._state, shift)

    def cancel_turn(self, cost: Cost) -> None:
        with self._lock:
            bucket.cancel_turn(self._state, bucket.costs_of(cost), self._clock())

    def give_back(self, cost: Cost) -> None:
        with self._lock:
            bucket.give_back(self._state, bucket.costs_of(cost), self._clock())

    def pause(self, seconds: float, episode: int | None) -> None:
        with self._lock:
            bucket.pause(self._state, seconds, self._clock(), episode)

    def learn(self, limits: ProviderLimits) -> None:
        with self._lock:
            bucket.learn(self._state, limits, self._clock())

    def snapshot(self) -> LimiterSnapshot:
        with self._lock:
            now = self._clock()
            state = list(self._state)
        return bucket.snapshot(state, now)

    def close(self) -> None:
        """Nothing to release by default."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.limits})"
