"""Retries, owned by us (litellm is called with ``max_retries=0``), built from tenacity pieces.

Which errors are worth another attempt is ``is_retryable``; how long to wait is a tenacity wait
strategy, by default "what the provider said (``retry_after``), capped, else jittered exponential
backoff"::

    wait_retry_after(fallback=wait_random_exponential(multiplier=0.5, max=30))

``RetryPolicy`` combines them with a number of extra attempts and builds the ``Retrying`` loop
that ``call.execute.execute`` runs one request in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tenacity
from tenacity.wait import wait_base

from llm_api_client import errors
from llm_api_client._constants import (
    INITIAL_RETRY_DELAY_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    MAX_RETRY_DELAY_SECONDS,
)

__all__ = [
    "RETRYABLE_STATUS_CODES",
    "RetryPolicy",
    "default_wait",
    "is_retryable",
    "wait_retry_after",
]

# 408 request timeout, 409 conflict (a lock on the provider's side), 429 rate limited; 5xx below.
RETRYABLE_STATUS_CODES = frozenset({408, 409, 429})


def is_retryable(error: BaseException) -> bool:
    """Whether sending the request again may succeed.

    Yes for timeouts, connection errors, 408, 409, 429 and 5xx; never for other 4xx (the same
    request would fail the same way), nor for errors raised before sending (``RequestError``,
    ``ConfigurationError``, ``RateLimitDelayExceeded``, ...).
    """
    if not isinstance(error, errors.APIError):
        return False
    if isinstance(error, errors.APIConnectionError):  # includes APITimeoutError
        return True
    status = error.status_code
    if status is None:
        return False
    return status in RETRYABLE_STATUS_CODES or 500 <= status < 600


class wait_retry_after(wait_base):
    """Wait as long as the provider asked (``error.retry_after``), capped; else ``fallback``.

    Example: ``wait_retry_after(cap=60, fallback=wait_random_exponential(multiplier=0.5, max=30))``
    sleeps 2 s after a 429 that said ``retry-after: 2``, 60 s after one that said 3600, and a
    jittered backoff after a 500 that said nothing.
    """

    def __init__(
        self,
        cap: float = MAX_RETRY_AFTER_SECONDS,
        fallback: wait_base | None = None,
    ) -> None:
        self.cap = cap
        self.fallback = fallback if fallback is not None else tenacity.wait_none()

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after >= 0:
            return min(float(retry_after), self.cap)
        return float(self.fallback(retry_state))

    def __repr__(self) -> str:
        return f"wait_retry_after(cap={self.cap}, fallback={self.fallback!r})"


def default_wait() -> wait_base:
    """The provider's ``retry_after`` (capped at 60 s), else full-jitter backoff 0.5 s .. 30 s."""
    return wait_retry_after(
        cap=MAX_RETRY_AFTER_SECONDS,
        fallback=tenacity.wait_random_exponential(
            multiplier=INITIAL_RETRY_DELAY_SECONDS, max=MAX_RETRY_DELAY_SECONDS
        ),
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How many more times to send a failed request, which failures qualify, how long to wait.

    ``max_retries`` counts extra attempts after the first: ``RetryPolicy()`` sends once (what
    ``make_requests`` does), ``RetryPolicy(max_retries=2)`` up to three times.
    """

    max_retries: int = 0
    wait: wait_base = field(default_factory=default_wait)
    retryable: Callable[[BaseException], bool] = is_retryable

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise errors.ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")

    def retrying(self, sleep: Callable[[float], None] = time.sleep) -> tenacity.Retrying:
        """A tenacity loop for one request; the last error is re-raised as itself."""
        return tenacity.Retrying(
            sleep=sleep,
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=self.wait,
            retry=tenacity.retry_if_exception(self.retryable),
            reraise=True,
        )
