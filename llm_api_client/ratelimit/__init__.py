"""The rate limiter: one quota for every thread of every worker process.

::

    caller ──acquire/admit, refund, pause, observe──▶ QuotaLimiter (limiter.py)
                                                        waits and sleeps, on this process's clock
                                                        │ one atomic operation each, durations only
                                                        ▼
                                                     QuotaStore (store.py)
                                                        LocalStore (memory.py): threads of a process
                                                        SharedMemoryStore (shared.py): processes
                                                        RedisStore (redis_store.py): hosts, one
                                                          Lua script per operation (optional)
                                                        │ calls, inside its lock, with its clock
                                                        ▼
                                                     bucket.py: the arithmetic, pure functions

``Limits`` and ``Cost`` describe the quota and a request; ``ProviderLimits`` is what a provider
stated (``headers`` parses it from HTTP headers, outside the limiter). ``InProcessRateLimiter`` and
``SharedMemoryRateLimiter`` are the limiter over a new store of each kind.
"""

from __future__ import annotations

from llm_api_client.ratelimit.base import (
    Admission,
    Cost,
    LimiterSnapshot,
    Limits,
    ProviderLimits,
    RateLimiter,
    Turn,
)
from llm_api_client.ratelimit.headers import (
    RateLimitInfo,
    parse_rate_limit_headers,
    retry_after_seconds,
)
from llm_api_client.ratelimit.limiter import QuotaLimiter
from llm_api_client.ratelimit.memory import InProcessRateLimiter, LocalStore
from llm_api_client.ratelimit.shared import SharedMemoryRateLimiter, SharedMemoryStore
from llm_api_client.ratelimit.store import QuotaStore

__all__ = [
    "Admission",
    "Cost",
    "InProcessRateLimiter",
    "LimiterSnapshot",
    "Limits",
    "LocalStore",
    "ProviderLimits",
    "QuotaLimiter",
    "QuotaStore",
    "RateLimitInfo",
    "RateLimiter",
    "SharedMemoryRateLimiter",
    "SharedMemoryStore",
    "Turn",
    "parse_rate_limit_headers",
    "retry_after_seconds",
]
