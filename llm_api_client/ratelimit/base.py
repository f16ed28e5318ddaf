"""The rate limiter's vocabulary and the interface the engine depends on.

A limiter holds one continuously refilled bucket per configured limit (requests, tokens, and
optionally input and output tokens per minute). ``acquire`` takes a request's whole cost from
every bucket at once or from none, waiting its turn; ``refund`` gives back what a provider that
settles on actual usage did not charge; ``pause`` (a 429) and ``observe`` (the limits a provider
stated, already parsed) let the provider steer every thread of every process.

``RateLimiter`` is that interface. Its one implementation is ``limiter.QuotaLimiter``, which waits
and sleeps; the quota itself lives in a ``store.QuotaStore`` (``memory.LocalStore`` for the threads
of one process, ``shared.SharedMemoryStore`` for the processes of one host).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

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
class ProviderLimits:
    """What a provider's answer said about its quota, by bucket name.

    Bucket names are the limiter's: ``requests``, ``tokens``, ``input_tokens``, ``output_tokens``.
    ``limits`` are per minute; ``remaining`` is what is left of each right now. The caller reads
    them from wherever the provider put them (``headers.parse_rate_limit_headers`` for HTTP).
    """

    limits: Mapping[str, float] = field(default_factory=dict)
    remaining: Mapping[str, float] = field(default_factory=dict)


class Admission(NamedTuple):
    """One admitted request: seconds it waited, and the 429 episode it is sent in.

    Give it to ``pause`` when the request draws a 429: only a 429 for a request sent after the
    latest episode began is news (the others were already on their way when it began).
    ``episode`` is None when the limiter does not count episodes.
    """

    waited: float
    episode: int | None


class Turn(NamedTuple):
    """A store's answer to ``reserve``, in durations only (its clock never leaves it).

    ``wait``: seconds until the cost is admitted, 0 for now. ``held``: slow start holds the
    caller, nothing was taken, ask again within ``wait`` seconds. ``shift``: how far pauses had
    pushed the schedule back (a waiter claims its turn with it). ``episode``: 429 episodes so far.
    """

    wait: float
    shift: float
    episode: int
    held: bool = False


@dataclass(frozen=True)
class LimiterSnapshot:
    """A point-in-time view for progress bars, the tracker and ``repr``."""

    levels: Mapping[str, float]  # bucket name -> tokens available now (negative: reserved ahead)
    rates_per_minute: Mapping[str, float]  # bucket name -> current (possibly learned) limit
    waiters: int
    paused_for: float  # seconds until admissions resume; 0 when not paused
    pauses: int  # how many times a 429 paused dispatch
    learned: Mapping[str, float] = field(default_factory=dict)  # limits the provider lowered
    capacities: Mapping[str, float] = field(default_factory=dict)  # bucket name -> burst size
    admitted: int = 0  # acquisitions admitted so far
    episodes: int = 0  # 429 episodes: 429s of requests sent after the previous one began


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

    def admit(self, cost: Cost, *, max_delay: float | None = None) -> Admission:
        """``acquire``, returning the ``Admission`` to give ``pause`` if the request draws a 429."""
        return Admission(self.acquire(cost, max_delay=max_delay), None)

    @abc.abstractmethod
    def refund(self, cost: Cost) -> None:
        """Give back tokens the provider did not charge (settlement on actual usage)."""

    @abc.abstractmethod
    def pause(self, seconds: float, admission: Admission | None = None) -> None:
        """Stop all admissions for ``seconds`` (a 429 told us to wait); extends, never shortens.

        ``admission`` is the rejected request's: 429s of requests sent after the previous 429,
        soon after its pause, lower the pace (the provider may say no limit to learn from).
        """

    @abc.abstractmethod
    def observe(self, limits: ProviderLimits) -> None:
        """Learn the limits and remaining levels a provider stated; any answer ends slow start."""

    @abc.abstractmethod
    def snapshot(self) -> LimiterSnapshot:
        """The limiter's current state."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (shared memory); the default has none."""

    def unlink(self) -> None:  # noqa: B027 - optional hook
        """Remove shared state's name for good (its owner is gone); the default has none."""

    def for_model(self, model: str | None) -> RateLimiter:
        """The limiter a request for ``model`` goes through (``per_model``); by default this."""
        return self
