"""The small, frozen, picklable records that cross process boundaries.

``UsageRecord`` is what one finished request reports to the tracker (made in the worker, merged in
the parent), always through ``UsageRecord.of``; ``Result`` is what the streaming API yields for
one request, always made by ``Result.from_outcome``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_api_client.engine.messages import Outcome
    from llm_api_client.errors import LLMAPIClientError
    from llm_api_client.providers.answers import Usage


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Usage of one request, over all its attempts. Never holds request content or secrets."""

    #: the request's position in its batch
    index: int
    #: the model as the request named it
    model: str
    #: litellm's provider for it (``openai``, ``anthropic``, ...), when known
    provider: str | None = None
    #: prompt tokens the provider reported
    prompt_tokens: int = 0
    #: completion tokens the provider reported
    completion_tokens: int = 0
    #: of the prompt tokens, those served from the provider's prompt cache
    cached_tokens: int = 0
    #: of the completion tokens, those spent reasoning
    reasoning_tokens: int = 0
    #: USD, from the price map (``providers.pricing``); 0.0 when the model is not priced
    cost: float = 0.0
    #: seconds of the final attempt's call
    response_time: float = 0.0
    #: calls sent to the provider (0: rejected before sending)
    attempts: int = 0
    #: of those attempts, how many were answered 429
    rate_limited: int = 0
    #: the final error's class name, None on success
    error: str | None = None
    #: time.time() when the request finished
    finished_at: float = 0.0
    #: answered from the response cache: nothing was sent; tokens and ``cost`` are what the
    #: stored answer used and cost when it was paid for (the cost the hit saved)
    cache_hit: bool = False
    #: answered, but the model has no price in litellm's map: ``cost`` 0.0 means unknown
    unpriced: bool = False

    # -- streamed calls (``stream=True``) only; ``None`` for the others ----------------------
    #: seconds from sending the final attempt to its first output token
    time_to_first_token: float | None = None
    #: seconds per output token after the first: (last token - first) / (output tokens - 1)
    time_per_output_token: float | None = None
    #: output tokens per second after the first token: 1 / ``time_per_output_token``
    output_tokens_per_second: float | None = None

    @classmethod
    def of(
        cls,
        index: int,
        model: str,
        usage: Usage | None = None,
        *,
        provider: str | None = None,
        cost: float = 0.0,
        response_time: float = 0.0,
        attempts: int = 0,
        rate_limited: int = 0,
        error: BaseException | None = None,
        finished_at: float = 0.0,
        cache_hit: bool = False,
        unpriced: bool = False,
    ) -> UsageRecord:
        """The record of one request: ``usage`` is what its answer reported (None: no answer)."""
        tokens = (0, 0, 0, 0)
        if usage is not None:
            tokens = (usage.prompt, usage.completion, usage.cached, usage.reasoning)
        return cls(
            index,
            model,
            provider,
            *tokens,
            cost=cost,
            response_time=response_time,
            attempts=attempts,
            rate_limited=rate_limited,
            error=None if error is None else type(error).__name__,
            finished_at=finished_at,
            cache_hit=cache_hit,
            unpriced=unpriced,
        )

    @property
    def ok(self) -> bool:
        """The request was answered."""
        return self.error is None


@dataclass(slots=True)
class Result:
    """One request's outcome, as the streaming API yields it.

    ``response`` is the litellm ``ModelResponse`` (the same type ``litellm.completion`` returns)
    or ``None``; ``error`` is the typed error when it failed.
    """

    #: the request's position in the iterable given to ``stream``
    index: int
    #: the litellm ``ModelResponse``, or ``None`` when the request failed
    response: Any = None
    #: why it failed (an ``LLMAPIClientError`` subclass), or ``None``
    error: LLMAPIClientError | None = None
    #: calls sent to the provider, retries included
    attempts: int = 0
    #: tokens, cost and latency of the request
    usage: UsageRecord | None = None

    @classmethod
    def from_outcome(cls, outcome: Outcome) -> Result:
        """What the streaming API yields for a worker's ``Outcome``: the one place it is made."""
        record = outcome.record
        return cls(outcome.index, outcome.response, outcome.error, record.attempts, record)

    @property
    def ok(self) -> bool:
        """The request was answered: ``response`` holds the answer."""
        return self.error is None and self.response is not None
