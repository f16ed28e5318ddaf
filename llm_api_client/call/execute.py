"""One request, start to finish, in the worker thread that owns it.

    execute(request)
      └─ RetryPolicy.retrying() loop (tenacity), for each attempt:
           limiter.admit(cost)              may end the request unsent (too large / waited too long)
           transport.complete(request, timeout)   providers/: litellm.completion by default
             ok   -> limiter.observe(the limits its headers state)
             fail -> our typed error; a 429 also limiter.pause(retry_after, admission), observe
      └─ after a success: settle with the limiter on actual usage (refund the unused reservation)
      └─ Outcome(index, response, error, UsageRecord)   (engine.messages)

``execute`` never raises for a failure of the request itself: the typed error is in the outcome.
It is a picklable frozen dataclass, made in a worker and merged into the tracker in the parent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from llm_api_client import errors
from llm_api_client._constants import (
    DEFAULT_RATE_LIMIT_PAUSE_SECONDS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
)
from llm_api_client.call.retry import RetryPolicy
from llm_api_client.engine.messages import Outcome
from llm_api_client.providers.answers import Usage, response_headers
from llm_api_client.providers.base import Transport
from llm_api_client.providers.pricing import cost_of, is_priced
from llm_api_client.providers.settlement import refund_for, settles_on_actual_usage
from llm_api_client.providers.streaming import StreamTiming, stream_timing
from llm_api_client.providers.translate import translate_exception
from llm_api_client.ratelimit.base import Admission, Cost, RateLimiter
from llm_api_client.ratelimit.headers import parse_rate_limit_headers
from llm_api_client.records import UsageRecord

__all__ = ["execute", "request_timeout"]


def execute(
    request: dict[str, Any],
    *,
    index: int,
    cost: Cost,
    limiter: RateLimiter,
    policy: RetryPolicy,
    transport: Transport,
    model: str | None = None,
    provider: str | None = None,
    max_delay: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Send ``request`` through ``limiter`` with ``policy``'s retries; never raises for its failure.

    ``cost`` is what one attempt takes from the limiter (every retry takes it again).
    ``transport`` sends each attempt (``providers``). ``model`` (default: the request's) and
    ``provider`` (``providers.models.provider_of``) are resolved once by the coordinator
    (``CallItem``): for the usage record, the price and the settlement (``providers.settlement``).
    The caller's dict is not modified.
    """
    model = str(request.get("model", "")) if model is None else model
    attempts = _Attempts(request, index, cost, limiter, transport, clock, max_delay)
    attempts.model, attempts.provider = model, provider
    try:
        response = _send(attempts, policy, sleep)
    except errors.LLMAPIClientError as error:
        return attempts.outcome(None, error)
    _settle(limiter, cost, model, provider, response)
    return attempts.outcome(response, None)


def _send(attempts: _Attempts, policy: RetryPolicy, sleep: Callable[[float], None]) -> Any:
    """The response of the last attempt; its error, raised, when every attempt failed."""
    if policy.max_retries == 0:
        # One attempt and nothing to wait for: the tenacity loop would add ~7% to the CPU of a
        # request on the lean transport (benchmarks/overhead_profile.py) and change nothing.
        return attempts.send()
    response: Any = None
    for attempt in policy.retrying(sleep):
        with attempt:
            response = attempts.send()
    return response


