"""Usage and cost of a batch: ``APIUsageTracker``, fed by the workers' usage records.

The public API of llm-api-client 0.1.8's tracker is kept, names and meaning: ``total_cost``,
``total_prompt_tokens``, ``total_completion_tokens``, ``num_api_calls`` (successful responses),
``mean_response_time`` and ``response_time_at_percentile(p)`` (seconds, over successful calls,
``None`` before any), ``details``, ``get_stats_str()`` / ``str()``, and the litellm callback
``track_cost_callback``. It no longer installs itself into litellm's global callbacks: the
engine calls ``add(record)`` in the parent for each finished request.

    tracker = APIUsageTracker()
    tracker.add(outcome.record)
    print(tracker)                  # the summary
    tracker.to_json()               # everything, per model too

Streamed calls (``stream=True``) add their time to first token, time per output token and output
tokens per second, overall and per model: ``stream_timings(model=None)`` (``timings``).

Memory is constant per record except one float (8 bytes) per response time, kept in an
``array('d')`` for exact percentiles. One lock guards all state; ``add_many`` takes it once.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import threading
import warnings
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from llm_api_client.providers.answers import Usage
from llm_api_client.records import UsageRecord
from llm_api_client.timings import StreamTimings
from llm_api_client.timings import percentile as _percentile

__all__ = ["APIUsageTracker", "ModelUsage"]

logger = logging.getLogger(__name__)

# The seed's details["response_times"] percentiles.
DETAIL_PERCENTILES = (50, 75, 90, 95, 99, 99.9)


class ModelUsage:
    """Running totals for one model (or for everything). Mutated only under the tracker's lock."""

    __slots__ = (
        "attempts",
        "cache_hits",
        "cache_saved_cost",
        "cached_tokens",
        "completion_tokens",
        "cost",
        "errors",
        "prompt_tokens",
        "rate_limited",
        "reasoning_tokens",
        "requests",
        "responses",
        "unpriced",
    )

    def __init__(self) -> None:
        self.requests = 0  # finished requests, answered or not
        self.responses = 0  # of those, answered successfully (the seed's num_api_calls)
        self.errors = 0
        self.attempts = 0  # calls sent to the provider, retries included
        self.rate_limited = 0  # attempts answered 429
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cached_tokens = 0
        self.reasoning_tokens = 0
        self.cost = 0.0
        self.cache_hits = 0  # answered from the response cache: not sent, not paid
        self.cache_saved_cost = 0.0  # what those answers cost when they were paid for
        self.unpriced = 0  # answered by a model without a price: their cost is unknown, not 0

    def add(self, record: UsageRecord) -> None:
        self.requests += 1
        if record.error is None:
            self.responses += 1
        else:
            self.errors += 1
        if record.cache_hit:  # nothing sent, nothing spent
            self.cache_hits += 1
            self.cache_saved_cost += record.cost
        else:
            self.add_calls(record)

    def add_calls(self, record: UsageRecord) -> None:
        self.unpriced += record.unpriced
        self.attempts += record.attempts
        self.rate_limited += record.rate_limited
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cached_tokens += record.cached_tokens
        self.reasoning_tokens += record.reasoning_tokens
        self.cost += record.cost

    def merge(self, other: ModelUsage) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def copy(self) -> ModelUsage:
        twin = ModelUsage()
        twin.merge(self)
        return twin

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}

    def __repr__(self) -> str:
        return f"ModelUsage(requests={self.requests}, cost={self.cost:.6f})"


