"""``LocalStore``: the quota of the threads of one process; ``InProcessRateLimiter`` over it.

Use it when a batch runs in the calling process (no worker processes), and in tests. Its state is
a plain list behind a ``threading.Lock``; the operations are ``store.LockedStore``'s, the
arithmetic ``bucket``'s.

Example::

    limiter = InProcessRateLimiter(Limits(requests_per_minute=600, tokens_per_minute=100_000))
    limiter.acquire(Cost(input_tokens=120, output_tokens=400))  # sleeps until admitted
"""

from __future__ import annotations

import threading
import time

from llm_api_client.ratelimit import bucket
from llm_api_client.ratelimit.base import Clock, Limits
from llm_api_client.ratelimit.limiter import NewStoreLimiter
from llm_api_client.ratelimit.store import LockedStore

__all__ = ["InProcessRateLimiter", "LocalStore"]


class LocalStore(LockedStore):
    """A quota in this process's memory, for its threads.

    ``clock`` is the store's time; ``probe_seconds`` > 0 turns on slow start: the first request
    goes alone and the others wait for the provider's first answer (``learn`` or ``pause``), at
    most that long.
    """

    def __init__(
        self, limits: Limits, *, clock: Clock = time.monotonic, probe_seconds: float = 0.0
    ) -> None:
        super().__init__(limits, clock)
        self._lock = threading.Lock()
        self._state = bucket.initial_state(limits, clock(), probe_seconds)


class InProcessRateLimiter(NewStoreLimiter):
    """The rate limiter over a new ``LocalStore``: one quota for the threads of one process.

    ``clock`` is both the store's and the limiter's; ``sleep`` as for ``QuotaLimiter``;
    ``probe_seconds`` as for ``LocalStore``.
    """

    store_type = LocalStore