class _Attempts:
    """The attempts of one request: sends them and counts what the tracker needs."""

    __slots__ = (
        "admission",
        "clock",
        "cost",
        "index",
        "limiter",
        "max_delay",
        "model",
        "provider",
        "rate_limited",
        "request",
        "response_time",
        "sent",
        "timeout",
        "transport",
    )

    def __init__(
        self,
        request: dict[str, Any],
        index: int,
        cost: Cost,
        limiter: RateLimiter,
        transport: Transport,
        clock: Callable[[], float],
        max_delay: float | None,
    ) -> None:
        self.request = request
        self.timeout = request_timeout(request)
        self.model = ""
        self.provider: str | None = None
        self.index = index
        self.cost = cost
        self.limiter = limiter
        self.transport = transport
        self.clock = clock
        self.max_delay = max_delay
        self.sent = 0
        self.rate_limited = 0
        self.response_time = 0.0
        self.admission: Admission | None = None

    def send(self) -> Any:
        """One attempt: admission, the call, and what the provider's answer teaches the limiter."""
        self.admission = self.limiter.admit(self.cost, max_delay=self.max_delay)  # errors end it
        self.sent += 1
        start = self.clock()
        try:
            response = self.transport.complete(self.request, timeout=self.timeout)
        except Exception as exc:
            self.response_time = self.clock() - start
            # A transport raises our errors; anything else is translated here all the same.
            error = translate_exception(exc, index=self.index, model=self.model)
            self._learn_from(error)
            if error is exc:
                raise
            raise error from exc
        self.response_time = self.clock() - start
        # Every answer is news, even without headers: it ends the limiter's slow start.
        self.limiter.observe(parse_rate_limit_headers(response_headers(response)))
        return response

    def _learn_from(self, error: errors.LLMAPIClientError) -> None:
        """What a failed attempt teaches the limiter: a 429 pauses, headers correct the limits."""
        headers = dict(getattr(error, "headers", None) or {})
        if isinstance(error, errors.RateLimitError):
            self.rate_limited += 1
            self.limiter.pause(_pause_for(error.retry_after), self.admission)
        if headers or isinstance(error, errors.APIStatusError):
            self.limiter.observe(parse_rate_limit_headers(headers))

    def outcome(self, response: Any, error: errors.LLMAPIClientError | None) -> Outcome:
        if error is not None and error.index is None:  # the limiter's errors know no index
            error.index = self.index
        return Outcome(self.index, response, error, _record(self, response, error))


def request_timeout(request: Mapping[str, Any]) -> Any:
    """Seconds one attempt may take: the request's ``timeout``, else the library's default."""
    timeout = request.get("timeout")
    return DEFAULT_REQUEST_TIMEOUT_SECONDS if timeout is None else timeout


def _pause_for(retry_after: float | None) -> float:
    if retry_after is None:
        return DEFAULT_RATE_LIMIT_PAUSE_SECONDS
    return min(retry_after, MAX_RETRY_AFTER_SECONDS)


def _record(
    attempts: _Attempts, response: Any, error: errors.LLMAPIClientError | None
) -> UsageRecord:
    usage = Usage.of(response)
    model, provider = attempts.model, attempts.provider
    priced = usage.prompt or usage.completion
    cost = cost_of(model, usage.prompt, usage.completion, usage.cached, provider) if priced else 0.0
    record = UsageRecord.of(
        attempts.index,
        model,
        usage,
        provider=provider,
        cost=cost,
        unpriced=bool(priced) and not is_priced(model, provider),
        response_time=attempts.response_time,
        attempts=attempts.sent,
        rate_limited=attempts.rate_limited,
        error=error,
        finished_at=time.time(),
    )
    timing = stream_timing(response)  # None unless the answer was streamed
    return record if timing is None else _with_timing(record, timing)


def _with_timing(record: UsageRecord, timing: StreamTiming) -> UsageRecord:
    per_token = timing.per_token(record.completion_tokens)
    return dataclasses.replace(
        record,
        time_to_first_token=timing.first_token,
        time_per_output_token=per_token,
        output_tokens_per_second=1.0 / per_token if per_token else None,
    )


def _settle(
    limiter: RateLimiter,
    cost: Cost,
    model: str,
    provider: str | None,
    response: Any,
) -> None:
    """Give back the part of the admission cost a usage-settling provider did not charge."""
    if not settles_on_actual_usage(model, provider):
        return
    usage = Usage.of(response)
    refund = refund_for(cost, usage.prompt, usage.completion)
    if refund.tokens > 0:
        limiter.refund(refund)
