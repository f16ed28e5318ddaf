"""One request, start to finish, in the worker thread that owns it.

    execute(request)
      └─ RetryPolicy.retrying() loop (tenacity), for each attempt:
           limiter.admit(cost)              may end the request unsent (too large / waited too long)
           completion(**request, max_retries=0)
             ok   -> limiter.observe(the limits its headers state)
             fail -> translate_exception; a 429 also limiter.pause(retry_after, admission), observe
      └─ after a success: settle with the limiter on actual usage (refund the unused reservation)
      └─ Outcome(index, response, error, UsageRecord, headers)

``execute`` never raises for a failure of the request itself: the typed error is in the outcome.
It is a picklable frozen dataclass, made in a worker and merged into the tracker in the parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llm_api_client import _offline, errors
from llm_api_client._constants import (
    DEFAULT_RATE_LIMIT_PAUSE_SECONDS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
)
from llm_api_client._redact import SECRET_KEYS
from llm_api_client.pipeline.litellm_logging import unheard_logging_skipped
from llm_api_client.pipeline.retry import RetryPolicy
from llm_api_client.pipeline.settlement import refund_for, settles_on_actual_usage
from llm_api_client.pipeline.translate import translate_exception
from llm_api_client.pricing import cost_of
from llm_api_client.ratelimit.base import Admission, Cost, RateLimiter
from llm_api_client.ratelimit.headers import parse_rate_limit_headers
from llm_api_client.records import UsageRecord

litellm = _offline.litellm()

__all__ = ["Outcome", "execute", "response_headers"]

_PROVIDER_PREFIX = "llm_provider-"
# Request keys that would let litellm or its SDK retry underneath our policy.
_RETRY_KEYS = ("max_retries", "num_retries")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request came to: the response or the typed error, and its usage record."""

    index: int
    response: Any
    error: errors.LLMAPIClientError | None
    record: UsageRecord
    headers: dict[str, str] = field(default_factory=dict)  # the final answer's, normalized

    @property
    def ok(self) -> bool:
        return self.error is None


def execute(
    request: dict[str, Any],
    *,
    index: int,
    cost: Cost,
    limiter: RateLimiter,
    policy: RetryPolicy,
    max_delay: float | None = None,
    completion: Callable[..., Any] = litellm.completion,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    settlement: str | None = None,
) -> Outcome:
    """Send ``request`` through ``limiter`` with ``policy``'s retries; never raises for its failure.

    ``cost`` is what one attempt takes from the limiter (every retry takes it again).
    ``settlement`` overrides whether the provider settles on actual usage (see
    ``pipeline.settlement``). The caller's dict is not modified.
    """
    attempts = _Attempts(request, index, cost, limiter, completion, clock, max_delay)
    response: Any = None
    try:
        for attempt in policy.retrying(sleep):
            with attempt:
                response = attempts.send()
    except errors.LLMAPIClientError as error:
        return attempts.outcome(None, error)
    provider = request.get("custom_llm_provider")
    _settle(limiter, cost, attempts.model, provider, response, settlement)
    return attempts.outcome(response, None)


