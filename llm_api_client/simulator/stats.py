"""What a provider would have seen: counts the simulator serves at ``GET /stats``.

Every counter restarts on ``POST /reset`` except ``in_flight``, which counts requests still being
handled (resetting it would make it negative when they finish). The totals cover every endpoint;
``endpoints`` splits them (``chat``, ``chat_stream``, ``embeddings``), so a test can compare a
client's usage per kind of call.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

# Admissions are also counted over a sliding window of this length, to report the densest second
# wherever it falls, not only within whole seconds since the start.
SLIDING_WINDOW_SECONDS = 1.0

# Endpoints as /stats names them; a streamed chat completion counts apart from a plain one.
CHAT = "chat"
CHAT_STREAM = "chat_stream"
EMBEDDINGS = "embeddings"


@dataclass(slots=True)
class EndpointCounts:
    """One endpoint's share of the totals (plain attributes: updated on every request)."""

    received: int = 0
    admitted: int = 0
    answered: int = 0
    rejected_429: int = 0
    errors: int = 0
    tokens_charged: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Stats:
    """Counters updated by the request handler; ``snapshot`` returns them as plain JSON data."""

    def __init__(self, now: float) -> None:
        self.in_flight = 0
        self.reset(now)

    def reset(self, now: float) -> None:
        self.started = now
        self.received = 0
        self.admitted = 0
        self.answered = 0
        self.rejected_429 = 0
        self.rejected_by_limit: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.tokens_charged = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.peak_in_flight = self.in_flight
        self.admissions_per_second: list[int] = []
        self.max_admissions_per_second = 0
        self._recent: deque[float] = deque()
        self.received_by_key: Counter[str] = Counter()
        self.endpoints: dict[str, EndpointCounts] = {}

    def _of(self, endpoint: str) -> EndpointCounts:
        counts = self.endpoints.get(endpoint)
        if counts is None:
            counts = self.endpoints[endpoint] = EndpointCounts()
        return counts

    def on_received(self, key: str, endpoint: str) -> None:
        self.received += 1
        self.received_by_key[key] += 1
        self._of(endpoint).received += 1

    def enter(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def leave(self) -> None:
        self.in_flight -= 1

    def on_admitted(self, now: float, tokens: int, endpoint: str) -> None:
        self.admitted += 1
        self.tokens_charged += tokens
        counts = self._of(endpoint)
        counts.admitted += 1
        counts.tokens_charged += tokens
        self._count_in_second(now)
        self._count_in_sliding_window(now)

    def _count_in_second(self, now: float) -> None:
        second = max(0, int(now - self.started))
        per_second = self.admissions_per_second
        if second >= len(per_second):
            per_second.extend([0] * (second + 1 - len(per_second)))
        per_second[second] += 1

    def _count_in_sliding_window(self, now: float) -> None:
        recent = self._recent
        recent.append(now)
        horizon = now - SLIDING_WINDOW_SECONDS
        while recent[0] <= horizon:
            recent.popleft()
        if len(recent) > self.max_admissions_per_second:
            self.max_admissions_per_second = len(recent)

    def on_rate_limited(self, limit: str, endpoint: str) -> None:
        self.rejected_429 += 1
        self.rejected_by_limit[limit] += 1
        self._of(endpoint).rejected_429 += 1

    def on_error(self, kind: str, endpoint: str) -> None:
        self.errors[kind] += 1
        self._of(endpoint).errors += 1

    def on_answered(self, prompt_tokens: int, completion_tokens: int, endpoint: str) -> None:
        self.answered += 1
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        counts = self._of(endpoint)
        counts.answered += 1
        counts.prompt_tokens += prompt_tokens
        counts.completion_tokens += completion_tokens

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "elapsed_seconds": now - self.started,
            "received": self.received,
            "admitted": self.admitted,
            "answered": self.answered,
            "rejected_429": self.rejected_429,
            "rejected_by_limit": dict(self.rejected_by_limit),
            "errors": dict(self.errors),
            "tokens_charged": self.tokens_charged,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "admissions_per_second": list(self.admissions_per_second),
            "max_admissions_per_second": self.max_admissions_per_second,
            "received_by_key": dict(self.received_by_key),
            "endpoints": {name: asdict(counts) for name, counts in self.endpoints.items()},
        }

    def __repr__(self) -> str:
        return (
            f"Stats(received={self.received}, admitted={self.admitted}, "
            f"rejected_429={self.rejected_429}, in_flight={self.in_flight})"
        )
