"""The rate limiter's interface, shared by every backend.

A limiter holds one continuously refilled bucket per configured limit (requests, tokens, and
optionally input and output tokens per minute). ``acquire`` takes a request's whole cost from
every bucket at once or from none, waiting its turn; ``refund`` gives back what a provider that
settles on actual usage did not charge; ``pause`` and ``observe`` let what the provider says
(429s, ``x-ratelimit-*`` headers) steer every thread of every process.

Backends: ``memory.InProcessRateLimiter`` (threads of one process) and
``shared.SharedMemoryRateLimiter`` (threads of many processes, state in shared memory owned by
the coordinator). A network backend (several hosts, one quota) would implement the same class.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from llm_api_client._constants import DEFAULT_BURST_SECONDS

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Limits:
    """Per-minute limits; ``None`` means unlimited. ``burst_seconds`` sizes each bucket."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    input_tokens_per_minute: float | None = None
    output_tokens_per_minute: float | None = None
    burst_seconds: float = DEFAULT_BURST_SECONDS


@dataclass(frozen=True)
class Cost:
    """What one request takes from the buckets: 1 request, its prompt and its maximum output."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 1

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class LimiterSnapshot:
    """A point-in-time view for progress bars, the tracker and ``repr``."""

    levels: Mapping[str, float]  # bucket name -> tokens available now (negative: reserved ahead)
    rates_per_minute: Mapping[str, float]  # bucket name -> current (possibly learned) limit
    waiters: int
    paused_until: float  # clock time; 0 when not paused
    pauses: int  # how many times a 429 paused dispatch
    learned: Mapping[str, float] = field(default_factory=dict)  # limits lowered by headers
    capacities: Mapping[str, float] = field(default_factory=dict)  # bucket name -> burst size
    admitted: int = 0  # acquisitions admitted so far


class RateLimiter(abc.ABC):
    """One quota shared by every caller of ``acquire``."""

    limits: Limits

    @abc.abstractmethod
    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        """Block until ``cost`` is admitted by every bucket; return the seconds waited.

        Raises ``RequestTooLargeError`` at once when ``cost`` exceeds a per-minute limit, and
        ``RateLimitDelayExceeded`` (without taking anything) when admission would take longer
        than ``max_delay`` seconds.
        """

    @abc.abstractmethod
    def refund(self, cost: Cost) -> None:
        """Give back tokens the provider did not charge (settlement on actual usage)."""

    @abc.abstractmethod
    def pause(self, seconds: float) -> None:
        """Stop all admissions for ``seconds`` (a 429 told us to wait); extends, never shortens."""

    @abc.abstractmethod
    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from a provider's ``x-ratelimit-*`` headers (limits and remaining levels)."""

    @abc.abstractmethod
    def snapshot(self) -> LimiterSnapshot:
        """The limiter's current state."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (shared memory); the default has none."""


def default_clock() -> float:
    return time.monotonic()
