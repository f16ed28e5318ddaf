"""APIUsageTracker: the 0.1.8 API, fed by usage records, exact under threads and merges."""

from __future__ import annotations

import datetime
import itertools
import json
import math
import pickle
import threading
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api_client.records import UsageRecord
from llm_api_client.tracker import APIUsageTracker


def rec(
    index: int = 0,
    model: str = "openai/gpt-4o-mini",
    prompt: int = 10,
    completion: int = 5,
    *,
    error: str | None = None,
    time: float = 0.5,
    finished_at: float = 1000.0,
    **extra: int | float,
) -> UsageRecord:
    return UsageRecord(
        index=index,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        response_time=time,
        error=error,
        finished_at=finished_at,
        attempts=int(extra.pop("attempts", 1)),
        **extra,  # type: ignore[arg-type]
    )


def test_empty_tracker_matches_the_seed() -> None:
    tracker = APIUsageTracker()
    d = tracker.details
    assert d["total_cost"] == 0
    assert d["total_prompt_tokens"] == 0
    assert d["total_completion_tokens"] == 0
    assert d["num_api_calls"] == 0
    assert d["mean_response_time"] is None
    assert d["response_times"] == {}
    assert tracker.response_time_at_percentile(50) is None
    assert tracker.achieved_rpm is None
    assert "Total cost of API calls: $0.00" in str(tracker)


def test_totals_and_seed_properties() -> None:
    tracker = APIUsageTracker()
    tracker.add(rec(0, prompt=5, completion=7, cost=0.123, time=0.4, finished_at=100.0))
    tracker.add(rec(1, prompt=11, completion=13, cost=0.877, time=1.0, finished_at=101.0))
    assert tracker.total_cost == pytest.approx(1.0)
    assert tracker.total_prompt_tokens == 16
    assert tracker.total_completion_tokens == 20
    assert tracker.num_api_calls == 2
    assert tracker.mean_response_time == pytest.approx(0.7)
    assert tracker.response_time_at_percentile(50) == pytest.approx(0.7)
    assert tracker.details["response_times"]["50percentile"] == "0.700"
    text = tracker.get_stats_str()
    for line in (
        "Total cost of API calls: $1.00",
        "Total prompt tokens: 16",
        "Total completion tokens: 20",
        "Number of responses: 2",
        "Mean response time: 0.70 seconds",
    ):
        assert line in text


def test_failures_attempts_429s_cached_and_reasoning_are_counted() -> None:
    tracker = APIUsageTracker()
    tracker.add_many(
        [
            rec(0, attempts=3, rate_limited=2, cached_tokens=4, reasoning_tokens=2),
            rec(1, prompt=0, completion=0, error="BadRequestError", time=0.1),
            rec(2, prompt=0, completion=0, error="RateLimitDelayExceeded", attempts=0),
            rec(3, prompt=0, completion=0, error="BadRequestError", time=0.1),
        ]
    )
    assert tracker.num_requests == 4
    assert tracker.num_api_calls == 1  # successful responses, as 0.1.8 counted them
    assert tracker.num_errors == 3
    assert tracker.total_attempts == 5
    assert tracker.num_rate_limited == 2
    assert tracker.total_cached_tokens == 4
    assert tracker.total_reasoning_tokens == 2
    assert tracker.errors_by_type == {"BadRequestError": 2, "RateLimitDelayExceeded": 1}
    assert tracker.mean_response_time == 0.5  # failures do not count in response times
    assert "errors: 3" in str(tracker)


def test_per_model_breakdown() -> None:
    tracker = APIUsageTracker()
    tracker.add_many(
        [rec(0, "a", 1, 2, cost=0.5), rec(1, "b", 10, 20, cost=1.0), rec(2, "a", 100, 200)]
    )
    by_model = tracker.by_model
    assert by_model["a"].requests == 2
    assert by_model["a"].prompt_tokens == 101
    assert by_model["b"].completion_tokens == 20
    assert tracker.details["by_model"]["a"]["cost"] == 0.5


