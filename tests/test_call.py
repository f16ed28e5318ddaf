"""execute(): one request through the limiter, a transport and the retry policy, into an Outcome."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from llm_api_client import _offline, errors
from llm_api_client._constants import (
    DEFAULT_RATE_LIMIT_PAUSE_SECONDS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
)
from llm_api_client.call.execute import execute, request_timeout
from llm_api_client.call.retry import RetryPolicy
from llm_api_client.engine.messages import Outcome
from llm_api_client.providers.litellm_transport import FunctionTransport, LiteLLMTransport
from llm_api_client.providers.models import provider_of
from llm_api_client.providers.pricing import cost_of
from llm_api_client.ratelimit.base import (
    Admission,
    Cost,
    LimiterSnapshot,
    Limits,
    ProviderLimits,
    RateLimiter,
)

litellm = _offline.litellm()

HEADERS = {
    "x-ratelimit-remaining-requests": "599",
    "llm_provider-x-ratelimit-remaining-requests": "598",  # the unprefixed one wins
    "llm_provider-x-request-id": "req-1",
    "llm_provider-set-cookie": "session=secret",
}


class FakeLimiter(RateLimiter):
    """Admits everything (or raises ``refuse``) and records what it was told."""

    def __init__(self, refuse: errors.LLMAPIClientError | None = None) -> None:
        self.limits = Limits()
        self.refuse = refuse
        self.acquired: list[Cost] = []
        self.refunded: list[Cost] = []
        self.paused: list[float] = []
        self.observed: list[ProviderLimits] = []

    def acquire(self, cost: Cost, *, max_delay: float | None = None) -> float:
        if self.refuse is not None:
            raise self.refuse
        self.acquired.append(cost)
        return 0.0

    def refund(self, cost: Cost) -> None:
        self.refunded.append(cost)

    def pause(self, seconds: float, admission: Admission | None = None) -> None:
        self.paused.append(seconds)

    def observe(self, limits: ProviderLimits) -> None:
        self.observed.append(limits)

    def snapshot(self) -> LimiterSnapshot:
        return LimiterSnapshot(levels={}, rates_per_minute={}, waiters=0, paused_for=0, pauses=0)


def make_response(model: str = "gpt-4o-mini", headers: Mapping[str, str] | None = None) -> Any:
    response = litellm.ModelResponse(
        id="chatcmpl-1",
        model=model,
        choices=[
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}
        ],
        usage={
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 8},
        },
    )
    response._hidden_params = {
        "custom_llm_provider": "openai",
        "additional_headers": dict(HEADERS if headers is None else headers),
    }
    return response


def status_error(status: int, headers: Mapping[str, str] | None = None) -> Exception:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, request=request, headers=dict(headers or {}))
    kwargs: dict[str, Any] = {"message": f"fake {status}", "llm_provider": "openai", "model": "m"}
    if status == 429:
        return litellm.RateLimitError(response=response, **kwargs)
    if status == 400:
        return litellm.BadRequestError(response=response, **kwargs)
    return litellm.InternalServerError(response=response, **kwargs)


class Script:
    """A completion function that plays its steps in order (exceptions are raised)."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        step = self.steps[min(len(self.calls), len(self.steps)) - 1]
        if isinstance(step, BaseException):
            raise step
        return step


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        self.now += 0.25  # every reading advances: a call lasts 0.25 s
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
COST = Cost(input_tokens=100, output_tokens=500)


def run(
    completion: Script,
    *,
    limiter: FakeLimiter | None = None,
    max_retries: int = 0,
    request: dict[str, Any] | None = None,
    clock: FakeClock | None = None,
    **extra: Any,
) -> Outcome:
    clock = clock or FakeClock()
    request = dict(REQUEST) if request is None else request
    extra.setdefault("provider", provider_of(request["model"], request))  # as the coordinator
    return execute(
        request,
        index=7,
        cost=COST,
        limiter=limiter or FakeLimiter(),
        policy=RetryPolicy(max_retries=max_retries),
        transport=FunctionTransport(completion),
        sleep=clock.sleep,
        clock=clock,
        **extra,
    )


