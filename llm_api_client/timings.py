"""Timings of streamed calls, per model: time to first token, per output token, tokens per second.

The tracker keeps one ``StreamTimings`` for all streamed calls and one per model, fed by the
usage records of streamed calls (``UsageRecord.time_to_first_token`` and the two after it).
Each measure is a ``Samples``: every value (8 bytes each, an ``array('d')``), so the mean and
the percentiles are exact, with numpy's default (linear) interpolation, as for response times::

    timings = tracker.stream_timings()                 # all models; or stream_timings(model)
    timings.time_to_first_token.mean                   # seconds
    timings.output_tokens_per_second.percentile(50)    # tokens/s after the first token
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from typing import Any

from llm_api_client.records import UsageRecord

__all__ = ["MEASURES", "Samples", "StreamTimings", "percentile"]

# The record fields a streamed call fills, in the order reports show them.
MEASURES = ("time_to_first_token", "time_per_output_token", "output_tokens_per_second")
# The percentiles ``StreamTimings.to_dict`` reports (the tracker's response-time ones).
REPORTED_PERCENTILES = (50, 75, 90, 95, 99, 99.9)


def percentile(ordered: list[float], p: float) -> float | None:
    """numpy's default (linear) percentile ``p`` (0-100) of an already sorted list."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * p / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Samples:
    """The values of one measure: count, exact mean and percentiles. Not thread-safe."""

    __slots__ = ("_sorted", "_values")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._values = array("d", values)
        self._sorted: list[float] | None = None

    def add(self, value: float) -> None:
        self._values.append(value)
        self._sorted = None

    def extend(self, other: Samples) -> None:
        self._values.extend(other._values)
        self._sorted = None

    def __len__(self) -> int:
        return len(self._values)

    @property
    def mean(self) -> float | None:
        """The mean; ``None`` before any value."""
        return math.fsum(self._values) / len(self._values) if self._values else None

    def percentile(self, p: float) -> float | None:
        """The value at percentile ``p`` (0-100); ``None`` before any value."""
        if not 0 <= p <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {p}")
        if self._sorted is None:
            self._sorted = sorted(self._values)
        return percentile(self._sorted, p)

    def to_dict(self) -> dict[str, float | None]:
        out = {"mean": self.mean}
        for p in REPORTED_PERCENTILES:
            out[f"{p}percentile"] = self.percentile(p)
        return out

    def __repr__(self) -> str:
        return f"Samples(count={len(self)}, mean={self.mean})"


class StreamTimings:
    """The three measures of streamed calls; a call with a single output token has no rate."""

    __slots__ = ("calls", *MEASURES)

    def __init__(self) -> None:
        self.calls = 0
        self.time_to_first_token = Samples()
        self.time_per_output_token = Samples()
        self.output_tokens_per_second = Samples()

    def add(self, record: UsageRecord) -> None:
        """Count ``record`` if it is a streamed call's (its time to first token is known)."""
        if record.time_to_first_token is None:
            return
        self.calls += 1
        for name in MEASURES:
            value = getattr(record, name)
            if value is not None:
                self.measure(name).add(value)

    def measure(self, name: str) -> Samples:
        """One of ``MEASURES`` by name."""
        found: Samples = getattr(self, name)
        return found

    def merge(self, other: StreamTimings) -> None:
        self.calls += other.calls
        for name in MEASURES:
            self.measure(name).extend(other.measure(name))

    def copy(self) -> StreamTimings:
        twin = StreamTimings()
        twin.merge(self)
        return twin

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, **{name: self.measure(name).to_dict() for name in MEASURES}}

    def __repr__(self) -> str:
        ttft, rate = self.time_to_first_token.mean, self.output_tokens_per_second.mean
        return f"StreamTimings(calls={self.calls}, ttft_mean={ttft}, tokens_per_second={rate})"