class APIUsageTracker:
    """Accumulates usage records: tokens, cost, attempts, errors, response times. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_state()

    def _reset_state(self) -> None:
        self._totals = ModelUsage()
        self._by_model: dict[str, ModelUsage] = {}
        self._errors: Counter[str] = Counter()
        self._response_times = array("d")  # successful calls only, as the seed measured
        self._sorted_times: list[float] | None = None  # cache for percentiles
        self._first_finished = math.inf
        self._last_finished = -math.inf
        self._streams = StreamTimings()  # streamed calls: time to first token, tokens/s
        self._streams_by_model: dict[str, StreamTimings] = {}

    # Feeding

    def add(self, record: UsageRecord) -> None:
        """Count one finished request."""
        with self._lock:
            self._add(record)

    def add_calls(self, record: UsageRecord) -> None:
        """Count the calls of a request its batch gave up on: attempts, tokens and cost only.

        A call already on the wire when a batch is abandoned (timeout, ``break``, Ctrl-C) still
        reaches the provider and is paid for; the request itself is not counted again.
        """
        if not record.attempts:
            return  # never sent: nothing was spent
        with self._lock:
            self._totals.add_calls(record)
            self._by_model.setdefault(record.model, ModelUsage()).add_calls(record)

    def add_many(self, records: Iterable[UsageRecord]) -> None:
        """Count several finished requests under one lock acquisition."""
        with self._lock:
            for record in records:
                self._add(record)

    def _add(self, record: UsageRecord) -> None:
        self._totals.add(record)
        usage = self._by_model.get(record.model)
        if usage is None:
            usage = self._by_model[record.model] = ModelUsage()
        usage.add(record)
        if record.error is not None:
            self._errors[record.error] += 1
        elif not record.cache_hit:  # a cache hit made no call: it has no response time
            self._response_times.append(record.response_time)
            self._sorted_times = None
        if record.time_to_first_token is not None:
            self._add_stream(record)
        if record.finished_at:
            self._first_finished = min(self._first_finished, record.finished_at)
            self._last_finished = max(self._last_finished, record.finished_at)

    def _add_stream(self, record: UsageRecord) -> None:
        self._streams.add(record)
        self._streams_by_model.setdefault(record.model, StreamTimings()).add(record)

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._reset_state()

    # The seed's API

    @property
    def total_cost(self) -> float:
        """Total cost in USD (litellm's price map; unpriced models count 0)."""
        return self._totals.cost

    @property
    def total_prompt_tokens(self) -> int:
        """Total prompt tokens across all calls."""
        return self._totals.prompt_tokens

    @property
    def total_completion_tokens(self) -> int:
        """Total completion tokens across all calls."""
        return self._totals.completion_tokens

    @property
    def num_api_calls(self) -> int:
        """Number of successful API responses (as in 0.1.8); see ``total_attempts`` for sends."""
        return self._totals.responses

    @property
    def mean_response_time(self) -> float | None:
        """Mean response time of successful calls, in seconds; ``None`` before any."""
        with self._lock:
            times = self._response_times
            return math.fsum(times) / len(times) if times else None

    def response_time_at_percentile(self, percentile: float) -> float | None:
        """Response time (seconds) at ``percentile`` (0-100), interpolated linearly like numpy."""
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        with self._lock:
            ordered = self._ordered_times()
        return _percentile(ordered, percentile)

    def _ordered_times(self) -> list[float]:
        if self._sorted_times is None:
            self._sorted_times = sorted(self._response_times)
        return self._sorted_times

    @property
    def details(self) -> dict[str, Any]:
        """A JSON-serializable summary: the seed's keys, then the richer ones."""
        with self._lock:
            ordered = self._ordered_times()
            totals, errors = self._totals.copy(), dict(self._errors)
            by_model = {model: usage.to_dict() for model, usage in self._by_model.items()}
            mean = math.fsum(ordered) / len(ordered) if ordered else None
            rpm, tpm = self._rates(totals)
            streaming = self._streaming_details()
        return {
            "total_cost": totals.cost,
            "total_prompt_tokens": totals.prompt_tokens,
            "total_completion_tokens": totals.completion_tokens,
            "num_api_calls": totals.responses,
            "mean_response_time": mean,
            "response_times": {
                f"{p}percentile": f"{t:.3f}"
                for p in DETAIL_PERCENTILES
                if (t := _percentile(ordered, p)) is not None
            },
            "total_cached_tokens": totals.cached_tokens,
            "total_reasoning_tokens": totals.reasoning_tokens,
            "num_requests": totals.requests,
            "num_errors": totals.errors,
            "total_attempts": totals.attempts,
            "num_rate_limited": totals.rate_limited,
            "errors_by_type": errors,
            "achieved_rpm": rpm,
            "achieved_tpm": tpm,
            "by_model": by_model,
            "num_cache_hits": totals.cache_hits,
            "cache_saved_cost": totals.cache_saved_cost,
            "num_unpriced": totals.unpriced,
            "unpriced_models": sorted(m for m, usage in by_model.items() if usage["unpriced"]),
            "price_map": _price_map(),
            **streaming,
        }

    def _streaming_details(self) -> dict[str, Any]:
        """``{"streaming": ...}`` once a streamed call was counted, else nothing (no noise)."""
        if not self._streams.calls:
            return {}
        by_model = {model: t.to_dict() for model, t in self._streams_by_model.items()}
        return {"streaming": {**self._streams.to_dict(), "by_model": by_model}}

    def get_stats_str(self) -> str:
        """A human-readable summary (what ``str(tracker)`` prints)."""
        d = self.details
        lines = [
            f"Total cost of API calls: ${d['total_cost']:.2f}",
            f"Total prompt tokens: {d['total_prompt_tokens']}",
            f"Total completion tokens: {d['total_completion_tokens']}",
            f"Number of responses: {d['num_api_calls']}",
        ]
        if d["mean_response_time"] is not None:
            p99 = d["response_times"].get("99percentile")
            lines.append(f"Mean response time: {d['mean_response_time']:.2f} seconds")
            lines.append(f"Response time at 99th percentile: {p99} seconds")
        if d["num_requests"] != d["num_api_calls"] or d["total_attempts"] > d["num_requests"]:
            errors = ", ".join(f"{k}: {v}" for k, v in sorted(d["errors_by_type"].items()))
            lines.append(
                f"Requests: {d['num_requests']}, attempts: {d['total_attempts']}, "
                f"429s: {d['num_rate_limited']}, errors: {d['num_errors']}"
                + (f" ({errors})" if errors else "")
            )
        if d["num_cache_hits"]:
            lines.append(
                f"Answered from the cache: {d['num_cache_hits']} "
                f"(saved ${d['cache_saved_cost']:.2f})"
            )
        if d["num_unpriced"]:
            lines.append(
                f"Not in the cost: {d['num_unpriced']} responses from models without a price "
                f"({', '.join(d['unpriced_models'])})"
            )
        if "streaming" in d:
            lines.append(_streaming_line(d["streaming"]))
        if d["achieved_rpm"] is not None:
            lines.append(
                f"Achieved: {d['achieved_rpm']:.0f} requests/min, "
                f"{d['achieved_tpm']:.0f} tokens/min"
            )
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.get_stats_str()

    def __repr__(self) -> str:
        t = self._totals
        return (
            f"<APIUsageTracker requests={t.requests} responses={t.responses} errors={t.errors} "
            f"tokens={t.prompt_tokens + t.completion_tokens} cost=${t.cost:.4f}>"
        )

    # The richer API

    @property
    def total_cached_tokens(self) -> int:
        return self._totals.cached_tokens

    @property
    def total_reasoning_tokens(self) -> int:
        return self._totals.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self._totals.prompt_tokens + self._totals.completion_tokens

    @property
    def num_requests(self) -> int:
        """Finished requests, answered or failed."""
        return self._totals.requests

    @property
    def num_errors(self) -> int:
        return self._totals.errors

    @property
    def total_attempts(self) -> int:
        """Calls sent to the provider, retries included."""
        return self._totals.attempts

    @property
    def num_rate_limited(self) -> int:
        """Attempts the provider answered with a 429."""
        return self._totals.rate_limited

    def stream_timings(self, model: str | None = None) -> StreamTimings:
        """Time to first token, per output token and tokens/s of streamed calls (a copy).

        ``model``: only that model's calls (as the requests named it). Example::

            tracker.stream_timings().time_to_first_token.percentile(99)
        """
        with self._lock:
            found = self._streams if model is None else self._streams_by_model.get(model)
            return found.copy() if found is not None else StreamTimings()

    @property
    def num_cache_hits(self) -> int:
        """Requests answered from the response cache (counted in ``num_api_calls``, never sent)."""
        return self._totals.cache_hits

    @property
    def cache_saved_cost(self) -> float:
        """USD the cache hits cost when they were first paid for (not in ``total_cost``)."""
        return self._totals.cache_saved_cost

    @property
    def num_unpriced(self) -> int:
        """Responses from models litellm's price map does not price: ``total_cost`` misses them."""
        return self._totals.unpriced

    @property
    def errors_by_type(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors)

    @property
    def by_model(self) -> dict[str, ModelUsage]:
        """Per-model totals (copies)."""
        with self._lock:
            return {model: usage.copy() for model, usage in self._by_model.items()}

    @property
    def achieved_rpm(self) -> float | None:
        """Requests finished per minute between the first and the last; ``None`` before two."""
        with self._lock:
            return self._rates(self._totals)[0]

    @property
    def achieved_tpm(self) -> float | None:
        """Prompt plus completion tokens per minute over the same span as ``achieved_rpm``."""
        with self._lock:
            return self._rates(self._totals)[1]

    def _rates(self, totals: ModelUsage) -> tuple[float | None, float | None]:
        span = self._last_finished - self._first_finished
        if totals.requests < 2 or not span > 0:
            return None, None
        # n requests finishing over a span cover n - 1 intervals
        rpm = (totals.requests - 1) / span * 60.0
        tokens = totals.prompt_tokens + totals.completion_tokens
        return rpm, tokens / totals.requests * rpm

    def to_dict(self) -> dict[str, Any]:
        """Everything counted, JSON-serializable (``details`` plus the time span)."""
        out = self.details
        with self._lock:
            first, last = self._first_finished, self._last_finished
        out["first_finished_at"] = first if math.isfinite(first) else None
        out["last_finished_at"] = last if math.isfinite(last) else None
        return out

    def to_json(self, **json_kwargs: Any) -> str:
        """``to_dict()`` as JSON; keyword arguments go to ``json.dumps`` (e.g. ``indent=2``)."""
        return json.dumps(self.to_dict(), **json_kwargs)

    # The seed's litellm callback, kept for code that registers it by hand

    def track_cost_callback(
        self,
        kwargs: Mapping[str, Any],
        completion_response: Any,
        start_time: datetime.datetime,
        end_time: datetime.datetime,
    ) -> None:
        """A litellm ``success_callback``: count one response. Never raises (logs instead)."""
        try:
            self.add(_record_from_callback(kwargs, completion_response, start_time, end_time))
        except Exception as exc:  # a callback must not break the caller's request
            logger.error("Failed to track cost of API calls: %s", exc)

    def set_up_litellm_cost_tracking(self) -> None:
        """Deprecated: append ``track_cost_callback`` to ``litellm.success_callback``.

        ``APIClient`` feeds its tracker directly; this exists for code written against 0.1.8.
        Unlike 0.1.8 it appends instead of replacing the user's callbacks.
        """
        warnings.warn(
            "set_up_litellm_cost_tracking is deprecated: APIClient feeds its tracker directly",
            DeprecationWarning,
            stacklevel=2,
        )
        from llm_api_client.providers.logging_switch import add_success_callback

        add_success_callback(self.track_cost_callback)


def _price_map() -> dict[str, str | None]:
    from llm_api_client.providers.pricing import price_map  # litellm: only when asked

    return price_map()


def _streaming_line(streaming: Mapping[str, Any]) -> str:
    ttft = streaming["time_to_first_token"]
    rate = streaming["output_tokens_per_second"]["mean"]
    text = (
        f"Streamed calls: {streaming['calls']}, time to first token: mean "
        f"{ttft['mean']:.3f} s, 99th percentile {ttft['99percentile']:.3f} s"
    )
    return text + (f", {rate:.1f} output tokens/s" if rate is not None else "")


def _record_from_callback(
    kwargs: Mapping[str, Any], response: Any, start: datetime.datetime, end: datetime.datetime
) -> UsageRecord:
    return UsageRecord.of(
        -1,
        str(kwargs.get("model") or getattr(response, "model", "") or ""),
        Usage.of(response),
        cost=float(kwargs.get("response_cost") or 0.0),
        response_time=(end - start).total_seconds(),
        attempts=1,
        finished_at=end.timestamp(),
    )