def test_success_outcome_and_record() -> None:
    limiter, response = FakeLimiter(), make_response()
    outcome = run(Script(response), limiter=limiter)
    assert outcome.ok and outcome.error is None
    assert outcome.index == 7
    assert outcome.response is response
    record = outcome.record
    assert (record.index, record.model, record.provider) == (7, "openai/gpt-4o-mini", "openai")
    assert (record.prompt_tokens, record.completion_tokens) == (100, 20)
    assert (record.cached_tokens, record.reasoning_tokens) == (40, 8)
    assert record.cost == cost_of("openai/gpt-4o-mini", 100, 20, 40) > 0
    assert (record.attempts, record.rate_limited, record.error) == (1, 0, None)
    assert record.response_time == 0.25
    assert record.finished_at > 1e9
    assert limiter.acquired == [COST]
    assert [seen.remaining for seen in limiter.observed] == [{"requests": 599}]


def test_completion_gets_no_retries_and_a_timeout_and_the_request_is_not_mutated() -> None:
    request = {**REQUEST, "num_retries": 5, "max_retries": 9}
    before = dict(request)
    script = Script(make_response())
    run(script, request=request)
    assert request == before
    sent = script.calls[0]
    assert sent["max_retries"] == 0
    assert "num_retries" not in sent
    assert sent["timeout"] == DEFAULT_REQUEST_TIMEOUT_SECONDS
    assert sent["messages"] == REQUEST["messages"]


@pytest.mark.parametrize(
    ("given", "sent"), [(None, DEFAULT_REQUEST_TIMEOUT_SECONDS), (5, 5), (0.5, 0.5)]
)
def test_timeout_is_kept_or_defaulted(given: float | None, sent: float) -> None:
    assert request_timeout({**REQUEST, "timeout": given}) == sent
    script = Script(make_response())
    run(script, request={**REQUEST, "timeout": given})
    assert script.calls[0]["timeout"] == sent


def test_429_pauses_observes_and_retries_after_the_providers_wait() -> None:
    limiter, clock = FakeLimiter(), FakeClock()
    headers = {"retry-after-ms": "1500", "x-ratelimit-remaining-requests": "0"}
    script = Script(status_error(429, headers), make_response())
    outcome = run(script, limiter=limiter, max_retries=1, clock=clock)
    assert outcome.ok
    assert (outcome.record.attempts, outcome.record.rate_limited) == (2, 1)
    assert limiter.paused == [1.5]
    assert limiter.observed[0].remaining == {"requests": 0}
    assert clock.slept == [1.5]
    assert limiter.acquired == [COST, COST]  # every attempt re-acquires


def test_429_without_retry_after_pauses_a_default() -> None:
    limiter = FakeLimiter()
    outcome = run(Script(status_error(429)), limiter=limiter)
    assert isinstance(outcome.error, errors.RateLimitError)
    assert limiter.paused == [DEFAULT_RATE_LIMIT_PAUSE_SECONDS]
    assert outcome.record.error == "RateLimitError"


def test_a_bad_request_is_sent_once() -> None:
    script = Script(status_error(400))
    outcome = run(script, max_retries=3)
    assert isinstance(outcome.error, errors.BadRequestError)
    assert outcome.error.index == 7
    assert len(script.calls) == 1
    assert (outcome.record.attempts, outcome.record.error) == (1, "BadRequestError")
    assert outcome.response is None


def test_server_errors_use_every_retry_then_report_the_last() -> None:
    script = Script(status_error(500))
    clock = FakeClock()
    outcome = run(script, max_retries=2, clock=clock)
    assert isinstance(outcome.error, errors.InternalServerError)
    assert outcome.record.attempts == 3
    assert len(clock.slept) == 2
    assert outcome.record.prompt_tokens == 0 and outcome.record.cost == 0.0


class NoLoopPolicy(RetryPolicy):
    """A policy whose retry loop must not be built: one attempt needs none."""

    def retrying(self, sleep: Any = None) -> Any:
        raise AssertionError("a tenacity loop was built for a request with no retries")


@pytest.mark.parametrize("step", [make_response(), status_error(500), status_error(400)])
def test_without_retries_one_attempt_is_sent_outside_any_retry_loop(step: Any) -> None:
    """The loop costs CPU per request (the lean transport's profile); the outcome is the same."""
    script = Script(step)
    outcome = execute(
        dict(REQUEST),
        index=7,
        cost=COST,
        limiter=FakeLimiter(),
        policy=NoLoopPolicy(max_retries=0),
        transport=FunctionTransport(script),
    )
    assert len(script.calls) == 1 and outcome.record.attempts == 1
    assert outcome.ok is isinstance(step, litellm.ModelResponse)
    assert outcome.error is None or outcome.error.index == 7