@pytest.mark.parametrize(
    ("finished", "rpm"),
    [
        ([100.0], None),
        ([100.0, 100.0], None),  # no span to measure over
        ([100.0, 160.0], 1.0),
        ([30.0, 60.0, 90.0], 2.0),
        ([5.0, 5.5, 6.0, 6.5, 7.0], 120.0),
    ],
)
def test_achieved_rates(finished: list[float], rpm: float | None) -> None:
    tracker = APIUsageTracker()
    tracker.add_many(rec(i, prompt=10, completion=5, finished_at=t) for i, t in enumerate(finished))
    if rpm is None:
        assert tracker.achieved_rpm is None and tracker.achieved_tpm is None
    else:
        assert tracker.achieved_rpm == pytest.approx(rpm)
        assert tracker.achieved_tpm == pytest.approx(rpm * 15)


@pytest.mark.parametrize("p", [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100])
def test_percentiles_match_numpy_linear(p: float) -> None:
    np = pytest.importorskip("numpy")
    times = [0.05 * (i % 17) + 0.001 * i for i in range(101)]
    tracker = APIUsageTracker()
    tracker.add_many(rec(i, time=t) for i, t in enumerate(times))
    assert tracker.response_time_at_percentile(p) == pytest.approx(float(np.percentile(times, p)))


def test_percentile_out_of_range() -> None:
    with pytest.raises(ValueError):
        APIUsageTracker().response_time_at_percentile(101)


def test_export_is_json_and_repr_is_short() -> None:
    tracker = APIUsageTracker()
    tracker.add_many(
        [rec(0, finished_at=10.0), rec(1, error="APIConnectionError", finished_at=12.0)]
    )
    data = json.loads(tracker.to_json())
    assert data["num_requests"] == 2
    assert data["first_finished_at"] == 10.0
    assert data["last_finished_at"] == 12.0
    json.dumps(tracker.details)
    assert len(repr(tracker)) < 120
    assert "requests=2" in repr(tracker)


def test_reset_forgets_everything() -> None:
    tracker = APIUsageTracker()
    tracker.add(rec())
    tracker.reset()
    assert tracker.num_requests == 0
    assert tracker.details["response_times"] == {}


def test_no_del_side_effects() -> None:
    assert "__del__" not in vars(APIUsageTracker)


def test_add_and_add_many_accumulate_by_model_and_error() -> None:
    a = APIUsageTracker()
    a.add(rec(0, "x", 1, 2, cost=0.25, finished_at=10.0))
    a.add_many([rec(1, "x", 3, 4, finished_at=5.0), rec(2, "y", 5, 6, error="E", finished_at=20.0)])
    assert a.num_requests == 3
    assert a.total_prompt_tokens == 9
    assert a.by_model["x"].requests == 2
    assert a.errors_by_type == {"E": 1}
    assert a.to_dict()["first_finished_at"] == 5.0


records = st.builds(
    UsageRecord,
    index=st.integers(0, 10_000),
    model=st.sampled_from(["a", "b", "openai/gpt-4o-mini"]),
    prompt_tokens=st.integers(0, 100_000),
    completion_tokens=st.integers(0, 10_000),
    cached_tokens=st.integers(0, 1000),
    reasoning_tokens=st.integers(0, 1000),
    cost=st.floats(0, 10, allow_nan=False),
    response_time=st.floats(0, 100, allow_nan=False),
    attempts=st.integers(0, 5),
    rate_limited=st.integers(0, 5),
    error=st.none() | st.sampled_from(["RateLimitError", "BadRequestError"]),
    finished_at=st.floats(1, 1e6, allow_nan=False),
)


