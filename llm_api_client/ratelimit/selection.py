"""Which store holds a client's quota: its own (threads, shared memory) or a network one (Redis).

``APIClient(rate_limit_store=URL, rate_limit_key=NAME)``, ``run --rate-limit-store URL
--rate-limit-key NAME`` or the environment (``LLM_API_CLIENT_RATE_LIMIT_STORE``) name a Redis
quota; every client naming the same URL and key, on any host, shares it. Without one, a client
keeps today's quota: in its process, or in shared memory for its worker processes.
"""

from __future__ import annotations

import os
import urllib.parse

from llm_api_client.errors import ConfigurationError
from llm_api_client.ratelimit.base import Limits, Sleep
from llm_api_client.ratelimit.limiter import QuotaLimiter

__all__ = ["RATE_LIMIT_STORE_ENV", "SCHEMES", "network_limiter", "rate_limit_key", "store_url"]

RATE_LIMIT_STORE_ENV = "LLM_API_CLIENT_RATE_LIMIT_STORE"
SCHEMES = ("redis", "rediss", "unix")


def store_url(value: str | None) -> str | None:
    """The store URL given, else the environment's, else None (the client's own quota)."""
    url = value if value is not None else os.environ.get(RATE_LIMIT_STORE_ENV) or None
    if url is None:
        return None
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in SCHEMES:
        shown = url if isinstance(url, str) else type(url).__name__
        raise ConfigurationError(
            "rate_limit_store must be a redis://HOST:PORT/DB, rediss://... or "
            f"unix:///path/to.sock URL, not {shown.split('@')[-1]!r}"  # no password shown
        )
    return url


def rate_limit_key(value: object) -> str:
    """The quota's name in the store, checked."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"rate_limit_key must be a non-empty string, not {value!r}")
    return value


def network_limiter(
    url: str, key: str, limits: Limits, *, probe_seconds: float, sleep: Sleep
) -> QuotaLimiter:
    """The limiter over the quota ``key`` at ``url`` (Redis)."""
    try:
        from llm_api_client.ratelimit.redis_store import RedisRateLimiter
    except ImportError as exc:
        raise ConfigurationError(
            "rate_limit_store needs redis-py: pip install 'llm-api-client[redis]'"
        ) from exc
    return RedisRateLimiter(limits, url, key, probe_seconds=probe_seconds, sleep=sleep)
