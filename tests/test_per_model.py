"""``ratelimit.per_model``: a listed model's buckets, under the client-wide ones.

Every limiter here is an ``InProcessRateLimiter`` on one ``FakeClock``: nothing sleeps for real.
"""

from __future__ import annotations

from typing import Any

import pytest

from llm_api_client.engine.execution import ExecutionConfig
from llm_api_client.engine.runtime import Runtime
from llm_api_client.engine.sizing import LatencyWindow
from llm_api_client.errors import ConfigurationError, RateLimitDelayExceeded
from llm_api_client.providers.litellm_transport import FunctionTransport
from llm_api_client.ratelimit import Cost, Limits, ProviderLimits, SharedMemoryRateLimiter
from llm_api_client.ratelimit.memory import InProcessRateLimiter
from llm_api_client.ratelimit.per_model import ModelLimiters, limits_table
from tests.fakes import make_response
from tests.test_ratelimit_store import FakeClock

LISTED, UNLISTED = "openai/gpt-a", "openai/gpt-b"
UNLIMITED = Limits()
OVERALL = Limits(requests_per_minute=600)
MODEL = Limits(requests_per_minute=120)
COST = Cost(input_tokens=10, output_tokens=10)


def limiter(limits: Limits, clock: FakeClock, probe_seconds: float = 0.0) -> InProcessRateLimiter:
    return InProcessRateLimiter(limits, clock=clock, sleep=clock.sleep, probe_seconds=probe_seconds)


def limiter_set(overall: Limits, clock: FakeClock | None = None) -> ModelLimiters:
    clock = clock or FakeClock()
    return ModelLimiters(limiter(overall, clock), {LISTED: limiter(MODEL, clock)})


def admitted(limiters: ModelLimiters) -> tuple[int, int]:
    """Admissions so far: (the listed model's, the overall limiter's)."""
    return limiters.models[LISTED].snapshot().admitted, limiters.overall.snapshot().admitted


@pytest.mark.parametrize(
    ("model", "overall", "drawn_from"),
    [
        (LISTED, OVERALL, (1, 1)),  # the model's buckets, and the overall cap
        (LISTED, UNLIMITED, (1, 0)),  # no overall cap: the model's alone
        (UNLISTED, OVERALL, (0, 1)),  # the client-wide limiter, as without model limits
        (UNLISTED, UNLIMITED, (0, 1)),
    ],
    ids=["listed-capped", "listed-uncapped", "unlisted-capped", "unlisted-uncapped"],
)
def test_a_request_draws_from_its_models_buckets_and_the_overall_cap(
    model: str, overall: Limits, drawn_from: tuple[int, int]
) -> None:
    limiters = limiter_set(overall)
    limiters.for_model(model).admit(COST)
    assert admitted(limiters) == drawn_from


def test_the_overall_refusing_gives_the_models_turn_back() -> None:
    clock = FakeClock()
    limiters = limiter_set(Limits(requests_per_minute=60, burst_seconds=1.0), clock)
    limiters.overall.admit(COST)  # the overall bucket (1 request) is now empty for 1 s
    before = limiters.models[LISTED].snapshot().levels["requests"]
    with pytest.raises(RateLimitDelayExceeded):
        limiters.for_model(LISTED).admit(COST, max_delay=0.5)
    assert limiters.models[LISTED].snapshot().levels["requests"] == pytest.approx(before)


def test_the_overall_waits_only_what_is_left_of_max_delay() -> None:
    clock = FakeClock()
    limiters = limiter_set(Limits(requests_per_minute=60, burst_seconds=1.0), clock)
    limiters.models[LISTED].admit(COST)  # the model's next turn (120 RPM): in 0.5 s
    limiters.overall.admit(Cost(requests=3))  # the overall's: in 3 s
    with pytest.raises(RateLimitDelayExceeded):  # 0.5 s for the model, then 2.5 s > 2.1 s left
        limiters.for_model(LISTED).admit(COST, max_delay=2.6)
    assert clock.sleeps == [0.5]  # the model's turn came; the overall refused at once
    assert limiters.for_model(LISTED).admit(COST).waited == pytest.approx(2.5)


def test_a_refund_goes_back_to_both() -> None:
    limiters = limiter_set(OVERALL)
    both = limiters.for_model(LISTED)
    full = (limiters.models[LISTED].snapshot().levels, limiters.overall.snapshot().levels)
    both.admit(Cost(input_tokens=0, output_tokens=0))
    both.refund(Cost(requests=1))
    after = (limiters.models[LISTED].snapshot().levels, limiters.overall.snapshot().levels)
    assert after == full


