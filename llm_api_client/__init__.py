"""llm-api-client: very large batches of LLM calls through litellm, at your rate limit.

``APIClient`` is the entry point; ``APIUsageTracker`` accumulates usage and cost; every error
is an ``LLMAPIClientError`` (see ``llm_api_client.errors``); ``Simulator`` is an
OpenAI-compatible server for tests, benchmarks and the demo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_api_client import _offline  # noqa: F401 - must run before litellm or tiktoken load
from llm_api_client._lazy import lazy_attributes

# Where each public name lives. Imported on first use, so that ``import llm_api_client`` (and
# the simulator, the CLI's help) stays fast: litellm alone takes seconds to import.
_EXPORTS = {
    "APIClient": "llm_api_client.client",
    "BatchStream": "llm_api_client.engine.coordinator",
    "Cost": "llm_api_client.ratelimit.base",
    "Limits": "llm_api_client.ratelimit.base",
    "Result": "llm_api_client.records",
    "UsageRecord": "llm_api_client.records",
    "APIUsageTracker": "llm_api_client.tracker",
    "Simulator": "llm_api_client.simulator",
    **{
        name: "llm_api_client.errors"
        for name in (
            "APIConnectionError",
            "APIError",
            "APIStatusError",
            "APITimeoutError",
            "BatchTimeoutError",
            "BudgetExceededError",
            "ConfigurationError",
            "ContextWindowExceededError",
            "ContextWindowTooSmallError",
            "EngineError",
            "InvalidRequestError",
            "LLMAPIClientError",
            "NotSentError",
            "RateLimitDelayExceeded",
            "RateLimitError",
            "RequestError",
            "RequestTooLargeError",
            "WorkerCrashedError",
        )
    },
}

if TYPE_CHECKING:
    from llm_api_client.client import APIClient
    from llm_api_client.engine.coordinator import BatchStream
    from llm_api_client.errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        BatchTimeoutError,
        BudgetExceededError,
        ConfigurationError,
        ContextWindowExceededError,
        ContextWindowTooSmallError,
        EngineError,
        InvalidRequestError,
        LLMAPIClientError,
        NotSentError,
        RateLimitDelayExceeded,
        RateLimitError,
        RequestError,
        RequestTooLargeError,
        WorkerCrashedError,
    )
    from llm_api_client.ratelimit.base import Cost, Limits
    from llm_api_client.records import Result, UsageRecord
    from llm_api_client.simulator import Simulator
    from llm_api_client.tracker import APIUsageTracker


__version__ = "0.2.0"
# As 0.1.8 had it: compare versions as tuples, ``__version_info__ >= (0, 2)``.
__version_info__ = tuple(int(part) for part in __version__.split("."))

__all__ = [
    "APIClient",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "APIUsageTracker",
    "BatchStream",
    "BatchTimeoutError",
    "BudgetExceededError",
    "ConfigurationError",
    "ContextWindowExceededError",
    "ContextWindowTooSmallError",
    "Cost",
    "EngineError",
    "InvalidRequestError",
    "LLMAPIClientError",
    "Limits",
    "NotSentError",
    "RateLimitDelayExceeded",
    "RateLimitError",
    "RequestError",
    "RequestTooLargeError",
    "Result",
    "Simulator",
    "UsageRecord",
    "WorkerCrashedError",
    "__version__",
    "__version_info__",
]


__getattr__ = lazy_attributes(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)
