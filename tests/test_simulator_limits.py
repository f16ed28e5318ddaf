"""The simulator's windowed limits, faults and stats as units, on a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_api_client.errors import ConfigurationError
from llm_api_client.simulator import SimulatorConfig
from llm_api_client.simulator.chat import BadRequest, parse_chat
from llm_api_client.simulator.faults import DROP, FAIL, HANG, Fault, FaultInjector, parse_marker
from llm_api_client.simulator.limits import REQUESTS, TOKENS, WindowLimiter, format_duration
from llm_api_client.simulator.stats import Stats
from llm_api_client.simulator.tokens import count_prompt, encoding_name


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ---- limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rpm", "window", "burst"),
    [
        (60, 1.0, 1),  # one per second
        (600, 1.0, 10),  # 600 RPM admits 10 in the first second, not 600
        (600, 2.0, 20),
        (6000, 0.5, 50),
        (30, 1.0, 1),  # a bucket smaller than one request still admits one when full
    ],
)
def test_a_burst_gets_one_window_of_requests(rpm: int, window: float, burst: int) -> None:
    limiter = WindowLimiter(rpm, None, window, FakeClock())
    verdicts = [limiter.admit(0) for _ in range(burst + 5)]
    assert sum(v.admitted for v in verdicts) == burst
    assert all(v.limited_by == REQUESTS for v in verdicts[burst:])


def test_rpm_60_admits_one_request_per_second() -> None:
    clock = FakeClock()
    limiter = WindowLimiter(60, None, 1.0, clock)
    assert limiter.admit(0).admitted
    refused = limiter.admit(0)
    assert not refused.admitted and refused.retry_after == pytest.approx(1.0)
    clock.advance(0.5)
    assert limiter.admit(0).retry_after == pytest.approx(0.5)
    clock.advance(0.5)
    assert limiter.admit(0).admitted


def test_tokens_are_charged_at_admission_and_refill_continuously() -> None:
    clock = FakeClock()
    limiter = WindowLimiter(None, 6000, 1.0, clock)  # 100 tokens per second, bucket of 100
    assert limiter.admit(60).admitted
    refused = limiter.admit(60)
    assert (refused.admitted, refused.limited_by) == (False, TOKENS)
    assert refused.retry_after == pytest.approx(0.2)  # 40 left, 60 needed, 100/s
    clock.advance(0.2)
    assert limiter.admit(60).admitted


def test_a_refused_request_takes_nothing_from_any_bucket() -> None:
    limiter = WindowLimiter(600, 6000, 1.0, FakeClock())  # 10 requests, 100 tokens
    assert limiter.admit(60).admitted
    assert limiter.admit(60).limited_by == TOKENS
    assert limiter.headers()["x-ratelimit-remaining-requests"] == "9"  # not charged for it


def test_a_cost_above_the_window_but_within_the_minute_passes_when_full() -> None:
    clock = FakeClock()
    limiter = WindowLimiter(None, 6000, 1.0, clock)  # bucket of 100
    assert limiter.admit(250).admitted  # full bucket: admitted, level goes to -150
    assert limiter.admit(1).retry_after == pytest.approx(1.51)
    clock.advance(2.5)
    assert limiter.admit(100).admitted


def test_a_cost_above_the_per_minute_limit_never_passes() -> None:
    limiter = WindowLimiter(None, 6000, 1.0, FakeClock())
    verdict = limiter.admit(6001)
    assert (verdict.admitted, verdict.too_large, verdict.retry_after) == (False, True, math.inf)


def test_headers_report_limits_per_minute_and_levels_floored() -> None:
    clock = FakeClock()
    limiter = WindowLimiter(600, 60_000, 1.0, clock)
    limiter.admit(250)
    assert limiter.headers() == {
        "x-ratelimit-limit-requests": "600",
        "x-ratelimit-remaining-requests": "9",
        "x-ratelimit-reset-requests": "100ms",
        "x-ratelimit-limit-tokens": "60000",
        "x-ratelimit-remaining-tokens": "750",
        "x-ratelimit-reset-tokens": "250ms",
    }
    limiter.refill_all()
    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "1000"


def test_no_limits_admits_everything_and_sends_no_headers() -> None:
    limiter = WindowLimiter(None, 0, 1.0, FakeClock())
    assert all(limiter.admit(10**9).admitted for _ in range(100))
    assert limiter.headers() == {}


@settings(max_examples=60, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=100_000),
    window=st.sampled_from([0.25, 0.5, 1.0, 2.0]),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=300),
)
def test_never_admits_more_than_a_window_plus_refill(
    rpm: int, window: float, gaps: list[float]
) -> None:
    clock = FakeClock()
    limiter = WindowLimiter(rpm, None, window, clock)
    admitted = 0
    for gap in gaps:
        clock.advance(gap)
        admitted += limiter.admit(0).admitted
    capacity = max(1.0, rpm / 60 * window)
    assert admitted <= math.floor(capacity + rpm / 60 * sum(gaps)) + 1


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.0004, "1ms"),
        (0.12, "120ms"),
        (0.9999, "1s"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.25, "59.25s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (360, "6m0s"),
        (3725, "1h2m5s"),
    ],
)
def test_durations_are_formatted_like_openai(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# ---- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("hello", None),
        ("issue #12", None),
        ("please #fail=500", Fault(FAIL, 500)),
        ("#fail=503 now", Fault(FAIL, 503)),
        ("#fail=400", Fault(FAIL, 400)),
        ("x #hang", Fault(HANG)),
        ("x #drop y", Fault(DROP)),
        ("#hanging", None),
        ("#fail=5000", None),
    ],
)
def test_markers_force_a_fault(text: str, fault: Fault | None) -> None:
    assert parse_marker(text) == fault


def test_a_seed_replays_the_same_faults_and_rates_hold_roughly() -> None:
    def draw(seed: int) -> list[Fault | None]:
        faults = FaultInjector(fail_rate=0.2, drop_rate=0.1, hang_rate=0.1, seed=seed)
        return [faults.choose("x") for _ in range(5000)]

    first = draw(7)
    assert first == draw(7) != draw(8)
    kinds = [f.kind if f else None for f in first]
    assert kinds.count(FAIL) == pytest.approx(1000, rel=0.15)
    assert kinds.count(DROP) == pytest.approx(500, rel=0.2)
    assert kinds.count(HANG) == pytest.approx(500, rel=0.2)


def test_a_marker_wins_over_chance_and_draws_nothing() -> None:
    faults = FaultInjector(fail_rate=1.0, seed=1)
    assert faults.choose("#drop") == Fault(DROP)
    assert faults.choose("plain") == Fault(FAIL, 500)


def test_latency_jitters_within_bounds_and_never_below_zero() -> None:
    faults = FaultInjector(latency_ms=10, jitter_ms=20, seed=3)
    delays = [faults.latency() for _ in range(1000)]
    assert min(delays) == 0.0 and max(delays) <= 0.030
    assert FaultInjector(latency_ms=10).latency() == 0.010


# ---- config, parsing, counting, stats -----------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"rpm": -1},
        {"window_seconds": 0},
        {"fail_rate": 1.5},
        {"fail_rate": 0.6, "drop_rate": 0.6},
        {"fail_status": 200},
        {"context_window": 0},
        {"completion_tokens": 0},
        {"port": 70000},
        {"stream_token_delay_ms": -1},
        {"embedding_dimensions": 0},
    ],
)
def test_impossible_settings_are_rejected(fields: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        SimulatorConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ([], None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": ["x"]}, "messages"),
        ({"model": "m", "messages": [{"role": "user"}], "n": 0}, "n"),
        ({"model": "m", "messages": [{"role": "user"}], "max_tokens": -1}, "max_tokens"),
        ({"model": "m", "messages": [{"role": "user"}], "max_tokens": True}, "max_tokens"),
        ({"model": "m", "messages": [{"role": "user"}], "stream": "yes"}, "stream"),
        (
            {"model": "m", "messages": [{"role": "user"}], "stream_options": {}},
            "stream_options",
        ),
        (
            {"model": "m", "messages": [{"role": "user"}], "stream": True, "stream_options": 1},
            "stream_options",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user"}],
                "stream": True,
                "stream_options": {"include_usage": "yes"},
            },
            "stream_options.include_usage",
        ),
    ],
)
def test_malformed_requests_name_the_parameter(payload: object, param: str | None) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_chat(payload)
    assert caught.value.param == param


def test_a_request_is_keyed_by_user_else_by_its_last_user_text() -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "sec"}, {"type": "text", "text": "ond"}],
        },
    ]
    chat = parse_chat({"model": "m", "messages": messages, "max_completion_tokens": 7})
    assert (chat.text, chat.key, chat.max_output, chat.n) == ("second", "second", 7, 1)
    assert parse_chat({"model": "m", "messages": messages, "user": "u-1"}).key == "u-1"


@pytest.mark.parametrize(
    ("fields", "stream", "include_usage"),
    [
        ({}, False, False),
        ({"stream": False}, False, False),
        ({"stream": None}, False, False),
        ({"stream": True}, True, False),
        ({"stream": True, "stream_options": None}, True, False),
        ({"stream": True, "stream_options": {}}, True, False),
        ({"stream": True, "stream_options": {"include_usage": False}}, True, False),
        ({"stream": True, "stream_options": {"include_usage": True}}, True, True),
    ],
)
def test_stream_and_include_usage_are_read(
    fields: dict[str, object], stream: bool, include_usage: bool
) -> None:
    chat = parse_chat({"model": "m", "messages": [{"role": "user"}], **fields})
    assert (chat.stream, chat.include_usage) == (stream, include_usage)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("any-simulated-model", "o200k_base"),
    ],
)
def test_the_encoding_follows_the_model(model: str, encoding: str) -> None:
    assert encoding_name(model) == encoding


def test_prompt_tokens_count_the_chat_framing_like_openai() -> None:
    # "hello": 3 per message + "user" (1) + "hello" (1) + 3 priming the reply = 8, as OpenAI says.
    assert count_prompt("gpt-4o-mini", [{"role": "user", "content": "hello"}]) == 8
    named = [{"role": "user", "content": "hello", "name": "bob"}]
    assert count_prompt("gpt-4o-mini", named) == 8 + 1 + 1


def test_stats_count_admissions_per_second_and_in_the_densest_second() -> None:
    clock = FakeClock(0.0)
    stats = Stats(clock())
    for t in (0.1, 0.2, 0.9, 1.05, 1.15, 3.0):
        clock.now = t
        stats.on_admitted(t, 10, "chat")
    snapshot = stats.snapshot(clock())
    assert snapshot["admissions_per_second"] == [3, 2, 0, 1]
    assert snapshot["max_admissions_per_second"] == 4  # 0.1 .. 1.05
    assert snapshot["tokens_charged"] == 60


def test_a_reset_keeps_requests_in_flight() -> None:
    stats = Stats(0.0)
    stats.enter()
    stats.on_received("k", "chat")
    stats.reset(5.0)
    assert (stats.in_flight, stats.peak_in_flight, stats.received) == (1, 1, 0)
    stats.leave()
    assert stats.snapshot(6.0)["in_flight"] == 0