@pytest.mark.parametrize(
    "refusal",
    [errors.RateLimitDelayExceeded("waited too long"), errors.RequestTooLargeError("big")],
)
def test_limiter_refusal_ends_the_request_unsent(refusal: errors.LLMAPIClientError) -> None:
    script = Script(make_response())
    outcome = run(script, limiter=FakeLimiter(refuse=refusal), max_retries=3)
    assert outcome.error is refusal
    assert outcome.error.index == 7
    assert script.calls == []
    assert outcome.record.attempts == 0
    assert outcome.record.error == type(refusal).__name__


def test_an_unexpected_exception_becomes_an_error_not_a_raise() -> None:
    outcome = run(Script(KeyError("surprise")))
    assert type(outcome.error) is errors.APIError
    assert "KeyError" in str(outcome.error)


class RawTransport:
    """A transport that breaks its contract: it raises litellm's exceptions untranslated."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def setup(self) -> None:
        pass

    def complete(self, request: dict[str, Any], *, timeout: float) -> Any:
        raise self.error


def test_an_untranslated_transport_error_is_translated_all_the_same() -> None:
    limiter = FakeLimiter()
    outcome = execute(
        dict(REQUEST),
        index=7,
        cost=COST,
        limiter=limiter,
        policy=RetryPolicy(max_retries=0),
        transport=RawTransport(status_error(429, {"retry-after": "3"})),
    )
    assert isinstance(outcome.error, errors.RateLimitError)
    assert (outcome.error.index, outcome.error.model) == (7, "openai/gpt-4o-mini")
    assert limiter.paused == [3.0]
    assert outcome.record.rate_limited == 1


@pytest.mark.parametrize(
    ("model", "refunded"),
    [
        ("openai/gpt-4o-mini", []),
        ("anthropic/claude-3-5-sonnet-20241022", [Cost(0, 480, 0)]),
        ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", [Cost(0, 480, 0)]),
    ],
)
def test_settlement_refunds_unused_output(model: str, refunded: list[Cost]) -> None:
    limiter = FakeLimiter()
    run(Script(make_response()), limiter=limiter, request={**REQUEST, "model": model})
    assert limiter.refunded == refunded


def test_model_and_provider_come_from_the_coordinator() -> None:
    """The worker uses the ``CallItem``'s model and provider, not the request's, for its record."""
    limiter = FakeLimiter()
    outcome = run(
        Script(make_response()),
        limiter=limiter,
        model="claude-3-5-sonnet-20241022",
        provider="anthropic",
    )
    assert (outcome.record.model, outcome.record.provider) == (
        "claude-3-5-sonnet-20241022",
        "anthropic",
    )
    assert limiter.refunded == [Cost(0, 480, 0)]  # settled as Anthropic does


def test_no_refund_after_a_failure() -> None:
    limiter = FakeLimiter()
    run(
        Script(status_error(500)),
        limiter=limiter,
        request={**REQUEST, "model": "anthropic/claude-3-haiku"},
    )
    assert limiter.refunded == []


def test_outcome_pickles_with_its_response_and_error() -> None:
    ok = run(Script(make_response()))
    failed = run(Script(status_error(429, {"retry-after": "2"})))
    for outcome in (ok, failed):
        twin = pickle.loads(pickle.dumps(outcome))
        assert twin.record == outcome.record
        assert twin.index == outcome.index
    assert pickle.loads(pickle.dumps(ok)).response.usage.prompt_tokens == 100
    twin_error = pickle.loads(pickle.dumps(failed)).error
    assert isinstance(twin_error, errors.RateLimitError) and twin_error.retry_after == 2.0


# Through the real litellm.completion and the real in-process limiter, on loopback.


@pytest.fixture(scope="module")
def stub() -> Any:
    from tests._provider_stub import ProviderStub

    with ProviderStub() as server:
        yield server


def real(
    stub: Any, model: str, max_retries: int, limiter: RateLimiter, clock: FakeClock
) -> Outcome:
    return execute(
        {
            "model": f"openai/{model}",
            "messages": [{"role": "user", "content": "hi"}],
            "api_base": stub.base_url,
            "api_key": "sk-test-not-a-secret",
        },
        index=0,
        cost=Cost(input_tokens=10, output_tokens=100),
        limiter=limiter,
        policy=RetryPolicy(max_retries=max_retries),
        transport=LiteLLMTransport(),
        provider="openai",
        sleep=clock.sleep,
    )


def test_real_litellm_success_and_429_retry(stub: Any) -> None:
    from llm_api_client.ratelimit.memory import InProcessRateLimiter

    class _Observing(InProcessRateLimiter):
        """The real limiter, keeping what each answer's headers stated."""

        observed: list[ProviderLimits] = []

        def observe(self, limits: ProviderLimits) -> None:
            self.observed.append(limits)
            super().observe(limits)

    limiter_time = [0.0]  # the limiter's own clock: its sleeps move it, nothing waits for real

    def limiter_sleep(seconds: float) -> None:
        limiter_time[0] += seconds

    limiter = _Observing(
        Limits(requests_per_minute=6000, tokens_per_minute=1_000_000),
        clock=lambda: limiter_time[0],
        sleep=limiter_sleep,
    )
    clock = FakeClock()
    outcome = real(stub, "seq-status.429-ok", 2, limiter, clock)
    assert outcome.ok, outcome.error
    record = outcome.record
    assert (record.attempts, record.rate_limited) == (2, 1)
    assert (record.prompt_tokens, record.completion_tokens) == (10, 5)
    assert (record.cached_tokens, record.reasoning_tokens) == (2, 1)
    assert record.provider == "openai"
    assert clock.slept == [1.5]  # retry-after-ms from the 429
    assert limiter.observed[-1].remaining["requests"] == 599  # the success's headers, read
    assert limiter.snapshot().pauses == 1
    assert stub.calls["seq-status.429-ok"] == 2


