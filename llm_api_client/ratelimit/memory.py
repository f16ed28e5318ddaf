"""``InProcessRateLimiter``: one quota for the threads of one process.

Use it when a batch runs in the calling process (no worker processes), and in tests. Its state is
a plain list behind a ``threading.Lock``; the protocol is ``core``'s, the arithmetic ``bucket``'s.

Example::

    limiter = InProcessRateLimiter(Limits(requests_per_minute=600, tokens_per_minute=100_000))
    limiter.acquire(Cost(input_tokens=120, output_tokens=400))  # sleeps until admitted
"""

from __future__ import annotations

import threading
import time

from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import Clock, Limits, Sleep
from llm_api_client.ratelimit.core import LockedStateRateLimiter

__all__ = ["InProcessRateLimiter"]


class InProcessRateLimiter(LockedStateRateLimiter):
    """A token-bucket limiter shared by the threads of one process.

    ``clock`` and ``sleep`` are injected (tests pass a fake clock whose sleep moves it); a
    ``sleep`` that raises (to cancel a batch) ends the acquisition and gives its reservation back.
    ``probe_seconds`` > 0 turns on slow start: the first request goes alone and the others wait
    for the provider's first answer (``observe`` or ``pause``), at most that long.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        probe_seconds: float = 0.0,
    ) -> None:
        super().__init__(limits, clock, sleep)
        self._lock = threading.Lock()
        self._state = bucket.initial_state(limits, clock(), probe_seconds)