def test_a_429_and_headers_teach_only_the_models_buckets() -> None:
    limiters = limiter_set(OVERALL)
    both = limiters.for_model(LISTED)
    both.pause(2.0, both.admit(COST))
    both.observe(ProviderLimits(limits={"requests": 60}))
    model, overall = limiters.models[LISTED].snapshot(), limiters.overall.snapshot()
    assert model.paused_for > 0 and model.rates_per_minute["requests"] == 60
    assert overall.paused_for == 0 and overall.rates_per_minute["requests"] == 600


@pytest.mark.parametrize("answer", ["observe", "pause"])
def test_the_models_answer_ends_the_overall_slow_start(answer: str) -> None:
    clock = FakeClock()
    overall = limiter(OVERALL, clock, probe_seconds=10.0)
    roomy = Limits(requests_per_minute=6_000)  # the model's own bucket never makes it wait
    both = ModelLimiters(overall, {LISTED: limiter(roomy, clock)}).for_model(LISTED)
    first = both.admit(COST)  # the overall's probe: it goes alone until an answer comes
    if answer == "observe":
        both.observe(ProviderLimits())
    else:
        both.pause(0.0, first)
    assert both.admit(COST).waited == 0.0
    assert clock.sleeps == []


def test_model_limits_are_checked_as_the_client_wide_ones() -> None:
    table = limits_table(
        {LISTED: {"max_requests_per_minute": 60, "max_tokens_per_minute": None}}, 2.0
    )
    assert table == {LISTED: Limits(requests_per_minute=60, burst_seconds=2.0)}
    bad: list[Any] = [
        [("gpt", 60)],
        {"": {"max_requests_per_minute": 60}},
        {LISTED: 60},
        {LISTED: {"rpm": 60}},
        {LISTED: {"max_requests_per_minute": 0.5}},
        {LISTED: {"max_tokens_per_minute": True}},
    ]
    for table in bad:
        with pytest.raises(ConfigurationError, match="model_limits"):
            limits_table(table, 2.0)


def make_runtime(overall: Limits, **settings: Any) -> Runtime:
    config = ExecutionConfig(transport=FunctionTransport(lambda **r: make_response(r["model"])))
    return Runtime(overall, config, **settings)


def test_only_model_limits_size_the_batch_by_their_sum() -> None:
    table = {LISTED: {"max_requests_per_minute": 600}, UNLISTED: {"max_requests_per_minute": 3_000}}
    runtime = make_runtime(UNLIMITED, model_limits=table)
    plan = runtime.plan(600)
    assert plan.processes == 0  # 60 requests/s: one process's threads keep up
    window = runtime.window(plan)
    assert isinstance(window, LatencyWindow) and window.rate() == pytest.approx(60.0)


def test_processes_share_every_models_quota_and_free_it_on_close() -> None:
    table = {LISTED: {"max_requests_per_minute": 600}}
    runtime = make_runtime(OVERALL, model_limits=table, processes=1)
    backend, _ = runtime.start_batch(10, None)
    runtime.batch_finished(True)
    limiters = backend._limiter
    assert isinstance(limiters, ModelLimiters)
    shared = [limiters.overall, limiters.models[LISTED]]
    assert all(isinstance(each, SharedMemoryRateLimiter) for each in shared)
    runtime.close()
    assert all(each.store.closed for each in shared)


def parse_run(*argv: str) -> Any:
    from llm_api_client.cli import main as cli_main

    return cli_main.build_parser().parse_args(["run", "in.jsonl", "-o", "out.jsonl", *argv])


def test_the_run_command_takes_a_limit_per_model() -> None:
    from llm_api_client.cli import run as run_module

    args = parse_run("--model-limit", f"{LISTED}=600:100000", "--model-limit", "ollama/x:7b=60")
    with run_module.make_client(args) as client:
        assert client._runtime.model_limits == {
            LISTED: Limits(600, 100_000, burst_seconds=client.limits.burst_seconds),
            "ollama/x:7b": Limits(60, burst_seconds=client.limits.burst_seconds),
        }


@pytest.mark.parametrize("text", ["gpt=0", "=60", "gpt", "gpt=60:1:2", "gpt=fast", "gpt=60:nan"])
def test_a_bad_model_limit_is_a_usage_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_run("--model-limit", text)
    assert exited.value.code == 2
    assert "MODEL=RPM" in capsys.readouterr().err


def test_a_keyed_store_keeps_each_models_quota_under_its_own_key() -> None:
    from llm_api_client.ratelimit.per_model import store_for_model

    assert (
        store_for_model("redis://h:6379/0#team", LISTED) == "redis://h:6379/0#team%3Aopenai%2Fgpt-a"
    )
    assert store_for_model("shared-memory://spawn", LISTED) == "shared-memory://spawn"
    with pytest.raises(ConfigurationError, match="model_limits"):
        store_for_model("ray://quota", LISTED)