class _Attempts:
    """The attempts of one request: sends them and counts what the tracker needs."""

    __slots__ = (
        "admission",
        "clock",
        "completion",
        "cost",
        "headers",
        "index",
        "kwargs",
        "limiter",
        "max_delay",
        "model",
        "rate_limited",
        "response_time",
        "sent",
    )

    def __init__(
        self,
        request: Mapping[str, Any],
        index: int,
        cost: Cost,
        limiter: RateLimiter,
        completion: Callable[..., Any],
        clock: Callable[[], float],
        max_delay: float | None,
    ) -> None:
        self.kwargs = call_kwargs(request)
        self.model = str(request.get("model", ""))
        self.index = index
        self.cost = cost
        self.limiter = limiter
        self.completion = completion
        self.clock = clock
        self.max_delay = max_delay
        self.sent = 0
        self.rate_limited = 0
        self.response_time = 0.0
        self.headers: dict[str, str] = {}
        self.admission: Admission | None = None

    def send(self) -> Any:
        """One attempt: admission, the call, and what the provider's answer teaches the limiter."""
        self.admission = self.limiter.admit(self.cost, max_delay=self.max_delay)  # errors end it
        self.sent += 1
        start = self.clock()
        try:
            with unheard_logging_skipped(litellm):
                response = self.completion(**self.kwargs)
        except Exception as exc:
            self.response_time = self.clock() - start
            raise self._failed(exc) from exc
        self.response_time = self.clock() - start
        self.headers = response_headers(response)
        # Every answer is news, even without headers: it ends the limiter's slow start.
        self.limiter.observe(parse_rate_limit_headers(self.headers))
        return response

    def _failed(self, exc: Exception) -> errors.LLMAPIClientError:
        error = translate_exception(exc, index=self.index, model=self.model)
        headers = getattr(error, "headers", None)
        self.headers = dict(headers) if headers else {}
        if isinstance(error, errors.RateLimitError):
            self.rate_limited += 1
            self.limiter.pause(_pause_for(error.retry_after), self.admission)
        if self.headers or isinstance(error, errors.APIStatusError):
            self.limiter.observe(parse_rate_limit_headers(self.headers))
        return error

    def provider(self, response: Any) -> str | None:
        hidden = getattr(response, "_hidden_params", None)
        found = hidden.get("custom_llm_provider") if isinstance(hidden, dict) else None
        found = found or self.kwargs.get("custom_llm_provider")
        if not found and "/" in self.model:
            found = self.model.split("/", 1)[0]
        return str(found) if found else None

    def outcome(self, response: Any, error: errors.LLMAPIClientError | None) -> Outcome:
        if error is not None and error.index is None:  # the limiter's errors know no index
            error.index = self.index
        record = _record(self, response, error)
        return Outcome(self.index, response, error, record, self.headers)


def call_kwargs(request: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for ``completion``: a copy of the request that retries nothing."""
    kwargs = {k: v for k, v in request.items() if k not in _RETRY_KEYS}
    kwargs["max_retries"] = 0  # the SDK's own retries would hide attempts from the limiter
    if kwargs.get("timeout") is None:
        kwargs["timeout"] = DEFAULT_REQUEST_TIMEOUT_SECONDS
    return kwargs


def response_headers(response: Any) -> dict[str, str]:
    """The provider's response headers litellm kept, lowercased, ``llm_provider-`` prefix removed.

    Where litellm gives a header both with and without the prefix, the unprefixed one wins.
    Credential-like headers (``set-cookie``, ...) are dropped.
    """
    hidden = getattr(response, "_hidden_params", None)
    raw = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    if not raw:
        return {}
    headers: dict[str, str] = {}
    for key, value in raw.items():
        name = str(key).lower()
        if name.startswith(_PROVIDER_PREFIX):
            name = name[len(_PROVIDER_PREFIX) :]
            if name in headers:
                continue
        if value is not None and name not in SECRET_KEYS:
            headers[name] = str(value)
    return headers


def _pause_for(retry_after: float | None) -> float:
    if retry_after is None:
        return DEFAULT_RATE_LIMIT_PAUSE_SECONDS
    return min(retry_after, MAX_RETRY_AFTER_SECONDS)


def _usage_numbers(response: Any) -> tuple[int, int, int, int]:
    """(prompt, completion, cached, reasoning) tokens from a response's ``usage``; zeros if none."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0, 0, 0, 0
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return (
        int(getattr(usage, "prompt_tokens", 0) or 0),
        int(getattr(usage, "completion_tokens", 0) or 0),
        int(getattr(prompt_details, "cached_tokens", 0) or 0),
        int(getattr(completion_details, "reasoning_tokens", 0) or 0),
    )


def _record(
    attempts: _Attempts, response: Any, error: errors.LLMAPIClientError | None
) -> UsageRecord:
    prompt, completion, cached, reasoning = _usage_numbers(response)
    provider = attempts.provider(response)
    return UsageRecord(
        index=attempts.index,
        model=attempts.model,
        provider=provider,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost=cost_of(attempts.model, prompt, completion, cached, provider)
        if prompt or completion
        else 0.0,
        response_time=attempts.response_time,
        attempts=attempts.sent,
        rate_limited=attempts.rate_limited,
        error=type(error).__name__ if error is not None else None,
        finished_at=time.time(),
    )


def _settle(
    limiter: RateLimiter,
    cost: Cost,
    model: str,
    provider: str | None,
    response: Any,
    settlement: str | None,
) -> None:
    """Give back the part of the admission cost a usage-settling provider did not charge."""
    if not settles_on_actual_usage(model, provider, settlement):
        return
    prompt, completion, _, _ = _usage_numbers(response)
    refund = refund_for(cost, prompt, completion)
    if refund.tokens > 0:
        limiter.refund(refund)
