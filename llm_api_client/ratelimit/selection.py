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
from llm_api_client.ratelimit.base import Limits, RateLimiter

__all__ = [
    "RATE_LIMIT_STORE_ENV",
    "SCHEMES",
    "checked",
    "rate_limit_key",
    "redis_limiter",
    "store_for",
    "store_url",
]

RATE_LIMIT_STORE_ENV = "LLM_API_CLIENT_RATE_LIMIT_STORE"
SCHEMES = ("redis", "rediss", "unix", "ray")  # ray://NAME: a Ray cluster store (ray.py)


def store_url(value: str | None) -> str | None:
    """The store URL given, else the environment's, else None (the client's own quota)."""
    url = value if value is not None else os.environ.get(RATE_LIMIT_STORE_ENV) or None
    if url is None:
        return None
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in SCHEMES:
        shown = url if isinstance(url, str) else type(url).__name__
        raise ConfigurationError(
            "rate_limit_store must be a redis://HOST:PORT/DB, rediss://..., "
            f"unix:///path/to.sock or ray://NAME URL, not {shown.split('@')[-1]!r}"  # no password
        )
    return url


def rate_limit_key(value: object) -> str:
    """The quota's name in the store, checked."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"rate_limit_key must be a non-empty string, not {value!r}")
    return value


def checked(store: str | None, key: object) -> tuple[str | None, str]:
    """``APIClient``'s ``rate_limit_store`` (or the environment's) and ``rate_limit_key``."""
    return store_url(store), rate_limit_key(key)


def store_for(url: str | None, key: str) -> str | None:
    """The store the engine's runtime opens: the URL with the key as its fragment."""
    if url is None or url.startswith("ray://"):  # a cluster store is one quota by its name
        return url
    return f"{url}#{urllib.parse.quote(key, safe='')}"


def redis_limiter(store: str, limits: Limits) -> RateLimiter:
    """``engine.runtime.STORES``' factory for Redis URLs (``store_for``'s form).

    Every backend's threads and worker processes reach the quota through Redis (a forked
    worker opens its own connections).
    """
    from llm_api_client._constants import DEFAULT_PROBE_SECONDS
    from llm_api_client.engine import cancellation

    try:
        from llm_api_client.ratelimit.redis_store import RedisRateLimiter
    except ImportError as exc:
        raise ConfigurationError(
            "rate_limit_store needs redis-py: pip install 'llm-api-client[redis]'"
        ) from exc
    url, _, key = store.partition("#")
    # cancellation.sleep: a request waiting for its turn is not sent once abandoned.
    return RedisRateLimiter(
        limits,
        url,
        urllib.parse.unquote(key) or "default",
        probe_seconds=DEFAULT_PROBE_SECONDS,
        sleep=cancellation.sleep,
    )
