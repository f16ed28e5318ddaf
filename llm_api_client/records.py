"""The small, frozen, picklable records that cross process boundaries.

``UsageRecord`` is what one finished request reports to the tracker (made in the worker, merged in
the parent); ``Result`` is what the streaming API yields for one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_api_client.errors import LLMAPIClientError


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Usage of one request, over all its attempts. Never holds request content or secrets."""

    index: int
    model: str
    provider: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float = 0.0  # USD, from litellm's price map; 0.0 when the model is not priced
    response_time: float = 0.0  # seconds of the final attempt's call
    attempts: int = 0  # calls sent to the provider (0: rejected before sending)
    rate_limited: int = 0  # of those attempts, how many were answered 429
    error: str | None = None  # the final error's class name, None on success
    finished_at: float = 0.0  # time.time() when the request finished

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class Result:
    """One request's outcome, as the streaming API yields it.

    ``response`` is the litellm ``ModelResponse`` (the same type ``litellm.completion`` returns)
    or ``None``; ``error`` is the typed error when it failed.
    """

    index: int
    response: Any = None
    error: LLMAPIClientError | None = None
    attempts: int = 0
    usage: UsageRecord | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.response is not None
