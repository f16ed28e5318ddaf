"""Retry policy: which errors are retried, how long we wait, how many attempts are made."""

from __future__ import annotations

import pickle
import sys

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from llm_api_client import errors
from llm_api_client._constants import MAX_RETRY_AFTER_SECONDS, MAX_RETRY_DELAY_SECONDS
from llm_api_client.call.retry import RetryPolicy, default_wait, is_retryable, wait_retry_after
from llm_api_client.providers.translate import class_for_status


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (402, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (413, False),
        (422, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (529, True),
    ],
)
def test_retryable_status_codes(status: int, retryable: bool) -> None:
    error = class_for_status(status)("x", status_code=status)
    assert is_retryable(error) is retryable


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (errors.APIConnectionError("reset"), True),
        (errors.APITimeoutError("slow"), True),
        (errors.APIError("unknown, no status"), False),
        (errors.ContextLengthExceededError("long", status_code=400), False),
        (errors.UnsupportedParamsError("param", status_code=400), False),
        (errors.RequestTooLargeError("big"), False),
        (errors.RateLimitDelayExceeded("waited"), False),
        (errors.InvalidRequestError("bad"), False),
        (errors.ConfigurationError("bad"), False),
        (errors.BudgetExceededError("spent"), False),
        (errors.LLMAPIClientError("root"), False),
        (ValueError("not ours"), False),
    ],
)
def test_retryable_errors(error: BaseException, retryable: bool) -> None:
    assert is_retryable(error) is retryable


def _state_after(error: BaseException, attempt: int = 1) -> tenacity.RetryCallState:
    state = tenacity.RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    try:
        raise error
    except BaseException:
        state.set_exception(sys.exc_info())  # type: ignore[arg-type]
    return state


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (0.0, 0.0),
        (1.5, 1.5),
        (59.0, 59.0),
        (60.0, 60.0),
        (3600.0, 60.0),  # capped
    ],
)
def test_wait_honours_retry_after_and_caps_it(retry_after: float, expected: float) -> None:
    wait = wait_retry_after(cap=60.0, fallback=tenacity.wait_fixed(7))
    error = errors.RateLimitError("slow down", status_code=429, retry_after=retry_after)
    assert wait(_state_after(error)) == expected


def test_wait_falls_back_without_retry_after() -> None:
    wait = wait_retry_after(fallback=tenacity.wait_fixed(7))
    assert wait(_state_after(errors.InternalServerError("x", status_code=500))) == 7
    assert wait_retry_after()(_state_after(errors.APIConnectionError("x"))) == 0


@given(
    attempt=st.integers(min_value=1, max_value=50),
    retry_after=st.none() | st.floats(min_value=0, max_value=1e9),
)
def test_default_wait_is_bounded(attempt: int, retry_after: float | None) -> None:
    error = errors.RateLimitError("x", status_code=429, retry_after=retry_after)
    seconds = default_wait()(_state_after(error, attempt))
    bound = MAX_RETRY_AFTER_SECONDS if retry_after is not None else MAX_RETRY_DELAY_SECONDS
    assert 0 <= seconds <= bound
    if retry_after is not None:
        assert seconds == min(retry_after, MAX_RETRY_AFTER_SECONDS)


class _Flaky:
    """Fails with ``error`` the first ``failures`` times, then returns "ok"."""

    def __init__(self, error: BaseException, failures: int) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def _run(policy: RetryPolicy, fn: _Flaky, sleeps: list[float]) -> str:
    result = ""
    for attempt in policy.retrying(sleep=sleeps.append):
        with attempt:
            result = fn()
    return result


@pytest.mark.parametrize(
    ("max_retries", "failures", "calls", "succeeds"),
    [
        (0, 0, 1, True),
        (0, 1, 1, False),
        (2, 2, 3, True),
        (2, 3, 3, False),
        (5, 1, 2, True),
    ],
)
def test_policy_makes_max_retries_extra_attempts(
    max_retries: int, failures: int, calls: int, succeeds: bool
) -> None:
    error = errors.RateLimitError("x", status_code=429, retry_after=2.0)
    fn, sleeps = _Flaky(error, failures), list[float]()
    policy = RetryPolicy(max_retries=max_retries)
    if succeeds:
        assert _run(policy, fn, sleeps) == "ok"
    else:
        with pytest.raises(errors.RateLimitError):  # the error itself, not tenacity's RetryError
            _run(policy, fn, sleeps)
    assert fn.calls == calls
    assert sleeps == [2.0] * (calls - 1)


def test_policy_never_retries_a_bad_request() -> None:
    fn, sleeps = _Flaky(errors.BadRequestError("bad", status_code=400), failures=1), list[float]()
    with pytest.raises(errors.BadRequestError):
        _run(RetryPolicy(max_retries=3), fn, sleeps)
    assert fn.calls == 1
    assert sleeps == []


def test_policy_is_validated_and_picklable() -> None:
    with pytest.raises(errors.ConfigurationError):
        RetryPolicy(max_retries=-1)
    policy = pickle.loads(pickle.dumps(RetryPolicy(max_retries=2)))
    assert policy.max_retries == 2
    assert "wait_retry_after" in repr(policy.wait)


def test_one_policy_serves_many_threads() -> None:
    import threading

    policy = RetryPolicy(max_retries=1)
    results: list[str] = []

    def worker() -> None:
        for _ in range(50):
            results.append(_run(policy, _Flaky(errors.APIConnectionError("x"), 1), []))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["ok"] * 400