def test_real_litellm_bad_request_sent_once(stub: Any) -> None:
    clock = FakeClock()
    outcome = real(stub, "ctx", 3, FakeLimiter(), clock)
    assert isinstance(outcome.error, errors.ContextLengthExceededError)
    assert stub.calls["ctx"] == 1
    assert outcome.record.attempts == 1


def test_against_the_simulator_with_20_percent_500s() -> None:
    """Every good request is answered; a request that draws a 400 is sent exactly once."""
    from llm_api_client.simulator import Simulator
    from llm_api_client.tracker import APIUsageTracker

    tracker = APIUsageTracker()
    with Simulator(fail_rate=0.2, fail_status=500, seed=7) as sim:

        def one(i: int) -> Outcome:
            text = f"question {i}" + (" #fail=400" if i % 8 == 0 else "")
            return execute(
                {
                    "model": "openai/gpt-4o-mini",
                    "messages": [{"role": "user", "content": text}],
                    "api_base": sim.base_url,
                    "api_key": "sk-test-not-a-secret",
                    "max_tokens": 16,
                },
                index=i,
                cost=Cost(input_tokens=20, output_tokens=16),
                limiter=FakeLimiter(),
                policy=RetryPolicy(max_retries=8),
                transport=LiteLLMTransport(),
                sleep=lambda seconds: None,
            )

        # One thread: litellm, called from several at once, builds clients that lose its cache
        # race and drops them unclosed (ResourceWarnings at some later garbage collection).
        outcomes = [one(i) for i in range(40)]
        stats = sim.stats()
    tracker.add_many(o.record for o in outcomes)
    bad = [o for o in outcomes if o.index % 8 == 0]
    good = [o for o in outcomes if o.index % 8 != 0]
    assert all(o.ok for o in good), [o.error for o in good if not o.ok]
    assert all(isinstance(o.error, errors.BadRequestError) for o in bad)
    assert all(o.record.attempts == 1 for o in bad)
    assert sum(o.record.attempts for o in good) > len(good)  # some 500s were retried
    assert tracker.total_attempts == stats["received"]
    assert tracker.num_api_calls == stats["answered"] == len(good)
    assert tracker.total_prompt_tokens == stats["prompt_tokens"]
    assert tracker.total_completion_tokens == stats["completion_tokens"]
