"""How many worker processes a batch gets, and how many requests it keeps in flight."""

from __future__ import annotations

import math
import os
from typing import Protocol

from llm_api_client._constants import (
    ASSUMED_LATENCY_SECONDS,
    CALLS_PER_SECOND_PER_PROCESS,
    MIN_REQUESTS_FOR_PROCESSES,
    MIN_THREADS,
)
from llm_api_client.ratelimit.base import Cost
from llm_api_client.records import UsageRecord

# In flight = rate x latency x HEADROOM: latencies spread, and a thread idle is cheap.
HEADROOM = 2.0
# The weight of each new observation in the running means (about the last 20 count).
WEIGHT = 0.05


class Window(Protocol):
    """How many requests a batch keeps in flight; told of each dispatch and each outcome."""

    @property
    def size(self) -> int: ...

    def dispatched(self, cost: Cost) -> None: ...

    def finished(self, record: UsageRecord) -> None: ...


class FixedWindow:
    """The user's ``max_workers``: that many in flight, whatever the latency."""

    def __init__(self, size: int) -> None:
        self.size = size

    def dispatched(self, cost: Cost) -> None:
        pass

    def finished(self, record: UsageRecord) -> None:
        pass

    def __repr__(self) -> str:
        return f"<FixedWindow {self.size}>"


class LatencyWindow:
    """Enough in flight to reach the rate limit at the latency observed so far, within a cap.

    Little's law: requests in flight = rate x latency. The rate is the request limit, or the
    token limit over the mean tokens a request reserves if that is lower; the latency starts at
    ``ASSUMED_LATENCY_SECONDS`` and follows the mean response time (exponentially weighted), so
    a slow model gets more threads and a fast one fewer. ``HEADROOM`` covers the spread of
    latencies. No limit at all gets the cap. ``slack`` is added for results waiting to be
    yielded in order.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        *,
        cap: int,
        slack: int = 0,
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.cap = cap
        self.slack = slack
        self.latency = ASSUMED_LATENCY_SECONDS
        self.tokens_per_request: float | None = None

    @property
    def size(self) -> int:
        rate = self.rate()
        if rate is None:
            return self.cap + self.slack
        wanted = math.ceil(rate * self.latency * HEADROOM)
        return max(MIN_THREADS, min(self.cap, wanted)) + self.slack

    def rate(self) -> float | None:
        """Requests per second the limits allow; None when neither is set."""
        rates = []
        if self.requests_per_minute:
            rates.append(self.requests_per_minute / 60.0)
        if self.tokens_per_minute and self.tokens_per_request:
            rates.append(self.tokens_per_minute / 60.0 / self.tokens_per_request)
        return min(rates) if rates else None

    def dispatched(self, cost: Cost) -> None:
        self.tokens_per_request = _weighted(self.tokens_per_request, float(cost.tokens))

    def finished(self, record: UsageRecord) -> None:
        if record.attempts and record.response_time > 0:
            self.latency = _weighted(self.latency, record.response_time)

    def __repr__(self) -> str:
        return f"<LatencyWindow size={self.size} latency={self.latency:.3f}s>"


def _weighted(mean: float | None, value: float) -> float:
    return value if mean is None else mean + WEIGHT * (value - mean)


def default_processes(
    requests_per_minute: float | None,
    batch_size: int | None,
    per_process: float = CALLS_PER_SECOND_PER_PROCESS,
) -> int:
    """Worker processes for a batch; 0 runs it on threads of the calling process.

    One process sustains about ``per_process`` calls per second (``calls_per_second_per_process``
    of the transport), so a limit above that wants more processes, up to one per core. Small
    batches stay in-process: starting workers costs more than they would save.
    """
    if batch_size is not None and batch_size < MIN_REQUESTS_FOR_PROCESSES:
        return 0
    rate = (requests_per_minute or math.inf) / 60.0
    needed = math.ceil(rate / per_process) if math.isfinite(rate) else math.inf
    if needed <= 1:
        return 0
    return int(min(needed, os.cpu_count() or 1))


def split_threads(total: int, processes: int) -> int:
    """Threads per worker process so that ``processes`` of them hold ``total`` in all."""
    return max(1, math.ceil(total / max(1, processes)))


def calls_per_second_per_process(transport: object) -> float:
    """Calls per second one process plans for on ``transport``: what it states, else litellm's.

    ``HTTPTransport`` states ``LEAN_CALLS_PER_SECOND_PER_PROCESS``; ``AutoTransport`` the same
    while litellm is not customised (then its requests go through litellm).
    """
    return float(getattr(transport, "calls_per_second_per_process", CALLS_PER_SECOND_PER_PROCESS))
