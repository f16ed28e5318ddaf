"""What a worker thread does with one ``CallItem``: the request pipeline's ``execute``.

Shared by both backends, so a request behaves the same on threads of the calling process and in
worker processes.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field

from llm_api_client.call.execute import execute
from llm_api_client.call.retry import RetryPolicy
from llm_api_client.engine import cancellation
from llm_api_client.engine.messages import CallItem, Outcome
from llm_api_client.errors import LLMAPIClientError
from llm_api_client.providers.base import Transport
from llm_api_client.providers.litellm_transport import LiteLLMTransport
from llm_api_client.ratelimit.base import RateLimiter
from llm_api_client.records import UsageRecord


@dataclass(frozen=True)
class ExecutionConfig:
    """Settings every worker thread shares: how long admission may wait, what sends requests."""

    max_delay: float | None = None
    transport: Transport = field(default_factory=LiteLLMTransport)


@functools.lru_cache(maxsize=16)
def _policy(max_retries: int) -> RetryPolicy:
    return RetryPolicy(max_retries=max_retries)


def run_item(item: CallItem, limiter: RateLimiter, config: ExecutionConfig) -> Outcome:
    """Execute one request; a bug in the pipeline becomes that request's error, not a hang."""
    try:
        return execute(
            item.request,
            index=item.index,
            cost=item.cost,
            limiter=limiter.for_model(item.model),  # per-model limits: its own buckets
            policy=_policy(item.max_retries),
            max_delay=config.max_delay,
            transport=config.transport,
            model=item.model,
            provider=item.provider,
            sleep=cancellation.sleep,  # a retry's backoff ends when the batch is abandoned
        )
    except BaseException as exc:
        return failed_outcome(item.index, item.request, _internal_error(exc))


def failed_outcome(index: int, request: object, error: LLMAPIClientError) -> Outcome:
    """An outcome for a request that ended without an answer (``request`` may be malformed)."""
    error.index = index
    model = request.get("model", "") if isinstance(request, Mapping) else ""
    return Outcome(index, None, error, UsageRecord.of(index, str(model), error=error))


def _internal_error(exc: BaseException) -> LLMAPIClientError:
    error = LLMAPIClientError(f"internal error while executing the request: {exc!r}")
    error.remote_traceback = "".join(traceback.format_exception(exc))
    return error
