"""Read what a provider says about its rate limits from response headers.

OpenAI (and the OpenAI-compatible simulator)::

    x-ratelimit-limit-requests: 60          x-ratelimit-limit-tokens: 150000
    x-ratelimit-remaining-requests: 59      x-ratelimit-remaining-tokens: 149984
    x-ratelimit-reset-requests: 1s          x-ratelimit-reset-tokens: 6m0s

Anthropic (reset is an RFC 3339 time; also ``-input-tokens-`` and ``-output-tokens-``)::

    anthropic-ratelimit-requests-limit: 50
    anthropic-ratelimit-requests-remaining: 49
    anthropic-ratelimit-requests-reset: 2024-01-01T00:00:01Z

and ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date). Names are case-insensitive
and may carry litellm's ``llm_provider-`` prefix (read by the one header normaliser,
``providers.answers.normalize_headers``). Values that make no sense (negative, nan,
infinite, absurdly large) are ignored rather than trusted.

Pure functions of the headers: the limiter never sees HTTP. Whoever holds an answer parses its
headers here and hands the limiter the result, a ``ProviderLimits``::

    info = parse_rate_limit_headers(response._hidden_params["additional_headers"])
    info.limits  # {"requests": 60.0, "tokens": 150000.0}
    limiter.observe(info)
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from llm_api_client._constants import MAX_PLAUSIBLE_RETRY_AFTER_SECONDS
from llm_api_client.providers.answers import normalize_headers
from llm_api_client.ratelimit.base import ProviderLimits

__all__ = [
    "RateLimitInfo",
    "parse_duration",
    "parse_rate_limit_headers",
    "retry_after_seconds",
]

_OPENAI = re.compile(
    r"x-ratelimit-(limit|remaining|reset)-(requests|tokens|input-tokens|output-tokens)"
)
_ANTHROPIC = re.compile(
    r"anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-(limit|remaining|reset)"
)
# Go-style durations as OpenAI writes them: "1s", "6m0s", "120ms", "1m30.5s", "2h".
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class RateLimitInfo(ProviderLimits):
    """Everything a response's headers said about rate limits, by bucket name.

    The ``ProviderLimits`` the limiter learns from (``limits``, ``remaining``), and more:
    ``resets`` are seconds from now; ``retry_after`` is seconds, or None when not given.
    """

    resets: Mapping[str, float] = field(default_factory=dict)
    retry_after: float | None = None


def parse_rate_limit_headers(
    headers: Mapping[str, str], *, now: float | None = None
) -> RateLimitInfo:
    """Parse OpenAI- and Anthropic-style rate-limit headers; ``now`` is wall-clock time."""
    fields: dict[str, dict[str, float]] = {"limit": {}, "remaining": {}, "reset": {}}
    normalized = normalize_headers(headers)
    for raw_name, raw_value in normalized.items():
        match = _OPENAI.fullmatch(raw_name)
        if match:
            kind, unit = match.groups()
        else:
            match = _ANTHROPIC.fullmatch(raw_name)
            if not match:
                continue
            unit, kind = match.groups()
        parse = _parse_reset if kind == "reset" else _parse_amount
        value = parse(raw_value, now)
        if value is not None:
            fields[kind][unit.replace("-", "_")] = value
    return RateLimitInfo(
        limits=fields["limit"],
        remaining=fields["remaining"],
        resets=fields["reset"],
        retry_after=_retry_after(normalized, now),
    )


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """How long the provider asked us to wait: ``retry-after-ms``, else ``retry-after``.

    ``retry-after`` may be seconds or an HTTP date (compared with ``now``, wall-clock time).
    Returns None when absent or unusable (negative, nan, infinite, more than a day).
    """
    return _retry_after(normalize_headers(headers), now)


def _retry_after(normalized: Mapping[str, str], now: float | None) -> float | None:
    millis = _number(normalized.get("retry-after-ms"))
    if millis is not None and _plausible(millis / 1000.0):
        return millis / 1000.0
    raw = normalized.get("retry-after")
    if raw is None:
        return None
    seconds = _number(raw)
    if seconds is None:
        seconds = _seconds_until_http_date(raw, now)
    return seconds if seconds is not None and _plausible(seconds) else None


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration ("6m0s", "120ms", "1m30.5s"), or None if it is not one."""
    text = text.strip()
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) and position > 0 else None


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _plausible(seconds: float) -> bool:
    return 0 <= seconds <= MAX_PLAUSIBLE_RETRY_AFTER_SECONDS


def _parse_amount(raw: str, now: float | None) -> float | None:
    value = _number(raw)
    return value if value is not None and value >= 0 else None


def _parse_reset(raw: str, now: float | None) -> float | None:
    seconds = _number(raw)
    if seconds is None:
        seconds = parse_duration(raw)
    if seconds is None:
        seconds = _seconds_until_rfc3339(raw, now)
    return seconds if seconds is not None and _plausible(seconds) else None


def _seconds_until_rfc3339(raw: str, now: float | None) -> float | None:
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _seconds_until_http_date(raw: str, now: float | None) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp() - (time.time() if now is None else now)
