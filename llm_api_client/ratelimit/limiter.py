"""``QuotaLimiter``: the one rate limiter; it waits and sleeps, a ``QuotaStore`` keeps the quota.

One ``reserve`` answers most requests (admitted now). A request told to wait sleeps on this
process's clock for the duration the store gave, then claims its turn, sleeping again for any
pause a 429 started meanwhile; while slow start holds it, it asks again every
``PROBE_POLL_SECONDS``. The store never sees this process's clock, and the limiter never sees
the store's: only durations travel between them.

Example::

    limiter = QuotaLimiter(LocalStore(Limits(requests_per_minute=600)))
    admission = limiter.admit(Cost(input_tokens=120, output_tokens=400))  # sleeps until admitted
    ...  # send the request; on a 429:
    limiter.pause(retry_after, admission)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, ClassVar

from llm_api_client._constants import PROBE_POLL_SECONDS
from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import (
    Admission,
    Clock,
    Cost,
    LimiterSnapshot,
    Limits,
    ProviderLimits,
    RateLimiter,
    Sleep,
    Turn,
)
from llm_api_client.ratelimit.store import QuotaStore

__all__ = ["NewStoreLimiter", "QuotaLimiter"]


@functools.lru_cache(maxsize=64)
def _at_once(episode: int) -> Admission:
    """The admission of a request that did not wait, the same for a whole episode: made once."""
    return Admission(0.0, episode)


class QuotaLimiter(RateLimiter):
    """A token-bucket rate limiter over ``store``, shared by everyone who shares the store.

    ``clock`` and ``sleep`` are this process's (tests pass a fake clock whose sleep moves it); a
    ``sleep`` that raises (to cancel a batch) ends the acquisition and gives its turn back.
    """

    def __init__(
        self, store: QuotaStore, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.store = store
        self.limits = store.limits
        self._clock = clock
        self._sleep = sleep
        self._heard = False  # this limiter told the store of an answer: slow start is over

    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        turn = self.store.reserve(cost, max_delay)
        if turn.wait <= 0:
            return 0.0
        return self._wait(cost, turn, max_delay).waited

    def admit(self, cost: Cost, *, max_delay: float | None = None) -> Admission:
        turn = self.store.reserve(cost, max_delay)
        if turn.wait <= 0:
            return _at_once(turn.episode)
        return self._wait(cost, turn, max_delay)

    def _wait(self, cost: Cost, turn: Turn, max_delay: float | None) -> Admission:
        """Wait for a ``turn`` that is not now: slow start's hold, then the turn itself."""
        start = self._clock()
        while turn.held:
            self._hold(turn.wait, self._clock() - start, max_delay)
            turn = self.store.reserve(cost, _left(max_delay, self._clock() - start))
        if turn.wait > 0:
            self._wait_turn(cost, turn, start, max_delay)
        return Admission(self._clock() - start, turn.episode)

    def _hold(self, hold: float, waited: float, max_delay: float | None) -> None:
        """Wait a little while the first request's answer is awaited (slow start)."""
        if max_delay is not None and waited + min(hold, PROBE_POLL_SECONDS) > max_delay:
            raise bucket.delay_exceeded(waited + hold, max_delay)
        self._sleep(min(hold, PROBE_POLL_SECONDS))

    def _wait_turn(self, cost: Cost, turn: Turn, start: float, max_delay: float | None) -> None:
        """Sleep until the reserved turn, moved back by any pause that a 429 started meanwhile."""
        deadline, shift = self._clock() + turn.wait, turn.shift
        try:
            while True:
                delay = deadline - self._clock()
                if delay > 0:
                    self._sleep(delay)
                    continue
                now_shift = self.store.claim_turn(shift)
                if now_shift == shift:
                    return
                deadline, shift = deadline + now_shift - shift, now_shift
                if max_delay is not None and deadline - start > max_delay:
                    raise bucket.delay_exceeded(deadline - start, max_delay)
        except BaseException:
            # Not admitted after all (max_delay passed during a pause, or the injected sleep
            # raised to cancel): the request will not be sent, so its turn comes back.
            self.store.cancel_turn(cost)
            raise

    def refund(self, cost: Cost) -> None:
        self.store.give_back(cost)

    def pause(self, seconds: float, admission: Admission | None = None) -> None:
        self.store.pause(seconds, None if admission is None else admission.episode)
        self._heard = True

    def observe(self, limits: ProviderLimits) -> None:
        if self._heard and not (limits.limits or limits.remaining):
            return  # nothing to learn, and slow start is over: spare the store a call
        self.store.learn(limits)
        self._heard = True

    def snapshot(self) -> LimiterSnapshot:
        return self.store.snapshot()

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> QuotaLimiter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        snap = self.snapshot()
        buckets = ", ".join(
            f"{name}={snap.levels[name]:.6g}/{snap.capacities[name]:.6g}"
            f" at {snap.rates_per_minute[name]:.6g}/min"
            for name in snap.levels
        )
        paused = f", paused_for={snap.paused_for:.3f}s" if snap.paused_for else ""
        return (
            f"{type(self).__name__}({buckets or 'unlimited'}, waiters={snap.waiters},"
            f" pauses={snap.pauses}{paused}, admitted={snap.admitted})"
        )


class NewStoreLimiter(QuotaLimiter):
    """A ``QuotaLimiter`` over a new store of ``store_type``: the one constructor both kinds share.

    ``clock`` is the store's and the limiter's, ``sleep`` the limiter's; every other keyword
    (``probe_seconds``, ...) goes to the store.
    """

    store_type: ClassVar[Callable[..., QuotaStore]]

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        **store: Any,
    ) -> None:
        super().__init__(self.store_type(limits, clock=clock, **store), clock=clock, sleep=sleep)


def _left(max_delay: float | None, waited: float) -> float | None:
    return None if max_delay is None else max_delay - waited
