"""The rate limiter: one quota for every thread of every worker process.

``Limits`` and ``Cost`` describe the quota and a request; ``InProcessRateLimiter`` (threads) and
``SharedMemoryRateLimiter`` (processes) implement ``RateLimiter``; ``headers`` reads what a
provider says about its limits and ``accounting`` decides what to give back after an answer.
"""

from __future__ import annotations

from llm_api_client.ratelimit.accounting import refund_for, settles_on_actual_usage
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
    "refund_for",
    "retry_after_seconds",
    "settles_on_actual_usage",
]