@settings(max_examples=60, deadline=None)
@given(
    recs=st.lists(records, max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    data=st.data(),
)
def test_totals_equal_the_sum_of_records_in_any_order_and_partition(
    recs: list[UsageRecord], cuts: list[int], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(recs))
    bounds = sorted({0, len(shuffled), *(c for c in cuts if c <= len(shuffled))})
    total = APIUsageTracker()
    for lo, hi in itertools.pairwise(bounds):
        total.add_many(shuffled[lo:hi])
    ok = [r for r in recs if r.error is None]
    assert total.num_requests == len(recs)
    assert total.num_api_calls == len(ok)
    assert total.total_prompt_tokens == sum(r.prompt_tokens for r in recs)
    assert total.total_completion_tokens == sum(r.completion_tokens for r in recs)
    assert total.total_cached_tokens == sum(r.cached_tokens for r in recs)
    assert total.total_reasoning_tokens == sum(r.reasoning_tokens for r in recs)
    assert total.total_attempts == sum(r.attempts for r in recs)
    assert total.num_rate_limited == sum(r.rate_limited for r in recs)
    assert total.total_cost == pytest.approx(math.fsum(r.cost for r in recs), rel=1e-9, abs=1e-9)
    assert sum(m.requests for m in total.by_model.values()) == len(recs)
    if ok:
        assert total.mean_response_time == pytest.approx(
            math.fsum(r.response_time for r in ok) / len(ok)
        )
        assert total.response_time_at_percentile(100) == max(r.response_time for r in ok)


def test_exact_totals_under_thread_contention() -> None:
    tracker = APIUsageTracker()
    threads, per_thread = 16, 2000
    barrier = threading.Barrier(threads)

    def feed(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            tracker.add(rec(i, f"m{t % 3}", 1, 2, cost=0.5, rate_limited=i % 2))
            if i % 100 == 0:
                assert tracker.details  # readers contend too
        tracker.add_many([rec(-1, "batch", 3, 4)] * 10)

    workers = [threading.Thread(target=feed, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    n = threads * per_thread
    assert tracker.num_requests == n + threads * 10
    assert tracker.total_prompt_tokens == n + threads * 30
    assert tracker.total_completion_tokens == 2 * n + threads * 40
    assert tracker.num_rate_limited == n // 2
    assert tracker.total_cost == n * 0.5
    assert len(tracker._response_times) == n + threads * 10


# The 0.1.8 litellm callback, for code that registered it by hand.


def test_track_cost_callback_counts_a_response() -> None:
    tracker = APIUsageTracker()
    start = datetime.datetime(2025, 1, 1, 12, 0, 0)
    usage = {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 2},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    response = SimpleNamespace(usage=usage, model="m")
    tracker.track_cost_callback(
        {"response_cost": 0.123}, response, start, start + datetime.timedelta(seconds=0.4)
    )
    assert tracker.total_cost == pytest.approx(0.123)
    assert tracker.total_prompt_tokens == 5
    assert (tracker.total_cached_tokens, tracker.total_reasoning_tokens) == (2, 3)
    assert tracker.mean_response_time == pytest.approx(0.4)


def test_track_cost_callback_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    tracker = APIUsageTracker()
    tracker.track_cost_callback({}, object(), None, None)  # type: ignore[arg-type]
    assert tracker.num_requests == 0
    assert "Failed to track cost" in caplog.text


def test_set_up_litellm_cost_tracking_appends_and_warns() -> None:
    from llm_api_client import _offline

    litellm = _offline.litellm()
    saved = list(litellm.success_callback)
    try:
        tracker = APIUsageTracker()
        with pytest.warns(DeprecationWarning):
            tracker.set_up_litellm_cost_tracking()
        assert tracker.track_cost_callback in litellm.success_callback
        assert litellm.success_callback[: len(saved)] == saved  # the user's callbacks are kept
    finally:
        litellm.success_callback[:] = saved


def test_records_pickle() -> None:
    r = rec(cached_tokens=3)
    assert pickle.loads(pickle.dumps(r)) == r
