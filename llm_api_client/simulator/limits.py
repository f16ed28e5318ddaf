"""Per-minute limits enforced over short windows, the way OpenAI enforces them.

A limit of ``L`` per minute is a token bucket that holds ``L / 60 * window_seconds``, refills
continuously at ``L / 60`` per second and starts full: ``rpm=600`` admits 10 requests in the first
second, never 600, and ``rpm=60`` admits one per second. A request takes its whole cost from every
bucket at admission or from none.

A cost larger than a bucket's capacity (but within the per-minute limit) is admitted when the
bucket is full and drives it negative, so large requests still pass at the right average rate;
a cost larger than the per-minute limit itself can never pass ("Request too large").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

# Levels are floats refilled by elapsed time: without a hair of slack, a client that waits exactly
# the advertised retry-after can find the bucket 1e-13 short and draw a 429 it did not deserve.
_SLACK = 1e-6

REQUESTS = "requests"
TOKENS = "tokens"


class TokenBucket:
    """One continuously refilled bucket; ``level`` may go negative after an oversized take."""

    __slots__ = ("capacity", "level", "per_minute", "rate", "updated")

    def __init__(self, per_minute: float, window_seconds: float, now: float) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.capacity = self.rate * window_seconds
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def needed(self, amount: float) -> float:
        """The level at which ``amount`` is admitted: itself, or a full bucket if it is larger."""
        return min(amount, self.capacity)

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` would be admitted (0 when it would be now)."""
        return max(0.0, (self.needed(amount) - self.level) / self.rate)

    def reset_in(self) -> float:
        """Seconds until the bucket is full again (OpenAI's ``x-ratelimit-reset-*``)."""
        return max(0.0, (self.capacity - self.level) / self.rate)

    def refill_to_full(self, now: float) -> None:
        self.level = self.capacity
        self.updated = now

    def __repr__(self) -> str:
        return f"TokenBucket(level={self.level:.2f}/{self.capacity:.2f}, rate={self.rate:.2f}/s)"


@dataclass(frozen=True)
class Admission:
    """The verdict on one request: admitted, or which limit refused it and for how long."""

    admitted: bool
    limited_by: str = ""  # REQUESTS or TOKENS when refused
    retry_after: float = 0.0  # seconds until the refused cost would be admitted
    too_large: bool = False  # the cost exceeds the per-minute limit: it never passes
    used: int = 0  # what the refusing bucket has spent of its window (for the message)


ADMITTED = Admission(admitted=True)
_HEADER_NAMES = {
    name: tuple(f"x-ratelimit-{kind}-{name}" for kind in ("limit", "remaining", "reset"))
    for name in (REQUESTS, TOKENS)
}


class WindowLimiter:
    """Requests-per-minute and tokens-per-minute buckets; ``None`` or 0 means unlimited."""

    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        window_seconds: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive, got {window_seconds}")
        self._clock = clock
        now = clock()
        self.buckets: dict[str, TokenBucket] = {}
        for name, limit in ((REQUESTS, rpm), (TOKENS, tpm)):
            if limit:
                self.buckets[name] = TokenBucket(limit, window_seconds, now)

    def admit(self, tokens: int) -> Admission:
        """Take 1 request and ``tokens`` tokens from every bucket, or nothing and say why."""
        if not self.buckets:
            return ADMITTED
        now = self._clock()
        costs = {REQUESTS: 1, TOKENS: tokens}
        refused: Admission | None = None
        for name, bucket in self.buckets.items():
            bucket.refill(now)
            verdict = self._check(name, bucket, costs[name])
            if verdict is not None and refused is None:
                refused = verdict
        if refused is not None:
            return refused
        for name, bucket in self.buckets.items():
            bucket.level -= costs[name]
        return ADMITTED

    @staticmethod
    def _check(name: str, bucket: TokenBucket, cost: int) -> Admission | None:
        used = max(0, math.ceil(bucket.capacity - bucket.level))
        if cost > bucket.per_minute:
            return Admission(False, name, math.inf, too_large=True, used=used)
        if bucket.level + _SLACK >= bucket.needed(cost):
            return None
        return Admission(False, name, bucket.wait_for(cost), used=used)

    def headers(self) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for the buckets' current levels."""
        out: dict[str, str] = {}
        for name, bucket in self.buckets.items():
            # Built on every answer: the names come from a table rather than f-strings.
            limit, remaining, reset = _HEADER_NAMES[name]
            out[limit] = str(int(bucket.per_minute))
            out[remaining] = str(max(0, math.floor(bucket.level)))
            out[reset] = format_duration(bucket.reset_in())
        return out

    def refill_all(self) -> None:
        now = self._clock()
        for bucket in self.buckets.values():
            bucket.refill_to_full(now)

    def __repr__(self) -> str:
        return f"WindowLimiter({self.buckets!r})"


def format_duration(seconds: float) -> str:
    """Format like Go's ``time.Duration`` (OpenAI's reset headers): "0s", "120ms", "1.5s", "6m0s".

    Rounded to whole milliseconds, which is all a client can use.
    """
    millis = math.ceil(seconds * 1000 - 1e-6) if seconds > 0 else 0
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
