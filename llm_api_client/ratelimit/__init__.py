"""The rate limiter: one quota for every thread of every worker process.

``Limits`` and ``Cost`` describe the quota and a request; ``InProcessRateLimiter`` (threads) and
``SharedMemoryRateLimiter`` (processes) implement ``RateLimiter``; ``headers`` reads what a
provider says about its limits. What to give back after an answer is the caller's policy
(``pipeline.settlement``).
"""

from __future__ import annotations

from llm_api_client.ratelimit.base import Cost, LimiterSnapshot, Limits, RateLimiter
from llm_api_client.ratelimit.headers import (
    RateLimitInfo,
    parse_rate_limit_headers,
    pause_seconds,
    retry_after_seconds,
)
from llm_api_client.ratelimit.memory import InProcessRateLimiter
from llm_api_client.ratelimit.shared import SharedMemoryRateLimiter

__all__ = [
    "Cost",
    "InProcessRateLimiter",
    "LimiterSnapshot",
    "Limits",
    "RateLimitInfo",
    "RateLimiter",
    "SharedMemoryRateLimiter",
    "parse_rate_limit_headers",
    "pause_seconds",
    "retry_after_seconds",
]
